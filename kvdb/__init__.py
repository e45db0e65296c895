"""kvdb: a sharded, multi-Raft, transactional key-value database."""

__version__ = "0.1.0"
