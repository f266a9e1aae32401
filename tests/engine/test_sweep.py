"""Sweeps against the real embedded PostgreSQL: one directory, a cell per sub-directory, sweep.json."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from commandline import run_cli, start_cli, sweep_statuses, wait_until

from loadgen.targets.embedded import EmbeddedPostgres


@pytest.mark.slow
def test_small_sweep_hotter_bank_conflicts_more(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    scenario = tmp_path / "small.toml"
    scenario.write_text(
        'name = "small"\nusers = [20]\nduration = "3s"\nseed = 5\n'
        "[[cells]]\naccounts = [10, 1000]\n"
        '[[cells]]\naccounts = 1000\nkeys.distribution = "zipf"\nkeys.zipf_s = 1.2\n'
    )
    out = tmp_path / "out"
    proc = run_cli("run", str(scenario), "--out", str(out), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "cell 1/3  accounts=10 keys=uniform zipf_s=1" in proc.stdout
    assert "cell 3/3  accounts=1000 keys=zipf zipf_s=1.2" in proc.stdout
    (sweep_dir,) = out.iterdir()
    index = json.loads((sweep_dir / "sweep.json").read_text())
    # users = [20] is one value, so no sweep key; zipf_s differs between groups, so it labels every cell.
    assert index["completed"] and index["sweep_keys"] == ["accounts", "keys.distribution", "keys.zipf_s"]
    cells = index["cells"]
    assert [c["status"] for c in cells] == ["done", "done", "done"]
    rates = {}
    for c in cells:
        run_dir = sweep_dir / c["run_dir"]
        doc = json.loads((run_dir / "run.json").read_text())
        assert doc["cell"]["slug"] == c["slug"] == run_dir.name
        assert doc["invariants_hold"] and doc["scenario"]["accounts"] == c["settings"]["accounts"]
        uniform = c["settings"]["keys.distribution"] == "uniform"
        q = doc["keys"]["collision_probability"]
        assert q == pytest.approx(1 / c["settings"]["accounts"]) if uniform else q > 10 / c["settings"]["accounts"]
        table = pq.read_table(run_dir / "attempts.parquet")
        assert set(table.column("cell").to_pylist()) == {c["slug"]}
        assert c["summary"]["commits"] > 0
        # In cc occ (lock_timeout 1 ms) a write-write clash ends as 40001 or 55P03: count both.
        s = c["summary"]
        rates[(c["settings"]["accounts"], c["settings"]["keys.distribution"])] = (
            s["conflicts"] + s["outcomes"].get("lock_timeout", 0)
        ) / s["attempts"]
    assert rates[(10, "uniform")] > 2 * rates[(1000, "uniform")], rates
    assert rates[(1000, "zipf")] > 2 * rates[(1000, "uniform")], rates


@pytest.mark.slow
def test_interrupted_sweep_keeps_finished_cells(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    scenario = tmp_path / "long.toml"
    scenario.write_text(
        'name = "long"\nusers = 5\n[[cells]]\naccounts = 10\nduration = "2s"\n[[cells]]\naccounts = [20, 30]\nduration = "30s"\n'
    )
    out = tmp_path / "out"
    # As a script's `loadgen run ... &` starts it: SIGINT ignored, so Python's own handler never comes.
    proc = start_cli("run", str(scenario), "--out", str(out), "-q", ignore_sigint=True)
    try:
        wait_until(lambda: sweep_statuses(out)[1:2] == ["running"], proc, "the sweep's second cell", timeout=60)
        index = next(out.glob("*/sweep.json"))
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
