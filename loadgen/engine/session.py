"""One run's life, the same for a headless run, a distributed master and a web UI test.

``prepare`` (the run directory, the target ready for the users, the bank reset),
``start`` (the clock; a headless run then drives the load inside ``signals`` with
``run_load``: watchdog, fault injection, progress, the duration's end) and
``finish`` (unknown commits settled, invariants checked, attempts.parquet and
run.json written once). Callers differ only in where the users run and who stops them.
"""

from __future__ import annotations

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

# isort: split

import contextlib
import os
import platform
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import gevent
import pandas as pd
import psycopg
import pyarrow
import pyarrow as pa
import pyarrow.compute as pc
from locust.env import Environment

from loadgen import __version__
from loadgen.db.cc import describe_cc
from loadgen.db.schema import Invariant, check_invariants, ledger_ids, reset, sessions_left
from loadgen.engine import interrupts
from loadgen.engine.chaos import Chaos, FaultLog, inject_faults, watch_reachability
from loadgen.engine.progress import OutcomeTally
from loadgen.engine.streaming import StreamedAttempts
from loadgen.engine.users import ATTEMPT, NAME, TRANSACTION, TransferUser
from loadgen.errors import OutputError, TargetError
from loadgen.gcpause import collector_paused
from loadgen.model.keys import distribution_for
from loadgen.model.outcomes import COMMITTED, Outcome
from loadgen.model.scenario import Scenario
from loadgen.results.client_cpu import client_load
from loadgen.results.gates import evaluate as evaluate_gates
from loadgen.results.machine import MachineWindow, light_rtt_ms
from loadgen.results.metrics import SUMMARY_COLUMNS, concurrency_of
from loadgen.results.outofcore import OutOfCoreError, Transactions, compare_ledger, summarize_files
from loadgen.results.recorder import ATTEMPT_SCHEMA, AttemptRecorder
from loadgen.results.records import RunRecord
from loadgen.results.stream import AttemptStream, attempts_from_parts, row_groups
from loadgen.results.warnings import run_warnings
from loadgen.targets.base import EmbeddedTarget, Target
from loadgen.targets.connection import connect
from loadgen.targets.embedded import LOCK_WAIT_LOGGED_AFTER_MS, EmbeddedPostgres

__all__ = ["RunSession", "RunResult", "AttemptSource", "new_run_id", "prepare_out_dir", "write_report_or_warn"]

Progress = Callable[[float, Environment], None]


