"""MVCC over the ``lock`` and ``write`` column families: key encoding, records, reads at a timestamp."""
