"""Runs that never collide: a database per run, a registry of live runs, a server nobody restarts under a run.

Against the real embedded server (and, for ``--schema``, the same server reached as
``--target postgres``), with real processes where a process's death is the point.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psycopg
import pytest
from commandline import run_cli

from loadgen.db.schema import reset
from loadgen.errors import TargetError
from loadgen.targets.base import EmbeddedTarget, PostgresTarget
from loadgen.targets.embedded import EmbeddedPostgres


def _count(conninfo: str, sql: str) -> int:
    with psycopg.connect(conninfo, autocommit=True) as c:
        row = c.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_each_run_works_in_a_database_of_its_own(embedded: EmbeddedPostgres) -> None:
    a, b = EmbeddedTarget(embedded), EmbeddedTarget(embedded)
    sa = a.begin_run("run-same-id", 5)
    sb = b.begin_run("run-same-id", 5)  # two sweeps name their cells alike: still two databases
    try:
        assert sa is not None and sb is not None and sa.database != sb.database
        assert {r.database for r in embedded.status().live_runs} >= {sa.database, sb.database}
        for target, accounts in ((a, 7), (b, 13)):
            with psycopg.connect(target.conninfo(), autocommit=True) as c:
                reset(c, accounts, 100)
        assert _count(a.conninfo(), "SELECT count(*) FROM accounts") == 7
        assert _count(b.conninfo(), "SELECT count(*) FROM accounts") == 13
        # Every session of a run carries its name, and only its own.
        assert (
            _count(a.conninfo(), "SELECT count(*) FROM pg_stat_activity WHERE application_name = current_setting('application_name')") == 1
        )
        assert a.application_name() == sa.application_name != b.application_name()
        assert "run-same-id" in sa.application_name
    finally:
        assert a.end_run() is None
        assert b.end_run(keep=True) is None
    names = embedded.run_databases()
    assert sa.database not in names  # dropped at the end
    assert sb.database in names  # --keep-db
    assert sa.database not in {r.database for r in embedded.status().live_runs}
    assert sb.database in embedded.prune()
    assert sb.database not in embedded.run_databases()


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from loadgen.targets.base import EmbeddedTarget
    from loadgen.targets.embedded import EmbeddedPostgres
    t = EmbeddedTarget(EmbeddedPostgres(Path(sys.argv[1])))
    t.begin_run("run-held", int(sys.argv[2]), exclusive=sys.argv[3] == "1")
    print(t.scope.database, flush=True)
    time.sleep(600)
    """
)


