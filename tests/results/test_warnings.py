"""Which warnings make the model and the what-if not apply (results.warnings.distortion)."""

from __future__ import annotations

from typing import Any

from loadgen.results.metrics import concurrency_of
from loadgen.results.warnings import distortion, run_warnings


def doc(**over: Any) -> dict[str, Any]:
    """A run.json document of a clean closed-loop run: 20,000 attempts, 5% conflicts, nothing saturated."""
    base: dict[str, Any] = {
        "completed": True,
        "summary": {"attempts": 20000, "conflicts": 1000, "conflict_rate": 0.05, "attempt_latency_ms": {"p50": 2.0}},
        "machine": {"host_cpu_busy": 0.5, "light_rtt_ms": 0.2, "load_average": [1.0], "cpus": 2},
        "scenario": {"transaction": "update-returning", "commit_ms": 0.0},
        "concurrency": concurrency_of(15.0, 16, closed_loop=True),
    }
    base.update(over)
    return base


def test_a_clean_run_has_no_distortion_and_no_warning() -> None:
    assert distortion(doc()) is None and run_warnings(doc()) == []


def test_each_sign_of_an_overloaded_run_is_a_distortion_and_a_warning() -> None:
    saturated = doc(machine={"host_cpu_busy": 0.97, "light_rtt_ms": 0.2})
    queued = doc(summary={**doc()["summary"], "attempt_latency_ms": {"p50": 50.0}})  # 50 ms against 4 x 0.2 ms
    idle_users = doc(concurrency=concurrency_of(700.0, 1000, closed_loop=True))
    for d, sign in ((saturated, "machine was saturated"), (queued, "attempts queued"), (idle_users, "could not keep every user busy")):
        why = distortion(d)
        assert why is not None and sign in why
        assert [w for w in run_warnings(d) if why in w], run_warnings(d)


def test_an_open_loop_below_its_users_is_not_a_distortion() -> None:
    # An open loop asks for fewer in flight than its users by design: shown, not judged.
    assert distortion(doc(concurrency=concurrency_of(18.0, 100, closed_loop=False))) is None
