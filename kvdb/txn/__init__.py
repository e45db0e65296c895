"""Percolator transactions over the MVCC key space (see docs/transactions.md)."""