def _hold_run(home: Path, users: int = 5, exclusive: bool = False) -> tuple[subprocess.Popen[str], str]:
    """A real process holding a live run on the server in ``home``; and that run's database."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(home), str(users), "1" if exclusive else "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line, proc.communicate(timeout=30)
    return proc, line


def test_a_killed_run_leaves_the_registry_and_its_database(embedded: EmbeddedPostgres) -> None:
    proc, database = _hold_run(embedded.home)
    try:
        live = embedded.status().live_runs
        assert any(r.database == database and r.pid == proc.pid for r in live)
        # Another run may not restart the server under it (fault injection).
        with pytest.raises(TargetError, match="live run"):
            EmbeddedTarget(embedded).begin_run("run-chaos", 1, exclusive=True)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    # The kernel let go of its lock: the run is no longer live, its database stays for inspection.
    assert database not in {r.database for r in embedded.status().live_runs}
    assert database in embedded.run_databases()
    assert database in embedded.prune()


def test_an_exclusive_run_keeps_others_out(embedded: EmbeddedPostgres) -> None:
    proc, _ = _hold_run(embedded.home, exclusive=True)
    try:
        with pytest.raises(TargetError, match="restarts the embedded server"):
            EmbeddedTarget(embedded).begin_run("run-late", 1)
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def fresh_home() -> object:
    home = Path(tempfile.mkdtemp(prefix="lg-", dir="/tmp"))
    yield home
    server = EmbeddedPostgres(home)
    server.stop(force=True)
    import shutil

    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_first_starts_do_not_race_and_a_live_run_is_never_cut(fresh_home: Path) -> None:
    env = {**os.environ, "LOADGEN_HOME": str(fresh_home)}
    starts = [
        subprocess.Popen(
            [sys.executable, "-m", "loadgen.cli", "db", "start"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in starts]
    assert [p.returncode for p in starts] == [0, 0], outs
    pids = {out.split("pid ")[1].split(",")[0] for out, _ in outs}
    assert len(pids) == 1, outs  # one server, started once

    server = EmbeddedPostgres(fresh_home)
    before = server.status()
    assert before.max_connections is not None
    proc, _ = _hold_run(fresh_home, users=20)
    try:
        # Too big to fit beside the live run: refused, and the server is not restarted.
        with pytest.raises(TargetError, match="live run"):
            EmbeddedTarget(server).begin_run("run-big", before.max_connections)
        assert server.status().pid == before.pid
        done = run_cli("db", "stop", env={"LOADGEN_HOME": str(fresh_home)})
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and "live run" in done.stderr, done.stderr
        assert server.status().pid == before.pid
        # What fits beside it starts without a restart.
        small = EmbeddedTarget(server)
        small.begin_run("run-small", 5)
        small.end_run()
        assert server.status().pid == before.pid
    finally:
        proc.kill()
        proc.wait(timeout=10)
    # Nobody live: now it may grow.
    big = EmbeddedTarget(server)
    big.begin_run("run-big", before.max_connections)
    try:
        grown = server.status()
        assert grown.max_connections is not None and grown.max_connections >= before.max_connections + 10
    finally:
        big.end_run()


def test_schema_is_held_by_one_live_run(embedded: EmbeddedPostgres) -> None:
    first = PostgresTarget(embedded.conninfo, schema="lg_test_schema")
    second = PostgresTarget(embedded.conninfo, schema="lg_test_schema")
    other = PostgresTarget(embedded.conninfo, schema="lg_test_other")
    first.begin_run("run-one", 2)
    try:
        with pytest.raises(TargetError, match="in use by another live loadgen run"):
            second.begin_run("run-two", 2)
        other.begin_run("run-three", 2)  # another schema: no wait
        with psycopg.connect(first.conninfo(), autocommit=True) as c:
            reset(c, 4, 100)
            assert c.execute("SELECT current_schema()").fetchone() == ("lg_test_schema",)
        with psycopg.connect(other.conninfo(), autocommit=True) as c:
            reset(c, 9, 100)
        assert _count(first.conninfo(), "SELECT count(*) FROM accounts") == 4
        assert _count(other.conninfo(), "SELECT count(*) FROM accounts") == 9
    finally:
        first.end_run()
        other.end_run()
    second.begin_run("run-two", 2)  # the lock went with the first run
    second.end_run()


@pytest.mark.slow
def test_schema_cli_errors_are_one_line(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    holder = PostgresTarget(embedded.conninfo, schema="lg_cli_schema")
    holder.begin_run("run-holder", 2)
    try:
        proc = run_cli(
            "run", "--target", "postgres", "--dsn", embedded.url, "--schema", "lg_cli_schema", "--duration", "1", "--out", str(tmp_path)
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "--schema NAME" in proc.stderr
    finally:
        holder.end_run()
    bad = run_cli("run", "--target", "postgres", "--dsn", embedded.url, "--schema", "Bad-Name", "--out", str(tmp_path))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--schema" in bad.stderr
    wrong = run_cli("run", "--schema", "x", "--out", str(tmp_path))
    assert wrong.returncode == 2 and "--schema is only for --target postgres" in wrong.stderr


@pytest.mark.slow
def test_two_runs_at_once_on_one_server_both_hold(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    """The issue's report: a quickstart started while a hot 40-user run goes. Both must end well."""
    runs = [
        ("hot", ["--accounts", "10", "--users", "40", "--duration", "10"]),
        ("quickstart", ["quickstart", "--duration", "6"]),
    ]
    procs = []
    for name, args in runs:
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "loadgen.cli", "run", *args, "--out", str(tmp_path / name), "-q"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=dict(os.environ),
            )
        )
        time.sleep(2)  # the second starts while the first runs
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    docs = []
    for name, _ in runs:  # quickstart is a sweep: one run.json per cell, each cell a run of its own
        found = [json.loads(p.read_text()) for p in (tmp_path / name).rglob("run.json")]
        assert found, name
        docs += found
    databases = set()
    for doc in docs:
        assert doc["invariants_hold"], doc["invariants"]
        assert doc["connections"]["left_open"] == 0
        databases.add(doc["target"]["database"])
    assert len(databases) == len(docs) and not databases & set(embedded.run_databases())  # each its own, all dropped
