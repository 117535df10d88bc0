"""jobfleet: process-level plumbing shared by the API, the workers and the operator CLI."""

__version__ = "0.1.0"
