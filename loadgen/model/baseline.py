"""The baseline every hot spot is read against: the DSQL talk's conditions, replayed.

The talk (re:Invent 2025 DAT401, marcbowes/riv25-codetalk) ran "1,000 parallel calls"
through Lambda at 908 calls/s of about 20 ms: about 18 transactions in flight at the
database (Little's law), not 1,000. A cell replays it when it runs the same load on the
same data: 1,000 accounts, calls started at the talk's rate whatever their latency (an
open loop), retried at once. Such a cell is the baseline of the report's hot-spot chart
and of the sweep's table; a closed loop of 1,000 users is a different experiment (about
1,000 in flight), shown on the concurrency axis.

``load_label`` names a cell's load the same way in the sweep's table, the report's
series and its sentences.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "TALK_ACCOUNTS",
    "TALK_CALLS_PER_S",
    "TALK_RETRY_CONFLICT_RATE",
    "TALK_NO_RETRY_CONFLICT_RATE",
    "TALK_CONDITIONS",
    "is_talk_baseline",
    "load_label",
    "axis",
]

TALK_ACCOUNTS = 1000
TALK_CALLS_PER_S = 908.0
#: Published, immediate retry: 735 conflicts in 10,735 attempts (every failed attempt counted, as the conflict rate does).
TALK_RETRY_CONFLICT_RATE = 735 / 10_735
#: Published, no retry: 656 of 10,000 calls failed with 40001/OC000.
TALK_NO_RETRY_CONFLICT_RATE = 0.0656
#: The baseline's conditions in one sentence (the report states it).
TALK_CONDITIONS = (
    "The baseline replays the DSQL talk's conditions: 1,000 accounts of balance 100, transfers of 1 between two random "
    "accounts, 908 calls/s started whatever their latency (an open loop; about 18 in flight, as the talk's 908/s x 20 ms), "
    "attempts of about 20 ms (emulated on COMMIT), an immediate retry without backoff."
)
#: An open loop within this share of the talk's rate counts as the talk's load.
_RATE_TOLERANCE = 0.1


def _get(scenario: Mapping[str, Any], key: str) -> Any:
    retry = scenario.get("retry")
    if key.startswith("retry.") and isinstance(retry, Mapping):
        return retry.get(key[6:])
    return scenario.get(key)


def is_talk_baseline(scenario: Mapping[str, Any]) -> bool:
    """Whether a run's scenario (run.json's, or ``Scenario.to_dict()``) replays the talk's conditions."""
    rate = _get(scenario, "arrival_rate")
    return (
        _get(scenario, "accounts") == TALK_ACCOUNTS
        and _get(scenario, "load") == "open"
        and isinstance(rate, (int, float))
        and abs(rate / TALK_CALLS_PER_S - 1) <= _RATE_TOLERANCE
        and _get(scenario, "retry.backoff") in (None, "none")
    )


def load_label(scenario: Mapping[str, Any]) -> str:
    """``open loop 908/s``, ``50 closed-loop users``, ``batches of 1,000``."""
    load, users = _get(scenario, "load") or "closed", _get(scenario, "users")
    if load == "open":
        return f"open loop {_get(scenario, 'arrival_rate') or 0:g}/s"
    if load == "batches":
        return f"batches of {users:,}" if isinstance(users, int) else "batches"
    think = _get(scenario, "think_ms")
    pause = f", think {think:g} ms" if isinstance(think, (int, float)) and think else ""
    return (f"{users:,} closed-loop users" if isinstance(users, int) else "closed loop") + pause


def axis(scenario: Mapping[str, Any]) -> str:
    """Which of the quickstart's two axes a cell is on: ``hot spots`` (the talk's load) or ``concurrency`` (users)."""
    if _get(scenario, "load") == "open":
        return "baseline" if is_talk_baseline(scenario) else "hot spots"
    return "concurrency"
