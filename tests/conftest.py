"""Shared fixtures: one real embedded PostgreSQL per test session, in its own state directory.

Locust is imported first, as in loadgen itself: gevent must patch the standard
library before psycopg is imported anywhere in the test process.
"""

from __future__ import annotations

import locust  # noqa: F401  - must precede psycopg

# isort: split

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from loadgen.targets.base import EmbeddedTarget
from loadgen.targets.embedded import EmbeddedPostgres

#: Shared fixtures kept in helper modules at tests/'s root: Playwright's browser fixtures pointed at
#: Debian's chromium (chromium.py), and AWS made offline (offline_aws.py).
pytest_plugins = ["chromium", "offline_aws"]

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
