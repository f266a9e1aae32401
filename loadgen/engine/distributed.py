"""Scale-out: a Locust master in the loadgen process, Locust workers in other processes or machines.

``loadgen run --processes N`` starts N worker processes on this machine (any target:
PostgreSQL, DSQL, ``--dialect dsql``);
``loadgen run --master`` waits for workers started elsewhere with
``loadgen run --worker --master-host H``. It is Locust's own distributed mode:
the master spreads the users over the workers and adds up their statistics.

What loadgen adds, over Locust custom messages:

- ``loadgen_hello`` (worker -> master, once the worker listens for loadgen's
  messages) and the master's answer ``loadgen_setup``: the scenario, the
  run id and how to reach the database, without secrets. A password reaches a
  worker through its environment (``PGPASSWORD``, or a whole ``LOADGEN_DSN``),
  never through a command line or a message.
- ``loadgen_ready`` (worker -> master, once it has opened its share of the
  connections, paced by its share of the target's connection budget, or failed
  to): the master starts the users, and the measured period, only when every
  worker is ready, so the period starts at full concurrency as a local run's does.
- ``loadgen_attempts`` (worker -> master, about once a second): the attempt rows
  recorded since the last batch. The worker keeps none of them afterwards.
- ``loadgen_next`` (master -> remote worker, before the master's quit, when a sweep has
  cells left): stay; the worker then joins the next cell's master at the same address,
  so every cell of a sweep runs on the same worker processes.
- ``loadgen_done`` (worker -> master, at the worker's test stop, after its last
  batch and its last statistics report): how many rows it sent, its CPU time and
  its connection counters. One ZeroMQ connection keeps a worker's messages in
  order, so when every worker's ``done`` has arrived, every row and every Locust
  count has too; the row count is then checked against what each worker announced.
"""

from __future__ import annotations

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

# isort: split

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import gevent
import pyarrow as pa
from locust.env import Environment
from locust.rpc.protocol import Message
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from loadgen.engine.load import WorkloadStats, workload_for
from loadgen.engine.options import RunOptions
from loadgen.engine.progress import OutcomeTally
from loadgen.engine.session import RunResult, RunSession
from loadgen.engine.users import SharedUserState, TransferUser, share_user_state
from loadgen.errors import ConfigError, TargetError
from loadgen.model.attempt import OUTCOME
from loadgen.model.knobs import scenario_from_dict, scenario_to_dict
from loadgen.model.outcomes import Outcome
from loadgen.model.scenario import Scenario
from loadgen.results.recorder import AttemptRecorder
from loadgen.targets.base import Target, redact_conninfo
from loadgen.targets.dsql import DsqlTarget
from loadgen.targets.rehearsal import DsqlRehearsalTarget

__all__ = ["Fleet", "run_distributed", "run_worker", "WorkerAgent", "scenario_from_dict", "check_scale_out"]

log = logging.getLogger("loadgen")

MSG_HELLO = "loadgen_hello"
MSG_SETUP = "loadgen_setup"
MSG_ATTEMPTS = "loadgen_attempts"
MSG_DONE = "loadgen_done"
MSG_NEXT = "loadgen_next"
MSG_READY = "loadgen_ready"
#: How often a worker ships its attempt rows to the master.
SHIP_INTERVAL_S = 1.0
#: User ids on worker k start at k * USER_ID_STRIDE + 1: unique across workers, and
#: so are the per-user random streams of a seeded run.
USER_ID_STRIDE = 100_000
DEFAULT_MASTER_PORT = 5557
#: A worker kept for a sweep's next cell waits this long after the quit before joining again
#: (Locust's master answers for 0.5 s after sending its quit).
REJOIN_AFTER_S = 2.0


@dataclass(frozen=True)
class Fleet:
    """How a run scales out: worker processes started here, and workers expected from elsewhere."""

    processes: int = 0
    #: Workers to wait for before starting (at least ``processes``).
    expect_workers: int = 0
    bind_host: str = "127.0.0.1"
    #: 0: any free port (only sensible when every worker is started here).
    bind_port: int = 0
    connect_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.processes < 0 or self.expect_workers < 0:
            raise ConfigError("the number of worker processes must not be negative")
        if self.workers < 1:
            raise ConfigError("a distributed run needs at least one worker (--processes N or --expect-workers N)")

    @property
    def workers(self) -> int:
        return max(self.processes, self.expect_workers)


