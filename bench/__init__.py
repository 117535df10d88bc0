"""Benchmarks for jobfleet (``make bench``): every figure is reported next to a baseline from the same run."""
