"""The command line as a user meets it: subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from commandline import run_cli

from loadgen.targets.embedded import EmbeddedPostgres


def _one_line_error(proc) -> str:
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr
    assert len(err.splitlines()) == 1, proc.stderr
    assert err.startswith("loadgen: ")
    return err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--accounts", "1"], "accounts must be at least 2"),
        (["--users", "0"], "users must be at least 1"),
        (["--users", "many"], "not a whole number"),
        (["--target", "oracle"], "unknown target 'oracle'"),
        (["--target", "postgres"], "needs --dsn"),
        (["--duration", "soon"], "duration"),
        (["--backoff", "linear"], "backoff must be one of"),
        (["--amount", "-3"], "amount must be at least 1"),
        (["--frobnicate"], "unrecognized arguments"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], needle: str, tmp_path: Path) -> None:
    proc = run_cli("run", *args, "--out", str(tmp_path), timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert needle in _one_line_error(proc)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


@pytest.mark.slow
def test_dsn_that_does_not_connect(tmp_path: Path) -> None:
    # A closed port on loopback; the password must not be echoed back.
    dsn = "postgresql://bob:s3cret-sentinel@127.0.0.1:1/db?connect_timeout=2"
    proc = run_cli("run", "--target", "postgres", "--dsn", dsn, "--out", str(tmp_path), timeout=60)
    assert proc.returncode == 2
    err = _one_line_error(proc)
    assert "cannot connect" in err
    assert "s3cret-sentinel" not in proc.stderr + proc.stdout


@pytest.mark.slow
def test_unwritable_output_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run_cli("run", "--out", str(blocker / "sub"), timeout=60)
    assert proc.returncode == 2
    assert "cannot write results" in _one_line_error(proc)


@pytest.mark.slow
def test_db_lifecycle(tmp_path: Path) -> None:
    home = Path("/tmp") / f"lg-cli-{os.getpid()}"
    env = {"LOADGEN_HOME": str(home)}
    try:
        assert run_cli("db", "status", env=env).returncode == 3
        start = run_cli("db", "start", env=env)
        assert start.returncode == 0, start.stderr
        assert "running" in start.stdout
        status = run_cli("db", "status", env=env)
        assert status.returncode == 0 and "max_connections 200" in status.stdout
        url = run_cli("db", "url", env=env).stdout.strip()
        assert url.startswith("postgresql://postgres@/postgres?host=")
        import psycopg

        with psycopg.connect(url) as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
            # Loopback or unix socket only: no TCP listener at all.
            assert c.execute("SELECT current_setting('listen_addresses')").fetchone() == ("",)
        assert run_cli("db", "stop", env=env).stdout.strip() == "stopped"
        assert run_cli("db", "status", env=env).returncode == 3
    finally:
        EmbeddedPostgres(home).stop()
        import shutil

        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_run_from_the_command_line(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    proc = run_cli("run", "--accounts", "10", "--users", "20", "--duration", "2s", "--out", str(tmp_path), "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    assert "conflict rate" in proc.stdout
    assert "money_conserved ok" in proc.stdout
    (run_dir,) = tmp_path.iterdir()
    assert f"results           {run_dir}" in proc.stdout
    doc = json.loads((run_dir / "run.json").read_text())
    assert doc["command_line"][:2] == ["loadgen", "run"]
    assert doc["scenario"]["seed"] == 3
    # 20 users on 10 accounts really run concurrently, so they really conflict.
    assert doc["summary"]["conflicts"] > 0
    # The fixed cost, measured up to the report written, is in run.json and the summary.
    fixed = doc["client"]["fixed_cost_s"]
    assert fixed["startup_s"] > 0 and fixed["teardown_s"] > 0
    assert fixed["total_s"] == pytest.approx(fixed["startup_s"] + fixed["teardown_s"], abs=0.002)
    assert (run_dir / "report.html").stat().st_mtime <= (run_dir / "run.json").stat().st_mtime
    assert f"fixed cost        {fixed['total_s']:.2f} s" in proc.stdout
    assert doc["client"]["saturated"] == (doc["client"]["busiest_process_share"] >= 0.9)


def test_max_connections_grows_for_big_runs(embedded: EmbeddedPostgres) -> None:
    before = embedded.status().max_connections
    assert before is not None
    status = embedded.ensure_running(min_connections=before + 50)
    assert status.max_connections is not None and status.max_connections >= before + 50
    import psycopg

    with psycopg.connect(embedded.conninfo) as c:
        assert int(c.execute("SHOW max_connections").fetchone()[0]) == status.max_connections


@pytest.mark.slow
def test_more_users_than_the_server_allows(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    proc = run_cli("run", "--target", "postgres", "--dsn", embedded.url, "--users", "5000", "--out", str(tmp_path))
    assert proc.returncode == 2
    err = _one_line_error(proc)
    assert "needs 5000 connections" in err and "max_connections" in err


#: What a command loads only when it runs (loadgen.cli.main.load_command): the start-up costs.
_HEAVY = ("locust", "gevent", "pandas", "pyarrow", "numpy", "matplotlib", "psycopg", "boto3", "duckdb")


@pytest.mark.parametrize(
    ("argv", "loaded"),
    [
        (["--help"], set()),
        (["report", "--help"], set()),
        (["run", "--help"], set()),
        (["report", "/nonexistent"], {"pandas", "pyarrow", "numpy", "matplotlib"}),
    ],
)
def test_a_command_loads_its_modules_only_once_it_is_known(argv: list[str], loaded: set[str]) -> None:
    """Help loads no command's modules; a command its own (and never Locust for the report)."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from loadgen.cli.main import prepare\n"
        f"try:\n    prepare({argv!r})\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)\n"  # stdout has the help
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True).stderr
    modules = set(out.split()) & set(_HEAVY)
    assert modules == loaded, modules
