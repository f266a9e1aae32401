"""Scale-out: a master in this process, Locust workers in other processes; no attempt lost or counted twice."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from commandline import run_cli
from offline_aws import ENDPOINT
from roles import login_role

from loadgen.engine.distributed import Fleet, check_target, target_setup, worker_target
from loadgen.engine.load import combine_open_loads, workload_for
from loadgen.engine.master import _password, run_distributed
from loadgen.engine.options import RunOptions
from loadgen.errors import ConfigError
from loadgen.model.knobs import scenario_from_dict
from loadgen.model.outcomes import COMMITTED as COMMITTED_OUTCOMES
from loadgen.model.retry import RetryPolicy
from loadgen.model.scenario import Scenario
from loadgen.results.recorder import ATTEMPT_SCHEMA
from loadgen.results.warnings import workload_warnings
from loadgen.targets.base import EmbeddedTarget, without_password


def _check_lossless(run_dir: Path, workers: int) -> dict:
    doc = json.loads((run_dir / "run.json").read_text())
    df = pq.read_table(run_dir / "attempts.parquet").to_pandas()
    schema = pq.read_schema(run_dir / "attempts.parquet")  # the command line adds a `cell` column
    assert all(schema.field(f.name).type == f.type for f in ATTEMPT_SCHEMA)

    # Every attempt Locust counted across the workers is one row, no more, no less.
    assert len(df) == doc["locust"]["attempts"] > 0
    assert df["txn_id"].nunique() == doc["locust"]["transactions"]
    assert doc["summary"]["attempts"] == len(df)
    # No attempt twice: (txn_id, attempt) is a key, and numbering has no gaps.
    assert not df.duplicated(["txn_id", "attempt"]).any()
    sizes = df.groupby("txn_id")["attempt"].agg(["max", "count"])
    assert (sizes["max"] == sizes["count"]).all()
    committed = df[df["outcome"].isin(COMMITTED_OUTCOMES)]
    assert committed["txn_id"].is_unique

    # run.json names each worker; each worker's rows arrived as it counted them.
    named = doc["workers"]
    assert len(named) == workers
    assert sorted(df["worker"].unique()) == sorted(w["id"] for w in named)
    for w in named:
        assert w["finished"] and w["attempts_sent"] == w["attempts_received"] == (df["worker"] == w["id"]).sum() > 0
    # Users are numbered apart on each worker.
    assert df.groupby("user")["worker"].nunique().max() == 1
    assert doc["invariants_hold"] is True, doc["invariants"]
    assert doc["completed"] is True
    assert doc["client"]["processes"] == workers
    return doc


@pytest.mark.slow
def test_two_local_worker_processes_lose_and_duplicate_nothing(target: EmbeddedTarget, tmp_path: Path) -> None:
    scenario = Scenario(accounts=10, users=20, spawn_rate=20, duration_s=3, seed=7)
    result = run_distributed(scenario, target, tmp_path, Fleet(processes=2))
    doc = _check_lossless(result.run_dir, workers=2)
    # Contention across processes: the two workers' users conflict with each other.
    assert doc["summary"]["outcomes"].get("conflict", 0) > 0
    assert result.connections["opened"] >= 2
    assert result.connections["left_open"] == 0
    assert (result.run_dir / "workers" / "worker-1.log").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_master_and_worker_command_lines(embedded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = _free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "loadgen.cli", "run", "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        master = run_cli(
            "run",
            "--master",
            "--expect-workers",
            "1",
            "--master-port",
            str(port),
            "--accounts",
            "50",
            "--users",
            "10",
            "--duration",
            "2",
            "-q",
            "--out",
            str(tmp_path),
            timeout=120,
        )
        assert master.returncode == 0, master.stdout + master.stderr
        out, _ = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, out
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    _check_lossless(run_dir, workers=1)


@pytest.mark.slow
def test_bad_scale_out_options_are_one_line(tmp_path: Path) -> None:
    r = run_cli("run", "--worker")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--master-host" in r.stderr
    r = run_cli("run", "--expect-workers", "2", "--out", str(tmp_path))
    assert r.returncode == 2 and "--master" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("run", "--processes", "2", "--load", "batches", "--out", str(tmp_path))
    assert r.returncode == 2 and "batches" in r.stderr and "Traceback" not in r.stderr
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_the_settings_cross_the_wire_without_the_password() -> None:
    s = Scenario(accounts=123, users=4, retry=RetryPolicy(max_attempts=7, backoff="exponential"), seed=3)
    assert scenario_from_dict(json.loads(json.dumps(s.to_dict()))) == s
    dsn = "host=db.example port=5432 user=app password=s3cret dbname=bank"
    assert "s3cret" not in without_password(dsn) and "host=db.example" in without_password(dsn)
    assert _password(dsn) == "s3cret" and _password("host=x") is None
    with pytest.raises(ConfigError):
        Fleet()


@pytest.mark.slow
def test_the_password_reaches_workers_through_their_environment_only(embedded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import psutil

    from loadgen.targets.base import PostgresTarget

    secret = "s3cret-Pa55"
    # The embedded server trusts its unix socket, so any password connects: what matters is where it travels.
    target = PostgresTarget(f"{embedded.conninfo} password={secret}")
    seen: list[tuple[str, bool]] = []

    def inspect_workers(elapsed: float, env) -> None:  # type: ignore[no-untyped-def]
        for child in psutil.Process().children():
            cmd = " ".join(child.cmdline())
            if "playwright" in cmd:
                continue  # pytest-playwright's driver, left by a browser test earlier in the session: not a worker
            seen.append((cmd, child.environ().get("PGPASSWORD") == secret))

    scenario = Scenario(accounts=20, users=4, spawn_rate=4, duration_s=2.5)
    result = run_distributed(scenario, target, tmp_path, Fleet(processes=2), RunOptions(on_progress=inspect_workers))
    assert seen and all("loadgen.cli.worker" in cmd and secret not in cmd and has_pw for cmd, has_pw in seen)
    assert result.invariants_hold
    for path in result.run_dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_reported_not_hidden(target: EmbeddedTarget, tmp_path: Path) -> None:
    import psutil

    killed: list[int] = []

    def kill_one(elapsed: float, env) -> None:  # type: ignore[no-untyped-def]
        if elapsed >= 2 and not killed:
            # A worker, not whichever child comes first: an earlier test's browser may be one too.
            child = next(c for c in psutil.Process().children() if "loadgen.cli.worker" in c.cmdline())
            killed.append(child.pid)
            child.kill()

    scenario = Scenario(accounts=100, users=6, spawn_rate=6, duration_s=5)
    t0 = time.monotonic()
    result = run_distributed(scenario, target, tmp_path, Fleet(processes=2), RunOptions(on_progress=kill_one))
    assert killed and time.monotonic() - t0 < 40  # no waiting out long timeouts for the dead
    assert result.aborted and "stopped before their final report" in result.aborted
    doc = json.loads((result.run_dir / "run.json").read_text())
    assert doc["completed"] is False
    finished = [w for w in doc["workers"] if w["finished"]]
    lost = [w for w in doc["workers"] if not w["finished"]]
    assert len(finished) == 1 and len(lost) == 1 and lost[0]["pid"] is None
    # The survivor's rows are all there.
    assert finished[0]["attempts_sent"] == finished[0]["attempts_received"] > 0


def test_dsql_settings_cross_the_wire_without_secrets_and_share_the_connection_rate(fake_aws: dict[str, int]) -> None:
    from loadgen.targets.dsql import DsqlTarget, make_dsql_target

    signer = make_dsql_target(ENDPOINT, db_user="app_rw", connect_rate=80)
    signer.prepare(100)  # signs a token: it must not travel
    target = make_dsql_target(ENDPOINT, db_user="app_rw", profile="perf", connect_rate=80)
    target.tokens = signer.tokens
    setup = target_setup(target, workers=4)
    wire = json.dumps(setup)
    assert "X-Amz" not in wire and "password" not in wire
    rebuilt = worker_target(json.loads(wire))
    assert isinstance(rebuilt, DsqlTarget)
    # Nothing naming the master's machine: a remote worker signs with its own credentials chain.
    assert (rebuilt.endpoint, rebuilt.region, rebuilt.db_user, rebuilt.profile) == (ENDPOINT, "us-east-1", "app_rw", None)
    assert "perf" not in wire
    assert (rebuilt.sslmode, rebuilt.sslrootcert) == ("verify-full", "certifi"), "each worker resolves certifi's bundle itself"
    # DSQL limits new connections per cluster: four workers share the budget.
    assert rebuilt.pacer.rate == 20.0 and rebuilt.pacer.burst == target.connect_burst // 4
    # A stand-in reached at another address (tests) is reached by no other process: refused, not misdirected.
    standin = DsqlTarget(ENDPOINT, "us-east-1", hostaddr="127.0.0.1", port=5433)
    with pytest.raises(ConfigError, match="cannot make this dsql target in a worker"):
        check_target(standin)


def test_workers_make_the_masters_target_from_its_spec_in_the_masters_run(embedded) -> None:  # type: ignore[no-untyped-def]
    """The same kind of target as the master's, made by make_target from the spec the master sends, joined
    to the master's run: its database (embedded), its schema (postgres), the rehearsal and its audit."""
    from loadgen.targets.base import PostgresTarget
    from loadgen.targets.rehearsal import DsqlRehearsalTarget
    from loadgen.targets.scope import RunScope

    master = EmbeddedTarget(embedded)
    master.scope = RunScope.new("r1", own_database=True)
    worker = worker_target(json.loads(json.dumps(target_setup(master, workers=2))))
    assert isinstance(worker, EmbeddedTarget) and worker.scope == master.scope
    assert worker.conninfo() == master.conninfo()  # the run's own database, the run's application_name
    assert worker.end_run() is None and master.scope is not None  # joined, not begun: the master ends it

    pg = PostgresTarget("host=db.example user=app password=s3cret dbname=postgres", schema="bench")
    pg.scope = RunScope("r2", "tok", schema="bench")
    setup = json.loads(json.dumps(target_setup(DsqlRehearsalTarget(pg), workers=2)))
    assert "s3cret" not in json.dumps(setup)
    rehearsal = worker_target(setup)
    assert isinstance(rehearsal, DsqlRehearsalTarget) and isinstance(rehearsal.inner, PostgresTarget)
    assert rehearsal.inner.conninfo() == without_password(pg.conninfo())
    # LOADGEN_DSN: another address or a password on the worker's machine; the run's schema kept.
    elsewhere = worker_target(setup, dsn="host=10.0.0.9 user=app password=other dbname=postgres")
    assert "search_path=bench" in elsewhere.conninfo() and "10.0.0.9" in elsewhere.conninfo()
    rehearsal.audit.cleanup()
    elsewhere.audit.cleanup()


