"""Sweeps against the real embedded PostgreSQL: one directory, a cell per sub-directory, sweep.json."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loadgen.embedded import EmbeddedPostgres


def _env() -> dict[str, str]:
    return dict(os.environ)


@pytest.mark.slow
def test_small_sweep_hotter_bank_conflicts_more(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    from conftest import run_cli

    scenario = tmp_path / "small.toml"
    scenario.write_text('name = "small"\naccounts = [10, 1000]\nusers = [20]\nduration = "3s"\nseed = 5\n'
                        '[postgres]\nlock_timeout_ms = 1\n')
    out = tmp_path / "out"
    proc = run_cli("run", str(scenario), "--out", str(out), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "cell 1/2  accounts=10" in proc.stdout and "cell 2/2  accounts=1000" in proc.stdout
    (sweep_dir,) = out.iterdir()
    index = json.loads((sweep_dir / "sweep.json").read_text())
    assert index["completed"] and index["sweep_keys"] == ["accounts"]  # a one-value list is no sweep
    cells = index["cells"]
    assert [c["status"] for c in cells] == ["done", "done"]
    rates = {}
    for c in cells:
        run_dir = sweep_dir / c["run_dir"]
        doc = json.loads((run_dir / "run.json").read_text())
        assert doc["cell"]["slug"] == c["slug"] == run_dir.name
        assert doc["invariants_hold"] and doc["scenario"]["accounts"] == c["settings"]["accounts"]
        assert doc["keys"]["collision_probability"] == pytest.approx(1 / c["settings"]["accounts"])
        table = pq.read_table(run_dir / "attempts.parquet")
        assert set(table.column("cell").to_pylist()) == {c["slug"]}
        assert c["summary"]["commits"] > 0
        rates[c["settings"]["accounts"]] = c["summary"]["conflict_rate"] + c["summary"]["outcomes"].get("lock_timeout", 0) / c["summary"]["attempts"]
    assert rates[10] > rates[1000] * 2, rates


@pytest.mark.slow
def test_interrupted_sweep_keeps_finished_cells(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    scenario = tmp_path / "long.toml"
    scenario.write_text(
        'name = "long"\nusers = 5\n[[cells]]\naccounts = 10\nduration = "2s"\n'
        '[[cells]]\naccounts = [20, 30]\nduration = "30s"\n'
    )
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgen.cli", "run", str(scenario), "--out", str(out), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            index = next(out.glob("*/sweep.json"), None)
            if index is not None:
                cells = json.loads(index.read_text())["cells"]
                if cells[1]["status"] == "running":
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the sweep never reached its second cell")
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "[2/3]" not in stdout and "cell 2/3" not in stdout  # -q: no progress lines
    doc = json.loads(index.read_text())
    assert [c["status"] for c in doc["cells"]] == ["done", "interrupted", "not run"]
    assert not doc["completed"] and doc["ended_at"]
    assert all((index.parent / c["run_dir"] / "attempts.parquet").is_file() for c in doc["cells"][:2])
    assert doc["cells"][2]["run_dir"] is None
    assert "interrupted" in stdout