def _without_password(conninfo: str) -> str:
    params = conninfo_to_dict(conninfo)
    params.pop("password", None)
    return make_conninfo("", **params)


def _password(conninfo: str) -> str | None:
    value = conninfo_to_dict(conninfo).get("password")
    return None if value is None else str(value)


def check_scale_out(target: Target, scenarios: list[Scenario]) -> None:
    """Refuse, with one clear line, what worker processes cannot run yet."""
    _check_target(target)
    for scenario in scenarios:
        _check_scenario(scenario)


def _check_scenario(scenario: Scenario) -> None:
    """What workers can do: the closed loop, and the open loop (each worker takes its share of the arrivals).
    Batches pace all users together across one barrier."""
    if scenario.load == "batches" or scenario.read_mix > 0:
        raise ConfigError(
            "--processes/--master run the closed and open load models without a read mix; batches and read mixes are single-process for now"
        )


def _check_target(target: Target) -> None:
    """Workers rebuild the target from the master's settings: PostgreSQL ones from a connection
    string, DSQL ones from the cluster's address (each worker signs its own tokens)."""
    inner = target.underlying  # --dialect dsql wraps the real target
    if not isinstance(inner, DsqlTarget) and not inner.rebuilt_from_conninfo:
        raise ConfigError(f"--processes/--master/--worker cannot rebuild a {inner.kind} target with its own connection hooks in a worker")


def _target_setup(target: Target, workers: int) -> dict[str, Any]:
    """How a worker reaches the database: no secrets."""
    inner = target.underlying
    setup: dict[str, Any] = {
        "kind": target.kind,
        "sets_isolation": target.sets_isolation,
        "dialect": target.dialect,
        "audit": target.audit is not None,
    }
    if isinstance(inner, DsqlTarget):
        setup["dsql"] = inner.worker_settings(workers)
    else:
        setup["conninfo"] = _without_password(inner.conninfo())
    return setup


def worker_target(setup: dict[str, Any]) -> Target:
    """The master's target as a worker reaches it (see :func:`_target_setup`)."""
    target: Target
    if "dsql" in setup:
        target = DsqlTarget.from_worker_settings(setup["dsql"])
    else:
        target = WorkerTarget(setup["kind"], setup["conninfo"], sets_isolation=bool(setup["sets_isolation"]))
    if setup.get("audit"):
        target = DsqlRehearsalTarget(target)  # the rehearsal and its audit, in this worker too
    return target


@dataclass
class WorkerTarget(Target):
    """The master's target as a worker reaches it: the master's connection string, or LOADGEN_DSN."""

    kind: str
    master_conninfo: str
    sets_isolation: bool = True
    #: Scale-out runs only on PostgreSQL targets, which take row locks (loadgen.db.cc).
    takes_row_locks: bool = True

    def prepare(self, users: int) -> None:  # the master prepared the server
        pass

    def conninfo(self) -> str:
        # A worker on another machine may need another address or a password: LOADGEN_DSN.
        return os.environ.get("LOADGEN_DSN") or self.master_conninfo

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "dsn": redact_conninfo(self.conninfo())}


# -- the worker side --------------------------------------------------------