def test_a_ca_bundle_file_reaches_workers_as_its_content_not_the_masters_path(fake_aws: dict[str, int], tmp_path: Path) -> None:
    """A remote worker has no file at the master's path: the bundle's certificates travel (they are public)."""
    from loadgen.targets.dsql import DsqlTarget, make_dsql_target

    bundle = tmp_path / "corp-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n")
    target = make_dsql_target(ENDPOINT, sslrootcert=str(bundle), profile="perf")
    wire = json.dumps(target_setup(target, workers=2))
    assert str(tmp_path) not in wire and "perf" not in wire
    rebuilt = worker_target(json.loads(wire))
    assert isinstance(rebuilt, DsqlTarget) and rebuilt.sslrootcert is not None
    assert rebuilt.sslrootcert != str(bundle) and Path(rebuilt.sslrootcert).read_text() == bundle.read_text()
    assert f"sslrootcert={rebuilt.sslrootcert}" in rebuilt.conninfo()


@pytest.mark.slow
def test_a_dsql_rehearsal_scales_out_and_workers_open_only_their_users_connections(embedded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """--processes with --dialect dsql: the workers run the DSQL path and are audited; each worker opens
    one connection per user it runs (before, every worker's pool opened one per user of the whole test),
    and checks its file-descriptor capacity for those only: under a limit that holds 20 users' connections
    and loadgen's reserve but not 40, the run goes (before, each worker refused all 40 users)."""
    import resource
    import subprocess
    import sys

    from loadgen.engine.users import FD_RESERVE

    limit = 20 + FD_RESERVE + 10  # a worker's share fits, the whole run's 40 users would not

    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    r = subprocess.run(
        [sys.executable, "-m", "loadgen.cli", "run", "--dialect", "dsql", "--processes", "2", "--users", "40",
         "--accounts", "200", "--duration", "2", "--out", str(tmp_path), "-q"],
        capture_output=True, text=True, timeout=180, preexec_fn=low_fd_limit,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    doc = _check_lossless(run_dir, workers=2)
    assert doc["connections"]["opened"] == 40, doc["connections"]
    per_worker = [w["connections"] for w in doc["workers"]]
    assert sorted(c["peak_open"] for c in per_worker) == [20, 20] and sum(c["opened"] for c in per_worker) == 40
    # Each worker opened its share before the measured period, which starts when all have (issue 22, point 2).
    warmup = doc["warmup"]
    assert warmup["connections"] == 40 and warmup["workers"] == 2, warmup
    assert warmup["started_at"] <= warmup["ended_at"] <= doc["started_at"]
    df = pq.read_table(run_dir / "attempts.parquet", columns=["user", "started_at"]).to_pandas()
    first = df.groupby("user")["started_at"].min()
    start = pd.Timestamp(doc["started_at"])
    assert len(first) == 40 and (first >= start).all(), "no attempt before the measured period"
    late = (first - start).max().total_seconds()
    assert late < 1.5, f"every user at work within {late:.2f} s of the start: no ramp inside the measured period"
    check = json.loads((run_dir / "dialect-check.json").read_text())
    assert check["violations"] == [] and check["connections"] >= 40 and check["transactions"] > 40
    assert "0 breaking DSQL's rules" in r.stdout


@pytest.mark.slow
def test_the_open_loop_splits_its_arrivals_across_worker_processes(target: EmbeddedTarget, tmp_path: Path) -> None:
    """Each worker takes every other arrival of the one schedule; the master adds their figures up."""
    scenario = Scenario(accounts=1000, users=20, spawn_rate=20, duration_s=3, seed=3, load="open", arrival_rate=120)
    user_class, extra = workload_for(scenario)
    result = run_distributed(scenario, target, tmp_path, Fleet(processes=2), RunOptions(user_class=user_class, annotations=extra))
    doc = _check_lossless(result.run_dir, workers=2)
    load = doc["load"]
    assert load["model"] == "open" and load["arrival_rate"] == 120 and len(load["workers"]) == 2
    # The whole schedule, once: not twice, not half (counted over the span the starts covered: a busy
    # machine's slow stop adds starts, not rate).
    assert 0.7 * 120 <= load["achieved_rate"] <= 1.1 * 120
    for w in load["workers"]:
        assert w["arrival_rate"] == 60  # half the rate each
        assert 0.7 * 60 <= w["achieved_rate"] <= 1.1 * 60
        assert 0.4 * load["started"] <= w["started"] <= 0.6 * load["started"]
        assert w["latency_from_intended_ms"]["p50"] >= 0
    assert load["started"] == doc["summary"]["transactions"] == sum(w["started"] for w in load["workers"])
    # The figures from the intended start are never below those from the actual start.
    assert load["latency_from_intended_ms"]["max"] >= max(w["start_lag_ms"]["max"] for w in load["workers"])


def test_a_worker_that_misses_its_schedule_is_named() -> None:
    scenario = Scenario(load="open", arrival_rate=100)
    ok = {"started": 300, "achieved_rate": 50.0, "late": 0, "kept_up": True, "arrival_rate": 50.0, "start_lag_ms": {"p99": 1.0}}
    slow = {**ok, "started": 150, "achieved_rate": 25.0, "late": 120, "kept_up": False, "start_lag_ms": {"p99": 900.0}}
    load = combine_open_loads(scenario, {"w1": ok, "w2": slow})
    assert load["kept_up"] is False and load["achieved_rate"] == 75.0 and load["start_lag_ms"]["p99"] == 900.0
    notes = workload_warnings({"load": {"model": "open", **load}})
    assert any("worker w2 could not keep its schedule" in n for n in notes)
    assert not any("worker w1" in n for n in notes)
    assert combine_open_loads(scenario, {"w1": ok, "w2": {**ok}})["kept_up"] is True


SMALL_SWEEP = """
name = "remote-sweep"
accounts = [20, 40]
users = 6
duration = "1s"
seed = 5
"""


def _remote_workers(port: int, n: int) -> list[subprocess.Popen[str]]:
    cmd = [sys.executable, "-m", "loadgen.cli", "run", "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    return [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(n)]


def _leave(workers: list[subprocess.Popen[str]]) -> list[str]:
    outs = []
    for w in workers:
        try:
            outs.append(w.communicate(timeout=60)[0])
        finally:
            if w.poll() is None:
                w.kill()
                w.wait()
    return outs


@pytest.mark.slow
def test_a_sweep_runs_every_cell_on_the_same_remote_workers_and_resumes(embedded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sweep_file = tmp_path / "remote-sweep.toml"
    sweep_file.write_text(SMALL_SWEEP)
    out = tmp_path / "out"
    port = _free_port()
    master_args = ["--master", "--expect-workers", "2", "--master-port", str(port), "-q"]
    workers = _remote_workers(port, 2)
    try:
        r = run_cli("run", str(sweep_file), *master_args, "--out", str(out), timeout=240)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        outs = _leave(workers)
    # The workers stayed from the first cell to the second, and left after the last.
    assert all(w.returncode == 0 for w in workers), outs
    assert all(o.count("staying for the next cell") == 1 for o in outs), outs
    (sweep_dir,) = [p for p in out.iterdir() if p.is_dir()]
    index = json.loads((sweep_dir / "sweep.json").read_text())
    assert [c["status"] for c in index["cells"]] == ["done", "done"]
    pids = []
    for cell in index["cells"]:
        doc = _check_lossless(sweep_dir / cell["run_dir"], workers=2)
        assert doc["invariants_hold"] is True  # each cell on a fresh bank: its own commits and nothing else
        pids.append(sorted(w["pid"] for w in doc["workers"]))
    assert pids[0] == pids[1] == sorted(w.pid for w in workers)

    # --resume with --master: the cell marked unfinished runs again on (new) remote workers.
    index["cells"][1]["status"] = "interrupted"
    (sweep_dir / "sweep.json").write_text(json.dumps(index))
    workers = _remote_workers(port, 2)
    try:
        r = run_cli("run", "--resume", str(sweep_dir), *master_args, timeout=240)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        outs = _leave(workers)
    assert all(w.returncode == 0 for w in workers) and not any("staying" in o for o in outs), outs
    index = json.loads((sweep_dir / "sweep.json").read_text())
    assert [c["status"] for c in index["cells"]] == ["done", "done"]
    doc = _check_lossless(sweep_dir / index["cells"][1]["run_dir"], workers=2)
    assert sorted(w["pid"] for w in doc["workers"]) == sorted(w.pid for w in workers)


@pytest.mark.slow
def test_a_worker_that_cannot_open_its_share_stops_the_run_before_it_starts(embedded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The warm-up happens in the workers now: a refusal there ends the command in one line, before any measured
    period (no run.json: the run never started), and the workers leave."""
    dsn = login_role(embedded, "lg_capped_workers", "CONNECTION LIMIT 6")  # 8 users' connections will not fit
    r = run_cli(
        "run", "--target", "postgres", "--dsn", dsn, "--processes", "2", "--users", "8", "--accounts", "50",
        "--duration", "2", "--out", str(tmp_path), "-q", timeout=180,
    )  # fmt: skip
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "a worker could not open its connections" in lines[0] and "too many connections for role" in lines[0]
    assert not list(tmp_path.glob("*/run.json"))
