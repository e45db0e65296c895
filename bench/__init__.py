"""Benchmarks, never run as tests.

``bench/micro`` holds pytest-benchmark microbenchmarks behind design decisions. The throughput
harness (workloads, drivers for kvdb and etcd, reports and plots) will live here too.
"""
