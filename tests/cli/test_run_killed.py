"""A real ``loadgen run`` killed with SIGKILL mid-run: what reached disk, and ``loadgen report`` on it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest
from commandline import run_cli

from loadgen.results.metrics import summarize
from loadgen.results.stream import PARTS_DIR
from loadgen.targets.embedded import EmbeddedPostgres


@pytest.mark.slow
def test_sigkill_mid_run_then_report(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgen.cli", "run", "--accounts", "50", "--users", "10", "--duration", "60", "--out", str(tmp_path), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 90
        while len(list(tmp_path.glob(f"run-*/{PARTS_DIR}/part-*.parquet"))) < 3:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no attempts reached disk"
            time.sleep(0.2)
        (run_dir,) = tmp_path.glob("run-*")
        started = json.loads((run_dir / "run.json").read_text())
        assert started["status"] == "running" and started["completed"] is False
        database = started["target"]["database"]
        time.sleep(1.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert not (run_dir / "attempts.parquet").exists()  # the run never got to its end

    done = run_cli("report", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert "cut off" in done.stdout
    doc = json.loads((run_dir / "run.json").read_text())
    assert doc["status"] == "cut off" and doc["completed"] is False and doc["cut_off"]["last_write"]
    table = pq.read_table(run_dir / "attempts.parquet")
    assert table.num_rows == doc["cut_off"]["attempts_on_disk"] == doc["summary"]["attempts"] > 0
    assert doc["summary"] == summarize(table.to_pandas())  # recovered without reading every column: the same figures
    assert not (run_dir / PARTS_DIR).exists()
    html = (run_dir / "report.html").read_text()
    assert "cut off" in html

    # The killed run's database stays (nobody dropped it); every commit on disk is in its ledger.
    committed = {t for t, o in zip(table.column("txn_id").to_pylist(), table.column("outcome").to_pylist()) if o == "committed"}
    assert committed
    with psycopg.connect(embedded.conninfo_for(database), autocommit=True) as c:
        ledger = {r[0] for r in c.execute("SELECT id::text FROM transfers")}
    assert committed <= ledger
    # ...and what the last second held never reached disk: at most a couple of seconds' worth.
    assert len(ledger - committed) < len(committed)
    assert database in embedded.prune()
