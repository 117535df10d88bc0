"""Dramatiq middleware for jobfleet and the Redis stores they share with the API (lowest layer)."""
