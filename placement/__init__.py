"""The placement driver (PD).

Will hold the PD server: its Raft-replicated metadata state machine (stores, ranges, replica
placement), the timestamp oracle, the id allocator, heartbeat handling, the schedulers and
checkers that emit operators, and its gRPC service.
"""
