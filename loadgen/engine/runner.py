"""A headless run: reset the bank, run Locust users for a while, check, write the run directory.

Locust is used as a library (an Environment and a local runner), so a run needs no
Locust command line and every count stays in this process.
"""

from __future__ import annotations

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

# isort: split

import json
import os
import platform
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
import pandas as pd
import psycopg
from locust.env import Environment

from loadgen import __version__
from loadgen.db.cc import describe_cc
from loadgen.db.schema import Invariant, check_invariants, ledger_ids, reset, sessions_left
from loadgen.engine.chaos import Chaos, FaultLog, inject_faults, watch_reachability
from loadgen.engine.progress import OutcomeTally
from loadgen.engine.users import APPLICATION_NAME, ATTEMPT, NAME, TRANSACTION, Bench, TransferUser, check_client_capacity
from loadgen.errors import OutputError, TargetError
from loadgen.model.outcomes import COMMITTED, Outcome
from loadgen.model.scenario import Scenario
from loadgen.results.client import attempt_span, client_load
from loadgen.results.metrics import concurrency, summarize
from loadgen.results.recorder import AttemptRecorder, write_attempts
from loadgen.targets.base import EmbeddedTarget, Target, dialect_of, redact_conninfo
from loadgen.targets.connection import open_connection
from loadgen.targets.embedded import LOCK_WAIT_LOGGED_AFTER_MS, EmbeddedPostgres

__all__ = ["RunResult", "run", "prepare_out_dir", "finish_run", "write_run_json", "write_report"]


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    invariants: list[Invariant]
    completed: bool
    locust_counts: dict[str, int] = field(default_factory=dict)
    connections: dict[str, int] = field(default_factory=dict)
    #: Why the run ended early on its own (the database unreachable), if it did.
    aborted: str | None = None
    faults: list[dict[str, Any]] = field(default_factory=list)
    #: The load generator's CPU use during the run.
    client: dict[str, float] = field(default_factory=dict)
    report: Path | None = None
    #: Distributed runs: each worker process, what it sent and what it cost.
    workers: list[dict[str, Any]] = field(default_factory=list)
    #: Before the measured period: connections opened and how long that took.
    warmup: dict[str, Any] = field(default_factory=dict)
    #: The run's concurrency control (loadgen.db.cc.describe_cc).
    cc: dict[str, Any] = field(default_factory=dict)
    #: Row-lock waits the server logged during the run (embedded target only).
    lock_waits: dict[str, Any] | None = None
    #: Transactions in flight on average against the users asked for (loadgen.results.metrics.concurrency).
    concurrency: dict[str, Any] = field(default_factory=dict)
    #: Start of the first attempt and end of the last (Unix times): the measured period, for the fixed cost.
    attempt_span: tuple[float, float] | None = None

    @property
    def invariants_hold(self) -> bool:
        return all(i.ok for i in self.invariants)


def prepare_out_dir(out: Path, run_id: str) -> Path:
    """Create the run's directory under ``out``, or say plainly why not."""
    run_dir = out / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise OutputError(f"cannot write results under {out}: {e.strerror or e}") from None
    return run_dir


