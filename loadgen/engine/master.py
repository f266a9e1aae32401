"""The master side of scale-out: a loadgen run whose users are on Locust worker processes.

``loadgen run --processes N`` starts N workers here; ``--master`` waits for workers started
elsewhere. The master prepares the target and the run, sends each worker the settings
(the protocol: loadgen.engine.distributed), starts the users once every worker has opened
its connections, collects the attempt rows and writes the same run directory as a local run.
"""

from __future__ import annotations

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

# isort: split

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import gevent
import pyarrow as pa
from locust.env import Environment
from locust.rpc.protocol import Message
from psycopg.conninfo import conninfo_to_dict

from loadgen.engine.distributed import (
    MSG_ATTEMPTS,
    MSG_DONE,
    MSG_HELLO,
    MSG_NEXT,
    MSG_READY,
    MSG_SETUP,
    SHIP_INTERVAL_S,
    Fleet,
    check_scenario,
    check_target,
    target_setup,
)
from loadgen.engine.load import WorkloadStats
from loadgen.engine.options import RunOptions
from loadgen.engine.progress import OutcomeTally
from loadgen.engine.session import RunResult, RunSession
from loadgen.errors import TargetError
from loadgen.model.attempt import OUTCOME
from loadgen.model.knobs import scenario_to_dict
from loadgen.model.outcomes import Outcome
from loadgen.model.scenario import Scenario
from loadgen.results.recorder import AttemptRecorder
from loadgen.targets.base import EmbeddedTarget, Target
from loadgen.targets.dsql import DsqlTarget

__all__ = ["run_distributed", "Collector", "combined_warmup"]


class Collector:
    """The master's view of the workers' attempt rows and final reports."""

    def __init__(self, run_id: str, cell: str | None = None) -> None:
        self.run_id = run_id
        self.cell = cell
        self.recorders: dict[str, AttemptRecorder] = {}
        #: Rows received per worker (its recorder is drained to disk as they come).
        self.received: dict[str, int] = {}
        self.done: dict[str, dict[str, Any]] = {}
        #: Workers that have been sent the settings.
        self.greeted: set[str] = set()
        #: Each worker's (host, pid), from its hello.
        self.processes: dict[str, tuple[str | None, int | None]] = {}
        self.setup: dict[str, Any] = {}
        self.last_reached = time.monotonic()
        #: Why connecting is hopeless on some worker (its credentials refused), once known.
        self.refused: str | None = None
        #: Hears each ``--dialect dsql`` worker's statement audit.
        self.on_audit: Callable[[dict[str, Any]], None] | None = None
        #: Hears each worker's open-loop figures (its share of the arrivals).
        self.on_load: Callable[[str, dict[str, Any]], None] | None = None
        #: Each worker's warm-up (its connections opened), or why it failed, by worker.
        self.ready: dict[str, dict[str, Any]] = {}

    def register(self, runner: Any) -> None:
        self._runner = runner
        runner.register_message(MSG_HELLO, self._on_hello)
        runner.register_message(MSG_ATTEMPTS, self._on_attempts)
        runner.register_message(MSG_DONE, self._on_done)
        runner.register_message(MSG_READY, self._on_ready)

    def _on_ready(self, environment: Environment, msg: Message, **_: Any) -> None:
        self.ready[msg.node_id] = msg.data

    def _on_hello(self, environment: Environment, msg: Message, **_: Any) -> None:
        self._runner.send_message(MSG_SETUP, self.setup, client_id=msg.node_id)
        self.greeted.add(msg.node_id)
        self.processes[msg.node_id] = (msg.data.get("host"), msg.data.get("pid"))

    def _recorder(self, worker: str) -> AttemptRecorder:
        rec = self.recorders.get(worker)
        if rec is None:
            rec = self.recorders[worker] = AttemptRecorder(self.run_id, worker=worker, cell=self.cell)
        return rec

    def _on_attempts(self, environment: Environment, msg: Message, **_: Any) -> None:
        rows = msg.data["rows"]
        rec = self._recorder(msg.node_id)
        rec.rows.extend(rows)
        rec.users.extend(msg.data["users"])
        self.received[msg.node_id] = self.received.get(msg.node_id, 0) + len(rows)
        if any(r[OUTCOME] != Outcome.CONNECTION_ERROR for r in rows):
            self.last_reached = time.monotonic()
        if msg.data.get("refused") and self.refused is None:
            self.refused = f"worker {msg.node_id}: {msg.data['refused']}"

    def _on_done(self, environment: Environment, msg: Message, **_: Any) -> None:
        self.done[msg.node_id] = msg.data
        self._recorder(msg.node_id)
        audit = msg.data.get("dialect_check")
        if audit is not None and self.on_audit is not None:
            self.on_audit(audit)
        if msg.data.get("load") and self.on_load is not None:
            self.on_load(msg.node_id, msg.data["load"])

    def to_table(self) -> pa.Table:
        tables = [rec.to_table() for rec in self.recorders.values()]
        return pa.concat_tables(tables) if tables else AttemptRecorder(self.run_id, cell=self.cell).to_table()

    def workers(self) -> list[dict[str, Any]]:
        """run.json's account of each worker: who it was, what it sent, what it said it sent."""
        out = []
        for worker in self.recorders:
            d = self.done.get(worker, {})
            out.append(
                {
                    "id": worker,
                    "host": d.get("host"),
                    "pid": d.get("pid"),
                    "index": d.get("index"),
                    "attempts_received": self.received.get(worker, 0),
                    "attempts_sent": d.get("attempts"),
                    "finished": worker in self.done,
                    "cpu_s": round(float(d.get("cpu_s", 0.0)), 3),
                    "wall_s": round(float(d.get("wall_s", 0.0)), 3),
                    "connections": d.get("connections", {}),
                }
            )
        return out


