"""Benchmarks of the daemon (see docs/performance.md)."""
