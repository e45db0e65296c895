"""Helpers for testing kvdb and clusters built on it."""
