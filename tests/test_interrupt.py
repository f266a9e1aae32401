"""Ctrl-C and SIGTERM during a real ``loadgen run`` subprocess: stop cleanly, lose nothing."""

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

from loadgen.targets.embedded import EmbeddedPostgres


def _start(out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "loadgen.cli", "run", "--accounts", "20", "--users", "20", "--duration", "60", "--out", str(out), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


def _wait_for_run_dir(out: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    # The run directory appears before users start; give them a moment to work.
    deadline = time.monotonic() + timeout
    while not any(out.glob("run-*")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.2)
    time.sleep(3)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_run_and_keeps_every_attempt(sig: signal.Signals, embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    proc = _start(tmp_path)
    _wait_for_run_dir(tmp_path, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    (run_dir,) = tmp_path.glob("run-*")
    doc = json.loads((run_dir / "run.json").read_text())
    assert doc["completed"] is False
    rows = pq.read_metadata(run_dir / "attempts.parquet").num_rows
    assert rows == doc["summary"]["attempts"] == doc["locust"]["attempts"] > 0
    assert doc["invariants_hold"] is True, doc["invariants"]
    assert doc["connections"]["left_open"] == 0
    assert "run interrupted" in out


@pytest.mark.slow
def test_second_ctrl_c_exits_at_once(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    proc = _start(tmp_path)
    _wait_for_run_dir(tmp_path, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
