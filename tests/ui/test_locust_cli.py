"""Locust's own command line on loadgen's locustfile: results written, exit code by loadgen's rule.

Locust would exit 1 on any failed request, and every conflicted attempt is one; loadgen
exits 0 when the invariants hold and 1 when one broke (loadgen.ui.exitcode).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from loadgen.targets.embedded import EmbeddedPostgres
from loadgen.ui import LOCUSTFILE

pytestmark = pytest.mark.slow


def _locust(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "10", "-r", "10", "--out", str(out), *extra]


def _run_json(out: Path) -> dict[str, object]:
    (run_dir,) = [p for p in out.iterdir() if (p / "run.json").is_file()]
    return dict(json.loads((run_dir / "run.json").read_text()))


def test_a_healthy_run_with_conflicts_exits_0(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    # Locust's run time includes seeding the bank: seconds on a busy machine.
    r = subprocess.run(_locust(out, "-t", "8s", "--accounts", "10"), capture_output=True, text=True, timeout=180, env=dict(os.environ))
    assert out.is_dir(), r.stderr[-3000:]
    doc = _run_json(out)
    summary = doc["summary"]
    assert isinstance(summary, dict)
    assert summary["conflicts"] > 0, summary  # Locust saw failed requests: it would have exited 1
    assert "conflict (40001)" in r.stderr  # Locust's own failure table lists them
    assert doc["invariants_hold"] is True
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Shutting down (exit code 0)" in r.stderr


def test_money_from_nowhere_exits_1(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    log = tmp_path / "locust.log"
    before = set(embedded.run_databases())
    with log.open("wb") as f:
        proc = subprocess.Popen(_locust(out, "-t", "6s", "--accounts", "50"), stdout=f, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        # Once this test's bank is seeded (in the run's own database) and transfers commit,
        # someone else credits an account behind loadgen's back.
        deadline = time.monotonic() + 60
        while True:
            new = sorted(set(embedded.run_databases()) - before) if "accounts seeded" in log.read_text() else []
            if new:
                with psycopg.connect(embedded.conninfo_for(new[0]), autocommit=True) as conn:
                    row = conn.execute("SELECT count(*) FROM transfers").fetchone()
                    if row is not None and row[0] > 0:
                        conn.execute("UPDATE accounts SET balance = balance + 1000 WHERE id = 1")
                        break
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert _run_json(out)["invariants_hold"] is False
    assert rc == 1, text[-3000:]
    assert "invariants broken" in text and "Shutting down (exit code 1)" in text


def test_a_breached_gate_exits_3(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    """Locust's own command line honours loadgen's gates: the option, run.json's ``gates``, exit 3."""
    out = tmp_path / "runs"
    r = subprocess.run(
        _locust(out, "-t", "5s", "--accounts", "10", "--max-conflict-rate", "0.001"),
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ),
    )
    doc = _run_json(out)
    gates = doc["gates"]
    assert isinstance(gates, list) and gates[0]["name"] == "max_conflict_rate" and gates[0]["ok"] is False
    assert doc["invariants_hold"] is True
    assert r.returncode == 3, r.stderr[-3000:]
    assert "gate max_conflict_rate breached" in r.stderr and "Shutting down (exit code 3)" in r.stderr
