"""The job implementations: plain functions that know nothing of Dramatiq, Redis or HTTP frameworks."""
