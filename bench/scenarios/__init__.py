"""Benchmark scenarios, one module each (the contract is in :mod:`bench.harness.scenario`)."""
