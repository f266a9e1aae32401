"""Sweeps that survive: killed (SIGKILL) or stopped (Ctrl-C) mid-way, then ``loadgen run --resume SWEEP_DIR``
runs the cells not finished, into the same directory."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest
from commandline import run_cli, start_cli, sweep_statuses, wait_until

from loadgen.targets.embedded import EmbeddedPostgres


def _index(sweep_dir: Path) -> dict[str, Any]:
    return json.loads((sweep_dir / "sweep.json").read_text())


@pytest.mark.slow
def test_killed_sweep_resumed_to_completion(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    scenario = tmp_path / "three.toml"
    scenario.write_text('name = "three"\nusers = 8\nduration = "4s"\n[[cells]]\naccounts = [20, 200, 2000]\n')
    out = tmp_path / "out"
    proc = start_cli("run", str(scenario), "--out", str(out), "-q")
    try:
        # Killed once the second cell's first attempts reached disk.
        wait_until(
            lambda: sweep_statuses(out)[:2] == ["done", "running"] and any(out.glob("sweep-*/02_*/attempts.parts/part-*")),
            proc,
            "the sweep's second cell",
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    (sweep_dir,) = out.glob("sweep-*")

    # What the kill left: the first cell finished, the second was under way, the third never started.
    assert [c["status"] for c in _index(sweep_dir)["cells"]] == ["done", "running", "not run"]

    resumed = run_cli("run", "--resume", str(sweep_dir), timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and "2 of 3 cells" in resumed.stdout
    index = _index(sweep_dir)
    assert index["completed"] is True
    assert [c["status"] for c in index["cells"]] == ["done", "done", "done"]
    for c in index["cells"]:
        run_dir = sweep_dir / c["run_dir"]
        doc = json.loads((run_dir / "run.json").read_text())
        assert doc["invariants_hold"] and doc["status"] == "completed"
        assert pq.read_metadata(run_dir / "attempts.parquet").num_rows == doc["summary"]["attempts"] > 0
    # The cut-off attempt at the second cell is kept aside, not mixed into the sweep.
    assert len(list((sweep_dir / ".cut-off").iterdir())) == 1
    html = (sweep_dir / "report.html").read_text()
    assert all(c["slug"] in html for c in index["cells"])

    # Nothing left to run: said in one line, exit 0.
    again = run_cli("run", "--resume", str(sweep_dir), timeout=60)
    assert again.returncode == 0 and "nothing to resume" in again.stdout


@pytest.mark.slow
def test_ctrl_c_after_a_cell_then_resume(embedded: EmbeddedPostgres, conn: psycopg.Connection, tmp_path: Path) -> None:
    """SIGINT the moment the first cell is done (in the next cell's set-up, or its first second of load),
    with SIGINT ignored as a script's ``loadgen run ... &`` leaves it: the sweep stops there, drops that
    cell's database, exits 130 in seconds; ``--resume`` finishes it."""
    scenario = tmp_path / "two.toml"
    scenario.write_text('name = "two"\nusers = 4\nduration = "2s"\n[[cells]]\naccounts = [23, 2311]\n')
    out = tmp_path / "out"
    proc = start_cli("run", str(scenario), "--out", str(out), "-q", ignore_sigint=True)
    try:
        wait_until(lambda: sweep_statuses(out)[:1] == ["done"], proc, "the first cell's end", every=0.02)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "--resume" in stderr
    (sweep_dir,) = out.glob("sweep-*")
    statuses = [c["status"] for c in _index(sweep_dir)["cells"]]
    assert statuses in (["done", "not run"], ["done", "interrupted"]), statuses
    if statuses[1] == "not run":  # stopped while it set up: no empty run directory left behind
        assert not any(sweep_dir.glob("02_*")), list(sweep_dir.iterdir())
    left = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'lg_02_accounts_2311%'").fetchall()
    assert left == [], left

    resumed = run_cli("run", "--resume", str(sweep_dir), "-q", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "1 of 2 cells" in resumed.stdout
    assert [c["status"] for c in _index(sweep_dir)["cells"]] == ["done", "done"]
    assert (sweep_dir / "report.html").is_file()


@pytest.mark.slow
def test_resume_needs_a_sweep_directory(tmp_path: Path) -> None:
    proc = run_cli("run", "--resume", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "sweep.json" in proc.stderr


@pytest.mark.slow
def test_resume_refuses_workload_options(tmp_path: Path) -> None:
    (tmp_path / "sweep.json").write_text("{}")
    proc = run_cli("run", "--resume", str(tmp_path), "--accounts", "10")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "as recorded" in proc.stderr
