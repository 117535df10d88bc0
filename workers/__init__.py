"""The worker fleet: broker construction, job types and their actors (never imports app/)."""
