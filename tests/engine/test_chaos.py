"""Faults during real runs: terminated backends, a server restart, a database that is gone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loadgen.engine import runner
from loadgen.engine.chaos import Chaos
from loadgen.engine.options import RunOptions
from loadgen.model.scenario import Scenario
from loadgen.targets.base import EmbeddedTarget
from loadgen.targets.embedded import EmbeddedPostgres


@pytest.mark.slow
def test_chaos_run_loses_nothing(target: EmbeddedTarget, tmp_path: Path) -> None:
    scenario = Scenario(accounts=50, users=20, spawn_rate=20, duration_s=6)
    chaos = Chaos(kill_every_s=1.0, kill_fraction=0.5, restart_at_s=3.0)
    result = runner.run(scenario, target, tmp_path, RunOptions(chaos=chaos))
    df = pq.read_table(result.run_dir / "attempts.parquet").to_pandas()

    kinds = [f["kind"] for f in result.faults]
    assert "server_restart_end" in kinds
    assert sum(f.get("backends", 0) for f in result.faults if f["kind"] == "terminate_backends") > 0
    hit = df[df["outcome"] == "connection_error"]
    assert len(hit) > 0
    # Nothing lost or invented: the file matches Locust's count, and the bank its ledger.
    assert len(df) == result.locust_counts["attempts"]
    assert result.invariants_hold, result.invariants
    assert result.connections["left_open"] == 0
    # Users came back after the restart: commits after the restart ended.
    restart_end = next(f["at"] for f in result.faults if f["kind"] == "server_restart_end")
    after = df[(df["started_at"].astype("int64") / 1e6 > restart_end) & (df["outcome"] == "committed")]
    assert len(after) > 0
    # ...without hammering a dead server: a retry after a connection error waited first.
    next_try = hit[["txn_id", "attempt"]].assign(attempt=hit["attempt"] + 1)
    retries_after_error = df.merge(next_try, on=["txn_id", "attempt"])
    assert len(retries_after_error) > 0
    assert (retries_after_error["backoff_ms"] >= 10).all()
    doc = json.loads((result.run_dir / "run.json").read_text())
    assert [f["kind"] for f in doc["faults"]] == kinds


@pytest.mark.slow
def test_unreachable_database_ends_run_with_results_written(tmp_path: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="lg-gone-", dir="/tmp"))
    server = EmbeddedPostgres(home)
    try:
        server.ensure_running()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loadgen.cli",
                "run",
                "--accounts",
                "100",
                "--users",
                "5",
                "--duration",
                "2m",
                "--unreachable-limit",
                "3s",
                "--out",
                str(tmp_path),
                "-q",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**__import__("os").environ, "LOADGEN_HOME": str(home)},
        )
        deadline = time.monotonic() + 60
        while not any(tmp_path.glob("run-*")) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)
        server.stop(force=True)  # under the live run: that is the point
        out, err = proc.communicate(timeout=90)
    finally:
        server.stop(force=True)
        shutil.rmtree(home, ignore_errors=True)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("loadgen: run ended early: the database has been unreachable")
    (run_dir,) = tmp_path.glob("run-*")
    doc = json.loads((run_dir / "run.json").read_text())
    assert doc["completed"] is False and doc["aborted"]
    assert pq.read_metadata(run_dir / "attempts.parquet").num_rows == doc["summary"]["attempts"] > 0


@pytest.mark.slow
def test_report_shows_the_faults(target: EmbeddedTarget, tmp_path: Path) -> None:
    scenario = Scenario(accounts=50, users=10, spawn_rate=10, duration_s=3)
    result = runner.run(scenario, target, tmp_path, RunOptions(chaos=Chaos(kill_every_s=1.0, kill_fraction=0.5)))
    assert result.report is not None
    html = result.report.read_text()
    assert "Faults injected" in html and "terminate_backends" in html
    assert "fault injected" in html  # the legend of the vertical markers on the time chart