class WorkerAgent:
    """loadgen on a Locust worker: builds its users' shared state at test start, ships attempt rows to the master."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.setup: dict[str, Any] | None = None
        self.shared: SharedUserState | None = None
        self.target: Target | None = None
        self.sent = 0
        self._shipper: gevent.Greenlet | None = None
        self._cpu0 = 0.0
        self._wall0 = 0.0
        #: Told by the master to stay for the next run (a sweep's next cell).
        self.stay = False
        #: The load model's run.json figures on this worker (the open loop's share), if it has any.
        self._load: Callable[[], dict[str, Any]] | None = None
        share_user_state(env, None)
        runner = env.runner
        assert runner is not None
        runner.register_message(MSG_SETUP, self._on_setup)
        runner.register_message(MSG_NEXT, self._on_next)
        env.events.test_start.add_listener(self._on_test_start)
        env.events.test_stop.add_listener(self._on_test_stop)
        # Only now can the answer be heard: ask for the settings.
        runner.send_message(MSG_HELLO, {"pid": os.getpid(), "host": socket.gethostname()})

    @property
    def client_id(self) -> str:
        return str(getattr(self.env.runner, "client_id", "worker"))

    def _on_setup(self, environment: Environment, msg: Message, **_: Any) -> None:
        self.setup = msg.data
        gevent.spawn(self._warm_up)  # not in the message handler: it would hold up the worker's messages

    def _build(self) -> SharedUserState:
        """This worker's shared user state: the master's scenario and target, its share of the users."""
        assert self.setup is not None
        scenario = scenario_from_dict(self.setup["scenario"])
        target = worker_target(self.setup["target"])
        self.target = target
        recorder = AttemptRecorder(self.setup["run_id"], worker=self.client_id, cell=self.setup.get("cell"))
        index = max(int(getattr(self.env.runner, "worker_index", 0)), 0)
        return SharedUserState(
            scenario, target, recorder, first_user_id=index * USER_ID_STRIDE + 1, users=worker_share(scenario.users, self.setup)
        )

    def _warm_up(self) -> None:
        """Open this worker's share of the connections before the master starts anyone; say so, or why not."""
        runner = self.env.runner
        assert runner is not None
        try:
            shared = self._build()
            try:
                warmup = shared.warm_up()
            except BaseException:
                shared.close()
                raise
        except (ConfigError, TargetError) as e:
            runner.send_message(MSG_READY, {"error": str(e)})
            return
        except Exception as e:  # noqa: BLE001 - the master says it in one line and stops
            runner.send_message(MSG_READY, {"error": f"{type(e).__name__}: {e}"})
            return
        self.shared = shared
        runner.send_message(MSG_READY, {"warmup": warmup})

    def _on_next(self, environment: Environment, msg: Message, **_: Any) -> None:
        self.stay = bool(msg.data.get("stay"))

    def _on_test_start(self, environment: Environment, **_: Any) -> None:
        if self.setup is None:
            log.error("loadgen worker: the test started before the master sent its settings")
            return
        scenario = scenario_from_dict(self.setup["scenario"])
        # The master spawns users by class name: the load model's class (same name here), or the plain one.
        user_class, self._load = workload_for(scenario)
        if self.setup.get("user_class") != user_class.__name__:
            user_class, self._load = TransferUser, None
        elif scenario.load == "open":
            # This worker's share of the one schedule: every N-th arrival, N the workers.
            index = max(int(getattr(self.env.runner, "worker_index", 0)), 0)
            stats = getattr(user_class, "stats", None)
            if isinstance(stats, WorkloadStats):
                stats.split(index, int(self.setup.get("workers", 1)))
        self.env.user_classes = [user_class]
        shared = self.shared if self.shared is not None else self._build()  # warmed up at setup, normally
        self.shared = shared
        share_user_state(self.env, shared)
        self.sent = 0
        self._cpu0, self._wall0 = time.process_time(), time.monotonic()
        self._shipper = gevent.spawn(self._ship_forever)

    def _ship_forever(self) -> None:
        while True:
            gevent.sleep(SHIP_INTERVAL_S)
            self._ship()

    def _ship(self) -> None:
        shared = self.shared
        if shared is None:
            return
        rec = shared.recorder
        # Swapped, not copied: no greenlet switch can happen between these lines.
        rows, users = rec.rows, rec.users
        if not rows:
            return
        rec.rows, rec.users = [], []
        runner = self.env.runner
        assert runner is not None
        runner.send_message(MSG_ATTEMPTS, {"rows": rows, "users": users, "refused": shared.connections.refused})
        self.sent += len(rows)

    def _on_test_stop(self, environment: Environment, **_: Any) -> None:
        shared = self.shared
        if shared is None:
            return
        if self._shipper is not None:
            self._shipper.kill(block=True)
            self._shipper = None
        self._ship()
        connections = shared.close()
        audit = _worker_audit(self.target)
        load = self._load().get("load") if self._load is not None else None
        if load and load.get("model") == "open" and not load.get("kept_up", True):
            log.warning(
                "loadgen worker %s could not keep its schedule: %.0f of %g arrivals/s started, %d late",
                self.client_id,
                load.get("achieved_rate", 0.0),
                load.get("arrival_rate", 0.0),
                load.get("late", 0),
            )
        runner: Any = self.env.runner
        # The last statistics before `done`: the master's counts are then complete.
        send_final_stats(self.env, runner)
        runner.send_message(
            MSG_DONE,
            {
                "attempts": self.sent,
                "cpu_s": time.process_time() - self._cpu0,
                "wall_s": time.monotonic() - self._wall0,
                "connections": connections,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "index": int(getattr(runner, "worker_index", -1)),
                **({"dialect_check": audit} if audit is not None else {}),
                **({"load": load} if load and load.get("model") == "open" else {}),
            },
        )
        self.shared = None
        share_user_state(self.env, None)
        # The users are gone already: rejoin the master at once (Locust waits stop_timeout
        # first, deaf to messages), so that the master's quit reaches this worker.
        self.env.stop_timeout = 0


