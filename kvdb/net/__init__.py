"""How kvdb talks over the network: one factory for gRPC servers and channels, and TLS."""
