"""The multi-Raft host: replicas, the ready/persist/send/apply loop, leases, snapshots."""
