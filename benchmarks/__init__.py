"""Benchmarks for sweeper: plain scripts, run with ``python benchmarks/run_all.py [--quick]``."""