def _password(conninfo: str) -> str | None:
    value = conninfo_to_dict(conninfo).get("password")
    return None if value is None else str(value)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _start_local_workers(
    n: int, host: str, port: int, conninfo: str, log_dir: Path, extra_env: dict[str, str] | None = None
) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, **(extra_env or {})}
    password = _password(conninfo)
    if password is not None:
        env["PGPASSWORD"] = password  # the environment, never argv: argv is public in ps
    env.pop("LOADGEN_DSN", None)  # the master's connection string (without password) rules here
    # The worker imports this checkout's loadgen, whatever the current directory.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    procs = []
    log_dir.mkdir(exist_ok=True)
    for i in range(n):
        with (log_dir / f"worker-{i + 1}.log").open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "loadgen.cli.worker", "--master-host", host, "--master-port", str(port)],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
    return procs


def _local_worker_env(target: Target) -> dict[str, str]:
    """What workers started on this machine inherit beyond the environment: the run's AWS profile
    (a name, not a secret; remote workers use their own credentials chain), the embedded server's home."""
    inner = target.underlying
    if isinstance(inner, DsqlTarget) and inner.profile:
        return {"AWS_PROFILE": inner.profile}
    if isinstance(inner, EmbeddedTarget):
        return {"LOADGEN_HOME": str(inner.server.home)}  # the master's server, whatever its home
    return {}


def _wait_for_workers(runner: Any, fleet: Fleet, procs: list[subprocess.Popen[bytes]], port: int, greeted: set[str]) -> None:
    """Until enough workers have connected and been given the settings (before any spawn message)."""
    deadline = time.monotonic() + fleet.connect_timeout_s
    announced = False
    while runner.worker_count < fleet.workers or len(greeted) < fleet.workers:
        for p in procs:
            if p.poll() is not None:
                raise TargetError(f"a worker process exited with code {p.returncode} before the run started")
        if time.monotonic() > deadline:
            raise TargetError(f"only {runner.worker_count} of {fleet.workers} workers connected within {fleet.connect_timeout_s:g} s")
        if not announced and fleet.expect_workers > fleet.processes:
            print(
                f"loadgen: waiting for {fleet.workers - runner.worker_count} worker(s): "
                f"loadgen run --worker --master-host <this host> --master-port {port}",
                flush=True,
            )
            announced = True
        gevent.sleep(0.1)


