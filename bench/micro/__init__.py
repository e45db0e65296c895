"""Microbenchmarks: ``pytest bench/micro --benchmark-only`` from the repository root."""
