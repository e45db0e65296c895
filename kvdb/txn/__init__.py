"""Percolator transactions over MVCC (docs/mvcc.md): the commands applied through Raft
(``actions``) and the snapshot reads a leader answers directly (``reads``)."""
