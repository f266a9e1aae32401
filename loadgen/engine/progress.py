"""The live progress line a headless run prints every few seconds, read from Locust's statistics.

Locust counts attempts and their failures, not outcomes, so the line shows the failed
attempt rate (loadgen.results.metrics); the conflict and contention rates come in the
summary at the end, from the attempt records.
"""

from __future__ import annotations

from typing import Any

from loadgen.engine.users import ATTEMPT, NAME, TRANSACTION
from loadgen.results.metrics import Counts, rates

__all__ = ["progress_line"]


def progress_line(elapsed_s: float, env: Any) -> str:
    a = env.stats.get(NAME, ATTEMPT)
    t = env.stats.get(NAME, TRANSACTION)
    counts = Counts(attempts=a.num_requests, commits=t.num_requests - t.num_failures, failed_attempts=a.num_failures)
    rate = rates(counts)["failed_attempt_rate"] or 0.0
    users = env.runner.user_count if env.runner else 0
    return (
        f"  {elapsed_s:5.0f}s  users {users:5d}  attempts {counts.attempts:8d}  commits {counts.commits:8d}"
        f"  failed attempts {counts.failed_attempts:7d} ({rate:6.2%})"
    )
