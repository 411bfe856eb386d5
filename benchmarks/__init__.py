"""Benchmarks printed by `make bench`: measurements, never test assertions."""
