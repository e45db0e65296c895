"""Tests of the history checkers in kvdb/testing."""
