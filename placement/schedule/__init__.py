"""PD's scheduling, in the shape of TiKV PD's ``schedule/``: operators made of steps, a controller
that runs them within per-store limits, checkers (what a range needs) and schedulers (what the
cluster would be better with), and a coordinator that runs those on an interval."""
