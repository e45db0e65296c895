"""gRPC services of a store (KV, Raft transport, admin) and process start-up."""
