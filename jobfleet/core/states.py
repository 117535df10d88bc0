"""One vocabulary for job states and attempt outcomes, shared by the store, the middleware, metrics and the API."""

from __future__ import annotations

from typing import Final, Literal, get_args

#: Where a job is. ``scheduled`` is ``queued`` with a start time in the future (the API derives it).
JobState = Literal["queued", "scheduled", "running", "retrying", "succeeded", "failed", "dead", "cancelled"]
JOB_STATES: Final[tuple[JobState, ...]] = get_args(JobState)
#: States a job never leaves (``dead`` leaves only by an operator's replay or purge).
TERMINAL_STATES: Final[frozenset[JobState]] = frozenset({"succeeded", "failed", "dead", "cancelled"})

#: What one delivery ended as: the attempt succeeded, will be retried, went to the DLQ, was cancelled, or was
#: skipped because its idempotency key was already done (``duplicate``).
Outcome = Literal["succeeded", "retrying", "dead", "cancelled", "duplicate"]
OUTCOMES: Final[tuple[Outcome, ...]] = get_args(Outcome)
#: Outcomes that end the job (the end-to-end histogram observes these).
FINAL_OUTCOMES: Final[frozenset[Outcome]] = frozenset({"succeeded", "dead", "cancelled"})

#: Why a job was dead-lettered.
DeadLetterReason = Literal["permanent", "exhausted", "crash_loop", "poison"]
DEAD_LETTER_REASONS: Final[tuple[DeadLetterReason, ...]] = get_args(DeadLetterReason)
