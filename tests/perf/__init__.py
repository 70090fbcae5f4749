"""Benchmarks (run as scripts, `python tests/perf/NAME.py`) and the test of gpu_check.py's plumbing."""
