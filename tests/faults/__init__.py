"""Fault-injection toolkit (toolkit.py) for fault tests, and its self-tests."""
