"""The live progress line a headless run prints every few seconds, read from Locust's statistics."""

from __future__ import annotations

from typing import Any

from loadgen.engine.users import ATTEMPT, NAME, TRANSACTION

__all__ = ["progress_line"]


def progress_line(elapsed_s: float, env: Any) -> str:
    a = env.stats.get(NAME, ATTEMPT)
    t = env.stats.get(NAME, TRANSACTION)
    commits = t.num_requests - t.num_failures
    failed = a.num_failures
    rate = failed / a.num_requests if a.num_requests else 0.0
    users = env.runner.user_count if env.runner else 0
    return (
        f"  {elapsed_s:5.0f}s  users {users:5d}  attempts {a.num_requests:8d}  commits {commits:8d}"
        f"  failed attempts {failed:7d} ({rate:6.2%})"
    )