def run_distributed(scenario: Scenario, target: Target, out: Path, fleet: Fleet, options: RunOptions = RunOptions()) -> RunResult:
    """Like :func:`loadgen.engine.runner.run`, with the users on worker processes; the same run directory."""
    check_target(target)
    check_scenario(scenario)
    chaos, cell = options.chaos, options.cell
    session = RunSession(
        scenario, target, run_id=options.run_id, command_line=options.command_line, annotations=options.annotations, keep_db=options.keep_db
    )
    session.prepare(out, exclusive=chaos is not None and chaos.restarts_server)
    assert session.run_dir is not None
    collector = Collector(session.run_id, cell=cell)
    env = session.environment(options.user_class, tally=OutcomeTally(lambda: [r.rows for r in collector.recorders.values()]))
    port = fleet.bind_port or _free_port(fleet.bind_host)
    master = env.create_master_runner(fleet.bind_host, port)
    collector.register(master)
    collector.setup = {
        "run_id": session.run_id,
        "cell": cell,
        "user_class": options.user_class.__name__,
        "scenario": scenario_to_dict(scenario),
        "target": target_setup(target, fleet.workers),
        "workers": fleet.workers,
    }
    if target.audit is not None:
        collector.on_audit = target.audit.add_remote
    stats = getattr(options.user_class, "stats", None)
    if isinstance(stats, WorkloadStats):  # the master's run.json gets the workers' load figures
        collector.on_load = stats.add_worker
    procs: list[subprocess.Popen[bytes]] = []

    def stayers() -> list[str]:
        """The remote workers to keep for the next run: when one follows and this one ended well."""
        if not options.keep_workers or session.interrupted or session.aborted:
            return []
        here = socket.gethostname()
        local = {p.pid for p in procs}
        return [w for w, (host, pid) in collector.processes.items() if not (host == here and pid in local)]

    # Before the start, as a local run's warm-up: Ctrl-C interrupts (loadgen.engine.interrupts), nothing to finish.
    try:
        if fleet.processes:
            procs = _start_local_workers(
                fleet.processes, fleet.bind_host, port, target.conninfo(), session.run_dir / "workers", _local_worker_env(target)
            )
        _wait_for_workers(master, fleet, procs, port, collector.greeted)
        warmup = _wait_for_warm_up(master, fleet, procs, collector)
    except BaseException:  # refused, or Ctrl-C before the start: the run never started
        master.quit()  # tells any worker connected so far to leave
        _reap(procs)
        session.abandon()
        raise
    finisher = _Finisher(master, collector, scenario.retry.deadline_s, session.aborted, stayers)
    with session.signals(stop=finisher.start):
        session.start()
        # The workers' rows go to disk as they arrive, like a local run's.
        session.stream(lambda: list(collector.recorders.values()), env)
        try:
            session.run_load(
                master,
                env,
                stop=finisher.start,
                last_reached=lambda: collector.last_reached,
                refused=lambda: collector.refused,
                chaos=chaos,
                unreachable_limit_s=options.unreachable_limit_s,
                on_progress=options.on_progress,
            )
        finally:
            if master.greenlet and len(master.greenlet):  # a Group: still running while it holds greenlets
                master.quit()
            _reap(procs)
            # Locust's quit leaves the socket bound: a sweep's next cell binds the same address.
            master.server.close(linger=1000)
            workers = collector.workers()
            complete = all(w["finished"] for w in workers)
            result = session.finish(collector, env, _sum_connections(workers), completed=complete, workers=workers, warmup=warmup)
    result.report = session.closing_report()
    return result


