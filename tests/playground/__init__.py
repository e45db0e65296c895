"""``kvdb playground`` run for real (PD and store processes), driven through the ``kvdb`` CLI."""