class AttemptSource(Protocol):
    """Whatever holds a run's attempts at the end: a recorder, or the master's collector of workers' rows."""

    def to_table(self) -> pa.Table: ...


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    invariants: list[Invariant]
    completed: bool
    locust_counts: dict[str, int] = field(default_factory=dict)
    #: The pool's counters, and loadgen's sessions left open afterwards (None: not asked).
    connections: dict[str, int | None] = field(default_factory=dict)
    #: Why the run ended early on its own (the database unreachable), if it did.
    aborted: str | None = None
    faults: list[dict[str, Any]] = field(default_factory=list)
    #: The load generator's CPU use during the run (loadgen.results.client_cpu).
    client: dict[str, Any] = field(default_factory=dict)
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
    #: Warnings a user must see (an open loop that could not keep up, ...): set by loadgen.engine.sweep.
    notes: list[str] = field(default_factory=list)
    #: What the machine did over the measured period (loadgen.results.machine), with the idle round trip.
    machine: dict[str, Any] = field(default_factory=dict)
    #: Every warning about the run's figures, as run.json lists them (loadgen.results.warnings).
    warnings: list[str] = field(default_factory=list)
    #: The gates the scenario set, each with its limit, the run's value and whether it held (loadgen.results.gates).
    gates: list[dict[str, Any]] = field(default_factory=list)
    #: The server's own counters over the measured window (DSQL: CloudWatch), if the target has them.
    cluster_metrics: dict[str, Any] | None = None

    @property
    def invariants_hold(self) -> bool:
        return all(i.ok for i in self.invariants)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("run-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


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


def write_report_or_warn(paths: list[Path], out: Path | None = None) -> Path | None:
    """loadgen.report.write_report once the data is on disk (``report.html`` in the first directory
    unless ``out``); a failure here only warns: it must never cost the data."""
    try:
        with collector_paused():  # importing matplotlib and drawing: a bounded burst of objects
            from loadgen.report import write_report  # lazy: matplotlib, which worker processes never need

            return write_report(list(paths), out)
    except Exception as e:  # the data is on disk; `loadgen report` can retry later
        where = " ".join(str(p) for p in paths)
        print(
            f"loadgen: could not write the report ({type(e).__name__}: {e}); the data is safe, try `loadgen report {where}`",
            file=sys.stderr,
        )
        return None


class RunSession:
    """One run of one scenario against one target: its directory, its clock, how it ended, its records."""

    def __init__(
        self,
        scenario: Scenario,
        target: Target,
        *,
        run_id: str | None = None,
        command_line: list[str] | None = None,
        annotations: Callable[[], dict[str, Any]] | None = None,
        keep_db: bool = False,
    ) -> None:
        self.scenario = scenario
        self.target = target
        self.run_id = run_id or new_run_id()
        self.command_line = command_line
        #: run.json fields the caller adds when the run ends (a sweep's cell, the load model's figures).
        self.annotations = annotations
        self.run_dir: Path | None = None
        self.server_version: str | None = None
        self.started: datetime | None = None
        #: Ctrl-C/SIGTERM received so far.
        self.interrupted = 0
        #: Why the run ended early on its own, first reason first.
        self.aborted: list[str] = []
        self.faults = FaultLog()
        #: Wall and CPU seconds of the load phase (this process).
        self.client: dict[str, float] = {}
        #: Keep the run's own database on the embedded server afterwards (--keep-db).
        self.keep_db = keep_db
        #: The attempts on their way to disk, once streaming started.
        self.streamed: StreamedAttempts | None = None
        #: The embedded server and its log's size at the start (row-lock waits are counted after it).
        self._lock_log: tuple[EmbeddedPostgres, int] | None = None
        #: The machine's CPU over the measured period, and a round trip on an idle connection before it.
        self.machine: MachineWindow | None = None
        self.light_rtt_ms: float | None = None

    # -- prepare --------------------------------------------------------

    def open_run_dir(self, out: Path) -> Path:
        self.run_dir = prepare_out_dir(out, self.run_id)
        return self.run_dir

    def prepare(self, out: Path | None = None, *, exclusive: bool = False) -> None:
        """The run directory (under ``out``, if given), the run's own corner of the target with room
        for its users (``exclusive``: it restarts the server, so it must be alone there), the bank reset."""
        if out is not None:
            self.open_run_dir(out)
        try:
            self.target.begin_run(self.run_id, self.scenario.users, exclusive=exclusive)
            with connect(self.target) as conn:
                row = conn.execute("SELECT version()").fetchone()
                self.server_version = str(row[0]) if row else None
                setup = reset(
                    conn,
                    self.scenario.accounts,
                    self.scenario.initial_balance,
                    truncate=self.target.truncates,
                    reconnect=lambda: connect(self.target),  # set-up outlasting a connection (DSQL: 60 minutes)
                )
                # The target's round trip on an idle connection, before any load: what "lightly loaded"
                # means when attempt latencies are judged (loadgen.results.warnings).
                self.light_rtt_ms = light_rtt_ms(setup.conn.execute)
                if setup.conn is not conn:
                    setup.conn.close()
        except BaseException:
            self.abandon()
            raise

    def abandon(self) -> None:
        """A run that never started (refused, or Ctrl-C while it set up): its corner of the target
        given back, its run directory removed while still empty."""
        self.end_target()
        if self.run_dir is not None:
            with contextlib.suppress(OSError):  # not empty: whatever is there stays
                self.run_dir.rmdir()

    def end_target(self) -> None:
        """Give the run's corner of the target back (its database dropped unless --keep-db); safe to call twice."""
        problem = self.target.end_run(keep=self.keep_db)
        if problem:
            print(f"loadgen: the run's database was not dropped: {problem}", file=sys.stderr)

    def environment(self, user_class: type[TransferUser], tally: OutcomeTally | None = None) -> Environment:
        """Locust's Environment for this run; ``tally`` counts outcomes for the progress line."""
        # Users finish the transaction in hand when stopped; the retry deadline bounds that.
        env = Environment(user_classes=[user_class], stop_timeout=self.scenario.retry.deadline_s + 5)
        if tally is not None:
            env.loadgen_tally = tally  # type: ignore[attr-defined]  # read by loadgen.engine.progress
        return env

    # -- start ----------------------------------------------------------

    def start(self) -> None:
        """The run's clock starts; run.json says the run is running (a run killed later still says what it was);
        the count of row-lock waits in the embedded server's log starts too."""
        server_pid = None
        if isinstance(self.target, EmbeddedTarget):
            self._lock_log = (self.target.server, self.target.server.log_size())
            server_pid = self.target.server.postmaster_pid()
        self.machine = MachineWindow(server_pid)
        self.machine.start()
        self.started = datetime.now(UTC)
        if self.run_dir is not None:
            self.start_record().write(self.run_dir)

    def stream(self, sources: Callable[[], Iterable[AttemptRecorder]], env: Environment | None = None) -> None:
        """From now on the attempts ``sources`` hold reach the run directory every second
        (``env``'s progress tally counts them before they go)."""
        assert self.run_dir is not None, "open_run_dir() before stream()"
        tally: OutcomeTally | None = getattr(env, "loadgen_tally", None)
        self.streamed = StreamedAttempts(AttemptStream(self.run_dir), sources, tally.settle if tally is not None else None)
        self.streamed.start()

    def abort(self, reason: str, stop: Callable[[], None]) -> None:
        """End the run early on its own (the reason goes to run.json), then ``stop``."""
        self.aborted.append(reason)
        stop()

    @contextmanager
    def signals(self, stop: Callable[[], None]) -> Iterator[None]:
        """Ctrl-C or SIGTERM calls ``stop`` (users finish the transaction in hand); a second one leaves at once
        (:mod:`loadgen.engine.interrupts`).

        Kept until the caller has written the results, so a second Ctrl-C still means "now".
        """

        def on_signal() -> None:
            self.interrupted += 1
            stop()

        with interrupts.stopping(on_signal):
            yield

    def run_load(
        self,
        runner: Any,
        env: Environment,
        *,
        stop: Callable[[], None],
        last_reached: Callable[[], float],
        refused: Callable[[], str | None] | None = None,
        chaos: Chaos | None = None,
        unreachable_limit_s: float = 60.0,
        on_progress: Progress | None = None,
    ) -> None:
        """Start the users, then wait for ``runner`` to end: ``stop`` at the scenario's duration,
        or when the database stays unreachable or ``refused`` says why no connection will open;
        faults injected and progress ticked meanwhile."""
        # Ends the run early when the database is gone, or refuses loadgen's credentials.
        helpers = [
            watch_reachability(last_reached, unreachable_limit_s, lambda reason: self.abort(reason, stop), refused or (lambda: None))
        ]
        try:
            if chaos is not None and chaos.active:
                helpers += inject_faults(chaos, self.target.conninfo(), self.target.application_name(), self.faults, self.target.restart)
            t0, cpu0 = time.monotonic(), time.process_time()
            runner.start(self.scenario.users, spawn_rate=self.scenario.spawn_rate)
            stopper = gevent.spawn_later(self.scenario.duration_s, stop)
            ticker = gevent.spawn(_tick, on_progress, env, t0) if on_progress is not None else None
            try:
                runner.greenlet.join()
            finally:
                stopper.kill(block=False)
                if ticker is not None:
                    ticker.kill(block=False)
                # The load generator's own CPU: a saturated client measures itself, not the database.
                self.client["wall_s"] = time.monotonic() - t0
                self.client["cpu_s"] = time.process_time() - cpu0
                if self.machine is not None:
                    self.machine.stop()  # the measured period ends with the load, not with the checks after it
        finally:
            gevent.killall(helpers, block=False)

    # -- finish ---------------------------------------------------------

    def finish(
        self,
        attempts: AttemptSource,
        env: Environment,
        pool_counts: Mapping[str, int],
        *,
        completed: bool = True,
        workers: list[dict[str, Any]] | None = None,
        warmup: dict[str, Any] | None = None,
    ) -> RunResult:
        """Settle unknown commits, check the invariants, write attempts.parquet and run.json.

        ``completed``: the caller's own verdict (a distributed master: every worker reported);
        an interruption or an abort makes any run incomplete.
        """
        assert self.run_dir is not None, "open_run_dir() before finish()"
        try:
            return self._finish(attempts, env, pool_counts, completed, workers, warmup)
        finally:
            self.end_target()

    def _finish(
        self,
        attempts: AttemptSource,
        env: Environment,
        pool_counts: Mapping[str, int],
        completed: bool,
        workers: list[dict[str, Any]] | None,
        warmup: dict[str, Any] | None,
    ) -> RunResult:
        assert self.run_dir is not None
        ended = datetime.now(UTC)
        machine = self.machine.stop() if self.machine is not None else {}
        # Every attempt is on disk by now (the last second's written here). A run of hours holds
        # more attempts than memory: read back only the columns finishing needs, and write
        # attempts.parquet from the parts row group by row group.
        streamed = self._stop_streaming(attempts)
        run_dir = self.run_dir
        settled: dict[str, int] = {}
        connections: dict[str, int | None] = dict(pool_counts)
        attempt_files: list[Path] = []

        def write_attempts_once() -> list[Path]:
            # The attempts are written once, with unknown commits settled where the ledger could be asked.
            if not attempt_files:
                try:
                    attempt_files.append(attempts_from_parts(run_dir, settled))
                finally:
                    streamed.close()
            return attempt_files

        grouped = contextlib.ExitStack()  # the attempts grouped into transactions, once, for the ledger and the summary
        txns: Transactions | None = None
        try:
            with connect(self.target) as conn:
                settled = resolve_unknown_commits(conn, open_transfers_in(run_dir))
                txns = grouped.enter_context(Transactions(write_attempts_once()))  # the summary's too, below
                grouping = txns
                invariants = check_invariants(
                    conn,
                    self.scenario.accounts,
                    self.scenario.initial_balance,
                    (),
                    # The joint-withdrawal shapes promise each customer keeps the initial balance across two accounts.
                    joint_minimum=self.scenario.initial_balance if self.scenario.transaction.startswith("joint-withdrawal") else None,
                    # Out of core: the ledger and the commits of a run of hours hold more ids than memory.
                    compare_ledger=lambda pages: compare_ledger(grouping, pages).as_tuple(),
                )
                # Its own guard: None when skipped (DSQL) or refused, never the invariants' loss.
                connections["left_open"] = sessions_left(conn, self.target.application_name(), self.target.dialect)
        except (TargetError, psycopg.Error) as e:
            invariants = [Invariant("database_reachable", False, f"invariants not checked: {e}")]
        except OutOfCoreError as e:  # the run's results are written all the same, saying so
            invariants = [Invariant("ledger_matches_commits", False, str(e))]
        finally:
            # Whatever the database said, or if it is gone.
            write_attempts_once()
        # Every figure read back from attempts.parquet a batch at a time: memory independent of the run's length.
        with grouped:
            summary, in_flight, span = summarize_files(attempt_files, txns=txns)
            if txns is not None and not self.interrupted:
                txns.keep()  # for the closing report, which groups the same attempts
        result = RunResult(
            self.run_dir,
            summary,
            invariants,
            completed and self.interrupted == 0 and not self.aborted,
            locust_counts(env),
            connections,
            aborted=self.aborted[0] if self.aborted else None,
            faults=self.faults.faults,
            client=self._client_load(summary["attempts"], workers),
            workers=workers or [],
            warmup=warmup or {},
            cc=describe_cc(self.scenario, self.target.takes_row_locks, self.target.dialect),
            lock_waits=self._lock_waits(),
            # A closed loop without think time asks for one transaction in flight per user.
            concurrency=concurrency_of(
                in_flight, self.scenario.users, closed_loop=self.scenario.load == "closed" and not self.scenario.think_ms
            ),
            attempt_span=span,
            machine={**machine, "light_rtt_ms": self.light_rtt_ms},
        )
        result.cluster_metrics = self._cluster_metrics(result.attempt_span, ended)
        record = self.record(result, ended)
        doc = record.to_dict()
        result.gates = evaluate_gates(doc["scenario"], summary)
        result.warnings = run_warnings(doc)
        record.extra = {**record.extra, "warnings": result.warnings, "gates": result.gates}
        record.write(self.run_dir)
        return result

    def _cluster_metrics(self, span: tuple[float, float] | None, ended: datetime) -> dict[str, Any] | None:
        """The target's own counters over the measured window (first attempt to last); one line when unavailable."""
        counters = self.target.cluster_counters
        if counters is None or self.started is None:
            return None
        if span is not None:
            start, end = datetime.fromtimestamp(span[0], UTC), datetime.fromtimestamp(span[1], UTC)
        else:
            start, end = self.started, ended
        found = counters(start, end)
        said = found.get("unavailable") or found.get("note")
        if said:
            print(f"loadgen: the cluster's own counters: {said}", file=sys.stderr)
        return found

    def _stop_streaming(self, attempts: AttemptSource) -> StreamedAttempts | AttemptStream:
        """The stream's last rows written; a run that never streamed (a caller of finish() alone) writes its attempts as one part."""
        assert self.run_dir is not None
        if self.streamed is not None:
            self.streamed.stop()
            return self.streamed
        stream = AttemptStream(self.run_dir)
        stream.write(attempts.to_table())
        return stream

    def _lock_waits(self) -> dict[str, Any] | None:
        if self._lock_log is None:
            return None
        server, mark = self._lock_log
        count = server.lock_waits_since(mark)
        return None if count is None else {"longer_than_ms": LOCK_WAIT_LOGGED_AFTER_MS, "count": count, "source": "server log"}

    def _client_load(self, attempts: int, workers: list[dict[str, Any]] | None) -> dict[str, Any]:
        """The load generator's CPU use: this process, plus every worker's in a distributed run."""
        if not self.client:
            return {}  # no load phase measured here (a web UI test: Locust drove it)
        return client_load(self.client.get("wall_s", 0.0), self.client.get("cpu_s", 0.0), attempts, workers)

    def record(self, result: RunResult, ended: datetime) -> RunRecord:
        """run.json's content for a finished run."""
        identity = self._identity()
        identity["machine"] = {**identity["machine"], **result.machine}
        return RunRecord(
            **identity,
            ended_at=ended.isoformat(),
            completed=result.completed,
            status="completed" if result.completed else "aborted" if result.aborted else "interrupted",
            aborted=result.aborted,
            faults=result.faults,
            client=result.client,
            cc=result.cc,
            latency_emulated=self.scenario.latency.active,
            warmup=result.warmup,
            lock_waits=result.lock_waits,
            concurrency=result.concurrency,
            summary=result.summary,
            locust=result.locust_counts,
            connections=result.connections,
            invariants=[i.to_dict() for i in result.invariants],
            workers=result.workers or None,
            extra={
                **(self.annotations() if self.annotations is not None else {}),
                **({"cluster_metrics": result.cluster_metrics} if result.cluster_metrics is not None else {}),
            },
        )

    def start_record(self) -> RunRecord:
        """run.json's content while the run goes (status running)."""
        record = RunRecord(**self._identity(), status="running", in_progress=True)
        record.machine["pid"] = os.getpid()  # which process to look for while it runs
        return record

    def _identity(self) -> dict[str, Any]:
        """What run.json says of the run from its start: what ran, where, with what, since when."""
        return {
            "run_id": self.run_id,
            "scenario": self.scenario.to_dict(),
            "keys": keys_info(self.scenario),
            "target": self.target.describe(),
            "versions": versions(self.server_version or ""),
            "machine": {"cpus": os.cpu_count(), "hostname": platform.node()},
            "command_line": self.command_line,
            "started_at": self.started.isoformat() if self.started else None,
        }

    def closing_report(self) -> Path | None:
        """report.html; not after Ctrl-C: the data is written, and leaving quickly matters more
        (charting takes seconds on a busy machine); ``loadgen report`` draws it later."""
        assert self.run_dir is not None
        if self.interrupted:
            print(f"loadgen: report not drawn after Ctrl-C; `loadgen report {self.run_dir}` draws it", file=sys.stderr)
            return None
        try:
            return write_report_or_warn([self.run_dir])
        finally:
            Transactions.discard_kept()  # the finish's grouping, kept for this report only


def _tick(on_progress: Progress, env: Environment, t0: float) -> None:
    while True:
        gevent.sleep(1.0)
        on_progress(time.monotonic() - t0, env)


#: The attempt columns finishing a run reads back from disk: the summary's, and what settling unknown commits needs.
FINISH_COLUMNS: tuple[str, ...] = (*SUMMARY_COLUMNS, "commit_unknown")


def open_transfers_in(run_dir: Path) -> pd.DataFrame:
    """Every attempt of the transfers that have one whose commit is unknown or interrupted (all
    :func:`resolve_unknown_commits` looks at: a few rows, whatever the run's length), from the run's
    streamed parts a row group at a time: the ids of the transfers concerned first (read only in the row
    groups that hold one; most runs have none, and then nothing more is read), then their attempts."""
    concerned = list(row_groups(run_dir, ("txn_id",), where=(("outcome", "commit_unknown"), _unknown)))
    wanted = pc.unique(pa.concat_tables(concerned).column("txn_id").combine_chunks()) if concerned else pa.array([], pa.string())
    if len(wanted) == 0:
        return pa.schema([ATTEMPT_SCHEMA.field(c) for c in FINISH_COLUMNS]).empty_table().to_pandas()
    rows = [t.filter(pc.is_in(t.column("txn_id"), value_set=wanted)) for t in row_groups(run_dir, FINISH_COLUMNS)]
    return pa.concat_tables(rows).to_pandas()


def _unknown(attempts: pa.Table) -> pa.ChunkedArray | pa.Array:
    return pc.or_kleene(attempts.column("commit_unknown"), pc.equal(attempts.column("outcome"), Outcome.INTERRUPTED.value))


def resolve_unknown_commits(conn: psycopg.Connection[Any], attempts: pd.DataFrame) -> dict[str, int]:
    """Settle attempts whose COMMIT outcome is unknown by looking their ids up in the ledger.

    A transfer that lost its connection inside COMMIT (or was interrupted) and was
    never tried again may or may not be in the ledger; the ledger decides. ``attempts``
    holds every attempt of the transfers concerned (:func:`open_transfers_in`). Returns
    the attempts found committed, transfer id -> attempt number, for
    loadgen.results.stream.settle to mark ``ambiguous_committed``.
    """
    if attempts.empty:
        return {}
    committed = set(attempts.loc[attempts["outcome"].isin(COMMITTED), "txn_id"])
    last = attempts.groupby("txn_id", sort=False)["attempt"].transform("max") == attempts["attempt"]
    open_ = last & (attempts["commit_unknown"] | (attempts["outcome"] == Outcome.INTERRUPTED))
    open_ &= ~attempts["txn_id"].isin(committed)
    if not open_.any():
        return {}
    found = ledger_ids(conn, attempts.loc[open_, "txn_id"].tolist())
    conn.rollback()
    hit = open_ & attempts["txn_id"].isin(found)
    return {str(t): int(a) for t, a in zip(attempts.loc[hit, "txn_id"], attempts.loc[hit, "attempt"])}


def locust_counts(env: Environment) -> dict[str, int]:
    stats = env.stats
    a = stats.get(NAME, ATTEMPT)
    t = stats.get(NAME, TRANSACTION)
    return {
        "attempts": a.num_requests,
        "attempt_failures": a.num_failures,
        "transactions": t.num_requests,
        "transaction_failures": t.num_failures,
    }


def versions(server_version: str) -> dict[str, str]:
    return {
        "loadgen": __version__,
        "locust": locust.__version__,
        "psycopg": psycopg.__version__,
        "libpq": str(psycopg.pq.version()),
        "pandas": pd.__version__,
        "pyarrow": pyarrow.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "server": server_version,
    }


def keys_info(scenario: Scenario) -> dict[str, Any]:
    """The key distribution and its collision probability sum(p_i^2), which the conflict model needs."""
    keys = distribution_for(scenario)
    return {**keys.describe(), "accounts": keys.accounts, "collision_probability": keys.collision_probability()}