def _wait_for_warm_up(master: Any, fleet: Fleet, procs: list[subprocess.Popen[bytes]], collector: Collector) -> dict[str, Any]:
    """Until every worker has opened its share of the connections; the run's warm-up for run.json.

    No timeout of its own: a worker paced by the connection budget (DSQL: 9,000 users at
    80/s take almost two minutes) takes as long as it takes; a worker that dies, goes
    silent or cannot open its connections ends the wait at once, and so does Ctrl-C
    (a KeyboardInterrupt here: the run has not started).
    """
    while len(collector.ready) < fleet.workers:
        for p in procs:
            if p.poll() is not None:
                raise TargetError(f"a worker process exited with code {p.returncode} while opening its connections")
        if any(c.id in collector.greeted for c in master.clients.missing):
            raise TargetError("a worker stopped answering while opening its connections")
        gevent.sleep(0.05)
    refusals = [r["error"] for r in collector.ready.values() if r.get("error")]
    if refusals:
        raise TargetError(f"a worker could not open its connections: {refusals[0]}")
    return combined_warmup([r["warmup"] for r in collector.ready.values()])


def combined_warmup(warmups: list[dict[str, Any]]) -> dict[str, Any]:
    """The workers' warm-ups as one: all their connections, from the first start to the last end."""
    if not warmups:
        return {}
    started, ended = min(w["started_at"] for w in warmups), max(w["ended_at"] for w in warmups)
    seconds = (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()
    return {
        "connections": sum(int(w["connections"]) for w in warmups),
        "seconds": round(seconds, 3),
        "started_at": started,
        "ended_at": ended,
        "workers": len(warmups),
    }


class _Finisher:
    """Ends a distributed run once: stop the users, wait for every worker's last rows, then let the workers go."""

    def __init__(
        self, master: Any, collector: Collector, deadline_s: float, aborted: list[str], stayers: Callable[[], list[str]] = list
    ) -> None:
        self.master = master
        self.collector = collector
        self.deadline_s = deadline_s
        self.aborted = aborted
        #: The workers to keep for the next run (told before the quit).
        self.stayers = stayers
        self.greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        if self.greenlet is None:
            self.greenlet = gevent.spawn(self.finish)

    def finish(self) -> None:
        master, collector = self.master, self.collector
        expected = set(master.clients.keys()) | set(collector.recorders)
        master.stop()
        deadline = time.monotonic() + self.deadline_s + 30

        def outstanding() -> set[str]:
            # A worker Locust has marked missing (no heartbeat) will not report again.
            gone = {c.id for c in master.clients.missing}
            return expected - set(collector.done) - gone

        while outstanding() and time.monotonic() < deadline:
            gevent.sleep(0.05)
        missing = expected - set(collector.done)
        if missing:
            self.aborted.append(
                f"worker(s) {', '.join(sorted(missing))} stopped before their final report: "
                f"up to {SHIP_INTERVAL_S:g} s of their attempts are missing from attempts.parquet"
            )
        # Workers leave the master's list at a stop and rejoin; only listed workers hear its quit.
        rejoin = time.monotonic() + 10
        while not collector.greeted <= set(master.clients.keys()) and time.monotonic() < rejoin:
            gevent.sleep(0.05)
        for worker in self.stayers():  # one connection per worker keeps this ahead of the quit
            master.send_message(MSG_NEXT, {"stay": True}, client_id=worker)
        master.quit()


def _reap(procs: list[subprocess.Popen[bytes]]) -> None:
    """Wait for the local workers to leave after the master's quit; stop any that linger."""
    deadline = time.monotonic() + 15
    for p in procs:
        while p.poll() is None and time.monotonic() < deadline:
            gevent.sleep(0.05)
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _sum_connections(workers: list[dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {"opened": 0, "connect_errors": 0, "lost": 0, "returned_broken": 0}
    for w in workers:
        for k, v in (w.get("connections") or {}).items():
            total[k] = total.get(k, 0) + int(v)
    return total
