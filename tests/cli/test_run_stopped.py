"""Ctrl-C and SIGTERM during a real ``loadgen run`` subprocess: stop cleanly, lose nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from commandline import start_cli, wait_until

from loadgen.targets.embedded import EmbeddedPostgres


def _start(out: Path) -> subprocess.Popen[str]:
    return start_cli("run", "--accounts", "20", "--users", "20", "--duration", "60", "--out", str(out), "-q")


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
    assert "(results, invariants; no report drawn)" in out  # the fixed cost says what its teardown held


@pytest.mark.slow
def test_second_ctrl_c_exits_at_once(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    proc = _start(tmp_path)
    _wait_for_run_dir(tmp_path, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130


@pytest.mark.slow
def test_ctrl_c_stops_a_distributed_run(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    """The master of ``--processes 2``, started as a script would (SIGINT ignored): the workers' users finish
    their transactions, every attempt they made is written, the process leaves within 10 s."""
    proc = start_cli(
        "run",
        "--processes",
        "2",
        "--users",
        "20",
        "--accounts",
        "100",
        "--duration",
        "60",
        "--out",
        str(tmp_path),
        "-q",
        ignore_sigint=True,
    )
    try:
        wait_until(lambda: len(list(tmp_path.glob("run-*/attempts.parts/part-*"))) >= 2, proc, "the workers' first attempts on disk")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert took < 10, f"took {took:.1f} s"
    assert "Traceback" not in err
    (run_dir,) = tmp_path.glob("run-*")
    doc = json.loads((run_dir / "run.json").read_text())
    assert doc["status"] == "interrupted" and doc["invariants_hold"], doc["invariants"]
    outcomes = pq.read_table(run_dir / "attempts.parquet").column("outcome").to_pylist()
    assert len(outcomes) == doc["summary"]["attempts"] > 0
    assert "connection_error" not in outcomes
    assert doc["connections"]["left_open"] == 0
