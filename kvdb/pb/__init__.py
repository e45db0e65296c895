"""Protobuf and gRPC modules generated from proto/*.proto by scripts/gen_proto.py. Do not edit."""
