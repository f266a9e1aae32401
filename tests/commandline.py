"""The real ``loadgen`` command line in a subprocess, as a user or a script starts it.

Shared by the tests in every folder (import it by name: tests/ is on ``sys.path`` through
conftest.py); a test module never imports another test module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["run_cli", "start_cli", "sweep_statuses", "wait_until"]


def start_cli(*args: str, ignore_sigint: bool = False) -> subprocess.Popen[str]:
    """Start the real ``loadgen`` command line in the background (pipes for its output).

    ``ignore_sigint``: as a script's ``loadgen ... &`` starts it, SIGINT ignored, so Python's own handler never comes.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "loadgen.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None,
    )


def wait_until(ready: Callable[[], bool], proc: subprocess.Popen[str], what: str, timeout: float = 120, every: float = 0.2) -> None:
    """Poll ``ready`` while ``proc`` lives; fail saying ``what`` never happened (or how ``proc`` ended)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(every)


def sweep_statuses(out: Path) -> list[str]:
    """The cells' statuses of the one sweep under ``out`` ([] before its sweep.json is there, or while it is rewritten)."""
    try:
        index = json.loads(next(out.glob("sweep-*/sweep.json")).read_text())
        return [c["status"] for c in index["cells"]]
    except (StopIteration, OSError, ValueError):
        return []


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``loadgen`` command line in a subprocess."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "loadgen.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
    )
