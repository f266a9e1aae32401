"""Shared fixtures: one real embedded PostgreSQL per test session, in its own state directory.

Locust is imported first, as in loadgen itself: gevent must patch the standard
library before psycopg is imported anywhere in the test process.
"""

from __future__ import annotations

import locust  # noqa: F401  - must precede psycopg

# isort: split

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from loadgen.targets.base import EmbeddedTarget
from loadgen.targets.embedded import EmbeddedPostgres

#: Playwright's browser fixtures, pointed at Debian's chromium (tests/chromium.py).
pytest_plugins = ["chromium"]

#: Room for the biggest test run plus loadgen's own sessions.
TEST_MAX_CONNECTIONS = 400


@pytest.fixture(scope="session")
def loadgen_home() -> Iterator[Path]:
    # A short path: unix socket paths are limited to about 100 bytes.
    home = Path(tempfile.mkdtemp(prefix="lg-", dir="/tmp"))
    old = os.environ.get("LOADGEN_HOME")
    os.environ["LOADGEN_HOME"] = str(home)
    try:
        yield home
    finally:
        EmbeddedPostgres(home).stop()
        if old is None:
            os.environ.pop("LOADGEN_HOME", None)
        else:
            os.environ["LOADGEN_HOME"] = old
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded(loadgen_home: Path) -> EmbeddedPostgres:
    server = EmbeddedPostgres(loadgen_home)
    server.ensure_running(min_connections=TEST_MAX_CONNECTIONS)
    return server


@pytest.fixture
def target(embedded: EmbeddedPostgres) -> EmbeddedTarget:
    return EmbeddedTarget(embedded)


@pytest.fixture
def conn(embedded: EmbeddedPostgres) -> Iterator[psycopg.Connection]:
    with psycopg.connect(embedded.conninfo, autocommit=True) as c:
        yield c


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
