"""Live contention counters: what the Contention tab derives from attempts, without a database."""

from __future__ import annotations

import random

from loadgen.engine.live import ContentionCounters, LiveRecorder, Timeline, merge, view


def _feed(counters: ContentionCounters, rng: random.Random, transactions: int) -> tuple[int, int, int]:
    """Simulated transactions: each conflicts a random number of times, then commits."""
    attempts = conflicts = retried = 0
    for _ in range(transactions):
        tries = 1 + min(rng.randrange(4), rng.randrange(4))
        payer, payee = rng.sample(range(1, 11), 2)
        for n in range(1, tries + 1):
            outcome, state = ("committed", None) if n == tries else ("conflict", "40001")
            counters.add_attempt(outcome, state, n, payer, payee)
            attempts += 1
            conflicts += outcome == "conflict"
        counters.add_transaction(tries, True)
        retried += tries > 1
    return attempts, conflicts, retried


def test_view_matches_the_definitions_in_metrics() -> None:
    c = ContentionCounters()
    attempts, conflicts, retried = _feed(c, random.Random(7), 500)
    v = view(c.snapshot())
    assert v["attempts"] == attempts and v["commits"] == 500 and v["transactions"] == 500
    assert v["conflict_rate"] == conflicts / attempts
    assert v["retried_share"] == retried / 500
    assert v["retries_per_commit"] == (attempts - 500) / 500
    assert sum(h["transactions"] for h in v["attempts_histogram"]) == 500
    assert sum(h["attempts"] * h["transactions"] for h in v["attempts_histogram"]) == attempts
    assert sum(o["count"] for o in v["outcomes"]) == attempts
    assert {(o["outcome"], o["sqlstate"]) for o in v["outcomes"]} == {("committed", None), ("conflict", "40001")}
    # Every conflict touches two accounts; with 10 accounts the top list holds them all.
    assert sum(a["contention_failures"] for a in v["hot_accounts"]) == 2 * conflicts
    assert [a["contention_failures"] for a in v["hot_accounts"]] == sorted(
        (a["contention_failures"] for a in v["hot_accounts"]), reverse=True
    )


def test_empty_counters_have_no_rates() -> None:
    v = view(ContentionCounters().snapshot())
    assert v["attempts"] == 0 and v["conflict_rate"] is None and v["retries_per_commit"] is None
    assert v["attempts_histogram"] == [] and v["hot_accounts"] == []


def test_merge_adds_workers_up() -> None:
    a, b = ContentionCounters(), ContentionCounters()
    _feed(a, random.Random(1), 200)
    _feed(b, random.Random(2), 300)
    merged = view(merge([a.snapshot(), b.snapshot()]))
    va, vb = view(a.snapshot()), view(b.snapshot())
    for key in ("attempts", "commits", "conflicts", "retries", "transactions"):
        assert merged[key] == va[key] + vb[key]
    assert sum(o["count"] for o in merged["outcomes"]) == merged["attempts"]
    assert sum(h["transactions"] for h in merged["attempts_histogram"]) == 500


def test_live_recorder_records_and_counts() -> None:
    c = ContentionCounters()
    rec = LiveRecorder("run-x", c)
    rec.add(("t1", 1, 0.0, 1.0, "conflict", "40001", None, 3, 4, 1, 0.0, False, 0.0, None), 1)
    rec.add(("t1", 2, 0.0, 1.0, "committed", None, None, 3, 4, 1, 0.0, False, 0.0, None), 1)
    assert len(rec) == 2 and rec.to_table().num_rows == 2
    assert (c.attempts, c.conflicts, c.commits, c.retries) == (2, 1, 1, 1)
    assert c.hot == {3: 1, 4: 1}


def test_timeline_rates_from_cumulative_totals() -> None:
    tl = Timeline()
    base = {"attempts": 0, "conflicts": 0, "commits": 0}
    tl.sample(base, users=5, now=100.0)
    tl.sample({"attempts": 200, "conflicts": 50, "commits": 150}, users=5, now=102.0)
    tl.sample({"attempts": 200, "conflicts": 50, "commits": 150}, users=0, now=103.0)
    p1, p2 = tl.points
    assert p1["conflict_rate"] == 0.25 and p1["throughput_commits_per_s"] == 75.0 and p1["users"] == 5
    assert p2["conflict_rate"] is None and p2["throughput_commits_per_s"] == 0.0