def worker_share(users: int, setup: dict[str, Any]) -> int:
    """The most users the master gives one worker: Locust spreads them evenly, the first workers taking one more."""
    workers = max(1, int(setup.get("workers") or 1))
    return -(-users // workers)


def _worker_audit(target: Target | None) -> dict[str, Any] | None:
    """A ``--dialect dsql`` worker's statement audit, for the master's dialect-check.json."""
    audit = target.audit if target is not None else None
    if audit is None:
        return None
    try:
        report = audit.check()
    finally:
        audit.cleanup()
    return {**report.to_dict(), "connections": audit.connections}


def send_final_stats(env: Environment, runner: Any) -> None:
    """What Locust's worker sends every few seconds, sent now (its ``_send_stats``, through public calls).

    The report_to_master listeners fill the message (and reset what they sent); the
    master's handler of "stats" messages adds it up.
    """
    data: dict[str, Any] = {}
    env.events.report_to_master.fire(client_id=runner.client_id, data=data)
    runner.send_message("stats", data)


def run_worker(master_host: str, master_port: int = DEFAULT_MASTER_PORT) -> int:
    """A worker process: connect to the master, run the users it is given, until it says quit."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    while True:
        env = Environment(user_classes=[TransferUser])
        try:
            runner = env.create_worker_runner(master_host, master_port)
        except ConnectionError:  # Locust gave up after its retries (five minutes)
            print(f"loadgen worker: no master at {master_host}:{master_port} came back; leaving", flush=True)
            return 1
        agent = WorkerAgent(env)
        stopped: list[bool] = []

        def leave(runner: Any = runner, stopped: list[bool] = stopped) -> None:
            stopped.append(True)
            runner.quit()

        gevent.signal_handler(signal.SIGTERM, leave)
        gevent.signal_handler(signal.SIGINT, leave)
        runner.greenlet.join()
        if not agent.stay or stopped:
            return 0
        # A sweep's next cell: its master binds the same address once the bank is reset. Not at once:
        # the quitting master still answers for half a second, and its answer would bind us to it.
        print(f"loadgen worker: staying for the next cell; joining {master_host}:{master_port} again", flush=True)
        time.sleep(REJOIN_AFTER_S)


# -- the master side --------------------------------------------------------


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
    root = str(Path(__file__).resolve().parent.parent)
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
    (a name, not a secret; remote workers use their own credentials chain)."""
    inner = target.underlying
    if isinstance(inner, DsqlTarget) and inner.profile:
        return {"AWS_PROFILE": inner.profile}
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
    _check_target(target)
    _check_scenario(scenario)
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
        "target": _target_setup(target, fleet.workers),
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
