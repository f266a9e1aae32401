"""The process-wide Ctrl-C handler (loadgen.engine.interrupts), in a child process started with SIGINT ignored.

The handler must outlive a run: gevent puts a signal back to its default action when
its last watcher stops, so a handler that lived only while a run's users ran let a
Ctrl-C between two cells of a sweep kill the process without a word.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

SCRIPT = """
import locust  # gevent first, as loadgen.cli does
import os, signal, gevent
from loadgen.engine import interrupts

interrupts.install()
stopped = []
with interrupts.stopping(lambda: stopped.append(1)):  # a cell's load: the signal stops it
    os.kill(os.getpid(), signal.SIG)
    gevent.sleep(0.5)
print("stopped", len(stopped), flush=True)
try:
    os.kill(os.getpid(), signal.SIG)  # after the cell: the second signal leaves at once
    gevent.sleep(2)
    print("survived", flush=True)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
"""

BETWEEN = """
import locust
import os, signal, gevent
from loadgen.engine import interrupts

interrupts.install()
with interrupts.stopping(lambda: None):
    gevent.sleep(0.01)  # a cell ran and ended; no signal came
try:
    os.kill(os.getpid(), signal.SIG)  # between cells: the main greenlet is interrupted
    gevent.sleep(2)
    print("survived", flush=True)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
"""


def _run(script: str, sig: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script.replace("signal.SIG)", f"signal.{sig})")],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )


@pytest.mark.slow
def test_first_signal_stops_the_run_second_leaves_at_once() -> None:
    for sig in ("SIGINT", "SIGTERM"):
        proc = _run(SCRIPT, sig)
        assert proc.returncode == 130, (sig, proc.stdout, proc.stderr)
        assert proc.stdout.splitlines() == ["stopped 1"], (sig, proc.stdout)
        assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_signal_between_runs_interrupts_the_main_greenlet() -> None:
    for sig in ("SIGINT", "SIGTERM"):
        proc = _run(BETWEEN, sig)
        assert proc.returncode == 0, (sig, proc.stdout, proc.stderr)
        assert proc.stdout.splitlines() == ["KeyboardInterrupt"], (sig, proc.stdout)
        assert "Traceback" not in proc.stderr
