"""Published Aurora DSQL figures the report cites beside the user's own baseline.

Each figure carries its source: the talk's code repository (its README's chapter on
OCC and retries; that README changed over time, so ``SOURCE`` names the chapter read)
and Marc Bowes's note on hot keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadgen.model.baseline import TALK_NO_RETRY_CONFLICT_RATE, TALK_RETRY_CONFLICT_RATE

__all__ = [
    "Reference",
    "TALK_NO_RETRY",
    "TALK_RETRY",
    "TALK_LARGE",
    "SOURCE",
    "HOT_KEY_SOURCE",
    "TALK_REPLAY",
    "ReplayCheck",
    "replay_checks",
]

SOURCE = (
    'AWS re:Invent 2025 DAT401 "Amazon Aurora DSQL: A developer\'s perspective", '
    "code talk repository marcbowes/riv25-codetalk on GitHub, README as of commit b8e07e6 (2025-11-24): "
    'chapter 02 "Handling Optimistic Concurrency Control (OCC)" (the 1,000-account runs; chapter 04 before 2025-11-11) '
    'and chapter 04 "Analyzing Query Performance" (the 1,000,000-account run; chapter 06 before)'
)
HOT_KEY_SOURCE = 'Marc Bowes, "Avoid hot keys" (2025): one hot row commits at about 7 ms p50, about 140 transactions/s per key'


@dataclass(frozen=True)
class Reference:
    """One published measurement."""

    label: str
    accounts: int
    concurrency: int
    calls: int | None
    succeeded_share: float
    conflict_rate: float
    retried_share: float | None
    retries: int | None
    max_retries: int | None
    calls_per_s: float
    mean_ms: float
    note: str

    @property
    def attempts_per_commit(self) -> float | None:
        """Attempts per successful call when every call was retried to success."""
        if self.retries is None or not self.calls:
            return None
        return (self.calls + self.retries) / self.calls


#: 1,000 accounts, 1,000 parallel calls x 10 batches, no retry: 656 of 10,000 calls failed with 40001/OC000.
TALK_NO_RETRY = Reference(
    label="DSQL talk, no retry",
    accounts=1000,
    concurrency=1000,
    calls=10_000,
    succeeded_share=0.9344,
    conflict_rate=TALK_NO_RETRY_CONFLICT_RATE,
    retried_share=None,
    retries=None,
    max_retries=None,
    calls_per_s=908.0,
    mean_ms=20.12,
    note="min 9 ms, max 663 ms per call, through AWS Lambda",
)

#: The same with an immediate, unbounded retry loop: 735 retries, 642 calls retried, at most 4 retries.
TALK_RETRY = Reference(
    label="DSQL talk, immediate retry",
    accounts=1000,
    concurrency=1000,
    calls=10_000,
    succeeded_share=1.0,
    conflict_rate=TALK_RETRY_CONFLICT_RATE,
    retried_share=0.0642,
    retries=735,
    max_retries=4,
    calls_per_s=931.0,
    mean_ms=19.29,
    note="100% succeeded; conflict rate = 735 retries / 10,735 attempts",
)

#: 1,000,000 accounts, 10,000 parallel calls (50 workers x 200), 100 iterations: 1,000,000 calls,
#: 6,667 retries, 6,584 calls (0.66%) retried, at most 2 retries.
TALK_LARGE = Reference(
    label="DSQL talk, 1M accounts x 10,000 parallel",
    accounts=1_000_000,
    concurrency=10_000,
    calls=1_000_000,
    succeeded_share=1.0,
    conflict_rate=6_667 / (1_000_000 + 6_667),
    retried_share=0.0066,
    retries=6_667,
    max_retries=2,
    calls_per_s=4192.0,
    mean_ms=409.45,
    note="1,000,000 calls from 50 workers x 200 parallel; conflict rate = 6,667 retries / 1,006,667 attempts",
)


#: The built-in scenario that replays the talk's immediate-retry row on a local database.
TALK_REPLAY = "talk-replay"


@dataclass(frozen=True)
class ReplayCheck:
    """One figure of a talk replay against the published one, and the tolerance it must meet."""

    name: str
    measured: float | None
    published: float
    tolerance: str
    ok: bool


def replay_checks(conflict_rate: float | None, retried_share: float | None, max_attempts: int) -> list[ReplayCheck]:
    """A replay's figures against ``TALK_RETRY``: conflicts/attempts within 1 point of 6.85%,
    transactions retried within 1.5 points of 6.42%, at most 6 attempts for one transaction
    (the talk's most was 5: 4 retries)."""
    assert TALK_RETRY.retried_share is not None
    return [
        ReplayCheck(
            "conflicts / attempts",
            conflict_rate,
            TALK_RETRY.conflict_rate,
            "+-1 point",
            conflict_rate is not None and abs(conflict_rate - TALK_RETRY.conflict_rate) <= 0.01,
        ),
        ReplayCheck(
            "transactions retried",
            retried_share,
            TALK_RETRY.retried_share,
            "+-1.5 points",
            retried_share is not None and abs(retried_share - TALK_RETRY.retried_share) <= 0.015,
        ),
        ReplayCheck("most attempts for one transaction", float(max_attempts), 5.0, "at most 6", 0 < max_attempts <= 6),
    ]
