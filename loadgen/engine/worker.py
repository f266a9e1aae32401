"""The worker side of scale-out: a Locust worker process running its share of a loadgen master's users.

Started by ``loadgen run --processes N`` (``python -m loadgen.cli.worker``) or by hand
(``loadgen run --worker``). It makes the target from the master's spec, opens its share of
the connections, runs the users the master gives it and ships their attempt rows
(the protocol: loadgen.engine.distributed).
"""

from __future__ import annotations

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

# isort: split

import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import gevent
from locust.env import Environment
from locust.rpc.protocol import Message

from loadgen.engine.distributed import (
    DEFAULT_MASTER_PORT,
    MSG_ATTEMPTS,
    MSG_DONE,
    MSG_HELLO,
    MSG_NEXT,
    MSG_READY,
    MSG_SETUP,
    REJOIN_AFTER_S,
    SHIP_INTERVAL_S,
    USER_ID_STRIDE,
    worker_target,
)
from loadgen.engine.load import WorkloadStats, workload_for
from loadgen.engine.users import SharedUserState, TransferUser, share_user_state
from loadgen.errors import ConfigError, TargetError
from loadgen.model.knobs import scenario_from_dict
from loadgen.results.recorder import AttemptRecorder
from loadgen.targets.base import Target

__all__ = ["WorkerAgent", "run_worker", "worker_share"]

log = logging.getLogger("loadgen")


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
        target = worker_target(self.setup["target"], dsn=os.environ.get("LOADGEN_DSN"))
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