def new_run_id() -> str:
    return datetime.now(UTC).strftime("run-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def _connect(target: Target) -> psycopg.Connection[Any]:
    try:
        return open_connection(target, autocommit=True, connect_timeout=10)
    except psycopg.Error as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TargetError(f"cannot connect to {redact_conninfo(target.conninfo())}: {msg}") from None


def run(
    scenario: Scenario,
    target: Target,
    out: Path,
    *,
    user_class: type[TransferUser] = TransferUser,
    on_progress: Callable[[float, Environment], None] | None = None,
    command_line: list[str] | None = None,
    chaos: Chaos | None = None,
    unreachable_limit_s: float = 60.0,
    run_id: str | None = None,
) -> RunResult:
    """Run one scenario against one target; write ``out/<run id>/`` (a sweep names its cells' ids).

    Users run in this process; loadgen.engine.distributed.run_distributed runs them in workers.
    """
    run_id = run_id or new_run_id()
    run_dir = prepare_out_dir(out, run_id)
    check_client_capacity(scenario.users)  # before the target is resized for them
    target.prepare(scenario.users)
    with _connect(target) as conn:
        server_version = conn.execute("SELECT version()").fetchone()[0]  # type: ignore[index]
        reset(conn, scenario.accounts, scenario.initial_balance, truncate=dialect_of(target) != "dsql")

    recorder = AttemptRecorder(run_id)
    bench = Bench(scenario, target, recorder)
    try:
        bench.warm_up()  # every connection open before the clock starts
    except BaseException:
        bench.close()
        raise
    # Users finish the transaction in hand when stopped; the retry deadline bounds that.
    env = Environment(user_classes=[user_class], stop_timeout=scenario.retry.deadline_s + 5)
    env.loadgen = bench  # type: ignore[attr-defined]
    env.loadgen_tally = OutcomeTally(recorder.rows)  # type: ignore[attr-defined]  # the progress line's counts
    runner = env.create_local_runner()

    interrupted = {"count": 0}
    aborted: list[str] = []
    client: dict[str, float] = {}
    faults = FaultLog()

    def give_up(reason: str) -> None:
        aborted.append(reason)
        runner.quit()

    def stop_on_signal(*_: Any) -> None:
        interrupted["count"] += 1
        if interrupted["count"] > 1:
            os._exit(130)  # a second Ctrl-C: leave at once
        print("\nstopping: finishing transactions in flight (Ctrl-C again to quit at once)", file=sys.stderr)
        runner.quit()

    handlers = [gevent.signal_handler(sig, stop_on_signal) for sig in (signal.SIGINT, signal.SIGTERM)]
    server_log = target.server if isinstance(target, EmbeddedTarget) else None
    log_mark = server_log.log_size() if server_log is not None else 0
    try:
        started = datetime.now(UTC)
        try:
            # Ends the run early when the database is gone, or refuses loadgen's credentials.
            helpers = [watch_reachability(lambda: bench.last_reached, unreachable_limit_s, give_up, lambda: bench.connections.refused)]
            if chaos is not None and chaos.active:
                restart = getattr(getattr(target, "server", None), "restart", None)
                helpers += inject_faults(chaos, target.conninfo(), APPLICATION_NAME, faults, restart)
            try:
                _drive(runner, env, scenario, on_progress, client)
            finally:
                gevent.killall(helpers, block=False)
        finally:
            # Whatever happened, close the pool and write what was recorded.
            connections = bench.close()
            ended = datetime.now(UTC)
            result = finish_run(recorder, env, target, scenario, run_dir, connections, interrupted["count"] == 0 and not aborted)
            result.aborted = aborted[0] if aborted else None
            result.faults = faults.faults
            result.client = _client_load(client, result.summary["attempts"])
            result.warmup = bench.warmup
            if server_log is not None:
                result.lock_waits = _lock_waits(server_log, log_mark)
            write_run_json(result, scenario, target, server_version, started, ended, run_id, command_line)
    finally:
        # Kept until the results are written, so a second Ctrl-C still means "now".
        for h in handlers:
            h.cancel()
    result.report = write_report(run_dir)
    return result


def write_report(run_dir: Path) -> Path | None:
    """report.html in the run directory; a failure here must never cost the run's data."""
    try:
        from loadgen.report import write_run_report

        return write_run_report(run_dir)
    except Exception as e:  # the data is on disk; `loadgen report` can retry later
        print(
            f"loadgen: could not write the report ({type(e).__name__}: {e}); the data is safe, try `loadgen report {run_dir}`",
            file=sys.stderr,
        )
        return None


def _drive(
    runner: Any,
    env: Environment,
    scenario: Scenario,
    on_progress: Callable[[float, Environment], None] | None,
    client: dict[str, float],
) -> None:
    t0 = time.monotonic()
    cpu0 = time.process_time()
    runner.start(scenario.users, spawn_rate=scenario.spawn_rate)
    stopper = gevent.spawn_later(scenario.duration_s, runner.quit)
    ticker = gevent.spawn(_tick, on_progress, env, t0) if on_progress is not None else None
    try:
        runner.greenlet.join()
    finally:
        stopper.kill(block=False)
        if ticker is not None:
            ticker.kill(block=False)
        # The load generator's own CPU: a saturated client measures itself, not the database.
        client["wall_s"] = time.monotonic() - t0
        client["cpu_s"] = time.process_time() - cpu0


def finish_run(
    recorder: AttemptRecorder,
    env: Environment,
    target: Target,
    scenario: Scenario,
    run_dir: Path,
    connections: dict[str, int],
    completed: bool,
) -> RunResult:
    """Settle unknown commits, check invariants, write attempts.parquet."""
    table = recorder.to_table()
    attempts = table.to_pandas()
    try:
        with _connect(target) as conn:
            _resolve_unknown_commits(conn, attempts)
            committed_ids = attempts.loc[attempts["outcome"].isin(COMMITTED), "txn_id"].tolist()
            invariants = check_invariants(conn, scenario.accounts, scenario.initial_balance, committed_ids)
            # Its own guard: None when skipped (DSQL) or refused, never the invariants' loss.
            connections["left_open"] = sessions_left(conn, APPLICATION_NAME, dialect_of(target))  # type: ignore[assignment]
    except (TargetError, psycopg.Error) as e:
        invariants = [Invariant("database_reachable", False, f"invariants not checked: {e}")]
    finally:
        # Whatever the database said, or if it is gone: the attempts are written, once,
        # with unknown commits settled where the ledger could be asked.
        outcome = table.schema.get_field_index("outcome")
        table = table.set_column(outcome, "outcome", [attempts["outcome"].tolist()])
        write_attempts(table, run_dir / "attempts.parquet")
    result = RunResult(run_dir, summarize(attempts), invariants, completed, _locust_counts(env), connections)
    # A closed loop without think time asks for one transaction in flight per user.
    result.concurrency = concurrency(attempts, scenario.users, closed_loop=scenario.load == "closed" and not scenario.think_ms)
    result.cc = describe_cc(scenario, target.takes_row_locks)
    result.attempt_span = attempt_span(attempts)
    return result


def _client_load(client: dict[str, float], attempts: int, workers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    wall, cpu = client.get("wall_s", 0.0), client.get("cpu_s", 0.0)
    return client_load(wall, cpu, attempts, workers)


def _lock_waits(server: EmbeddedPostgres, mark: int) -> dict[str, Any] | None:
    count = server.lock_waits_since(mark)
    return None if count is None else {"longer_than_ms": LOCK_WAIT_LOGGED_AFTER_MS, "count": count, "source": "server log"}


def _tick(on_progress: Callable[[float, Environment], None], env: Environment, t0: float) -> None:
    while True:
        gevent.sleep(1.0)
        on_progress(time.monotonic() - t0, env)


def _resolve_unknown_commits(conn: psycopg.Connection[Any], attempts: pd.DataFrame) -> None:
    """Settle attempts whose COMMIT outcome is unknown by looking their ids up in the ledger.

    A transfer that lost its connection inside COMMIT (or was interrupted) and was
    never tried again may or may not be in the ledger; the ledger decides.
    """
    if attempts.empty:
        return
    committed = set(attempts.loc[attempts["outcome"].isin(COMMITTED), "txn_id"])
    last = attempts.groupby("txn_id", sort=False)["attempt"].transform("max") == attempts["attempt"]
    open_ = last & (attempts["commit_unknown"] | (attempts["outcome"] == Outcome.INTERRUPTED))
    open_ &= ~attempts["txn_id"].isin(committed)
    if not open_.any():
        return
    found = ledger_ids(conn, attempts.loc[open_, "txn_id"].tolist())
    conn.rollback()
    hit = open_ & attempts["txn_id"].isin(found)
    attempts.loc[hit, "outcome"] = Outcome.AMBIGUOUS_COMMITTED.value


def _locust_counts(env: Environment) -> dict[str, int]:
    stats = env.stats
    a = stats.get(NAME, ATTEMPT)
    t = stats.get(NAME, TRANSACTION)
    return {
        "attempts": a.num_requests,
        "attempt_failures": a.num_failures,
        "transactions": t.num_requests,
        "transaction_failures": t.num_failures,
    }


def _versions(server_version: str) -> dict[str, str]:
    import locust as _locust
    import pyarrow

    return {
        "loadgen": __version__,
        "locust": _locust.__version__,
        "psycopg": psycopg.__version__,
        "libpq": str(psycopg.pq.version()),
        "pandas": pd.__version__,
        "pyarrow": pyarrow.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "server": server_version,
    }


def _keys_info(scenario: Scenario) -> dict[str, Any]:
    """The key distribution and its collision probability sum(p_i^2), which the conflict model needs."""
    from loadgen.model.keys import distribution_for

    keys = distribution_for(scenario)
    return {**keys.describe(), "accounts": keys.accounts, "collision_probability": keys.collision_probability()}


def write_run_json(
    result: RunResult,
    scenario: Scenario,
    target: Target,
    server_version: str,
    started: datetime,
    ended: datetime,
    run_id: str,
    command_line: list[str] | None,
) -> None:
    doc = {
        "format": 1,
        "run_id": run_id,
        "scenario": scenario.to_dict(),
        "keys": _keys_info(scenario),
        "target": target.describe(),
        "versions": _versions(server_version),
        "machine": {"cpus": os.cpu_count(), "hostname": platform.node()},
        "command_line": command_line,
        "started_at": started.isoformat(),
        "ended_at": ended.isoformat(),
        "completed": result.completed,
        "aborted": result.aborted,
        "faults": result.faults,
        "client": result.client,
        "cc": result.cc,
        "latency_emulated": scenario.latency.active,
        "warmup": result.warmup,
        "lock_waits": result.lock_waits,
        "concurrency": result.concurrency,
        "summary": result.summary,
        "locust": result.locust_counts,
        "connections": result.connections,
        "invariants": [i.to_dict() for i in result.invariants],
        "invariants_hold": result.invariants_hold,
    }
    if result.workers:
        doc["workers"] = result.workers
    tmp = result.run_dir / "run.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    tmp.replace(result.run_dir / "run.json")
