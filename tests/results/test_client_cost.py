"""loadgen.results.client: the load generator's own cost, computed once for run.json, summary and report."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from loadgen.results.client import (
    SATURATED_SHARE,
    attempt_span,
    busiest_share,
    client_load,
    fixed_cost,
    process_start_time,
    record_fixed_cost,
    saturation_note,
)
from loadgen.results.records import RunRecord


def test_one_process() -> None:
    load = client_load(10.0, 4.0, 40_000)
    assert load["cpu_per_attempt_us"] == 100.0
    assert load["cpu_utilization"] == load["busiest_process_share"] == 0.4
    assert load["saturated"] is False and "processes" not in load
    assert saturation_note(load) is None


def test_a_saturated_process_names_the_remedy() -> None:
    load = client_load(10.0, 9.6, 100_000)
    assert load["saturated"] is True
    note = saturation_note(load)
    assert note is not None and "96% of one core" in note and "--processes 2" in note


def test_workers_each_count_against_their_own_core() -> None:
    # Two workers at 60% each: 1.2 cores in all, but no process is saturated.
    workers = [{"cpu_s": 6.0, "wall_s": 10.0}, {"cpu_s": 6.0, "wall_s": 10.0}]
    load = client_load(10.0, 0.2, 120_000, workers)
    assert load["cpu_utilization"] == pytest.approx(1.22) and load["busiest_process_share"] == 0.6
    assert load["saturated"] is False and load["processes"] == 2 and load["master_cpu_s"] == 0.2
    hot = client_load(10.0, 0.2, 120_000, [{"cpu_s": 9.5, "wall_s": 10.0}, {"cpu_s": 6.0, "wall_s": 10.0}])
    assert hot["saturated"] is True and "--processes 4" in (saturation_note(hot) or "")


def test_older_run_json_without_the_busiest_share() -> None:
    assert busiest_share({"cpu_utilization": 0.95}) == 0.95
    assert saturation_note({"cpu_utilization": SATURATED_SHARE - 0.01}) is None
    assert saturation_note({}) is None and saturation_note(None) is None


def test_process_start_time_is_this_process() -> None:
    start = process_start_time()
    assert start is not None and 0 < time.time() - start < 24 * 3600


def test_fixed_cost_and_attempt_span(tmp_path: Path) -> None:
    t0 = pd.Timestamp("2026-11-28 10:00:00", tz="UTC")
    frame = pd.DataFrame({"started_at": [t0, t0 + pd.Timedelta(seconds=5)], "latency_ms": [3000.0, 250.0]})
    first, last = attempt_span(frame)  # type: ignore[misc]
    assert (first, last) == (t0.timestamp(), t0.timestamp() + 5.25)
    assert attempt_span(frame.iloc[:0]) is None
    fixed = fixed_cost(first - 1.2, first, last, last + 0.3)
    assert fixed == {"startup_s": 1.2, "teardown_s": 0.3, "total_s": 1.5}
    assert fixed_cost(None, first, last, last) is None
    RunRecord(run_id="r", scenario={}, target={}, client={"cpu_s": 1.0}).write(tmp_path)
    record_fixed_cost(tmp_path, fixed)
    doc = json.loads((tmp_path / "run.json").read_text())
    assert doc["client"] == {"cpu_s": 1.0, "fixed_cost_s": fixed} and doc["run_id"] == "r"
