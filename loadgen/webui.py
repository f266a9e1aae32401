"""loadgen as a Locust plugin: settings in the start form, a fresh bench per test, a Contention tab.

Everything here hangs off Locust's supported extension points: custom command-line
options (shown in the web UI's start form, secrets masked), the ``init``,
``test_start``/``test_stop``, ``request`` and ``report_to_master``/``worker_report``
events, and Flask routes on ``environment.web_ui.app`` with the UI's
``extended_tabs``/``extended_tables``/``extended_csv_files`` template arguments.

Roles: a local runner does everything; in distributed mode the master resets the
bank and adds up the workers' counters, and each worker runs users against its
own bench and sends its counters with every stats report.
"""

from __future__ import annotations

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

import io
import json
import logging
import os
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadgen.errors import LoadgenError
from loadgen.keys import make_distribution
from loadgen.live import ContentionCounters, LiveRecorder, Timeline, merge, view
from loadgen.retry import BACKOFFS, RetryPolicy
from loadgen.scenario import DISTRIBUTIONS, Scenario
from loadgen.target import TARGETS, Target, make_target, redact_conninfo
from loadgen.users import TRANSACTION, Bench

__all__ = ["install", "add_arguments", "LoadgenPlugin", "scenario_from_options", "DEFAULT_WEB_HOST"]

log = logging.getLogger("loadgen")

#: Locust listens on every interface unless told otherwise; loadgen only on loopback.
DEFAULT_WEB_HOST = "127.0.0.1"
#: Pool size on a worker until it knows how many users it runs.
_WORKER_POOL_START = 50
_SAMPLE_S = 1.0
#: Seconds users get to finish their transaction when a test stops.
STOP_TIMEOUT_S = 3
_STATIC = Path(__file__).with_name("static")
#: Options the start form sends that are loadgen's, with how to read them back.
_FORM_TYPES: dict[str, type] = {
    "accounts": int,
    "distribution": str,
    "initial_balance": int,
    "amount": int,
    "max_attempts": int,
    "retry_deadline": float,
    "backoff": str,
    "backoff_base_ms": float,
    "backoff_cap_ms": float,
    "lock_timeout_ms": float,
    "target": str,
    "seed": int,
}


def add_arguments(parser: Any) -> None:
    """loadgen's settings as Locust options; all but ``--out`` appear in the start form."""
    g = parser  # argument groups do not take include_in_web_ui / is_secret
    g.add_argument("--accounts", type=int, default=10, help="Accounts in the bank; the bank is re-seeded at every start")
    g.add_argument("--distribution", default="uniform", choices=list(DISTRIBUTIONS), help="How payer and payee are chosen")
    g.add_argument("--initial-balance", type=int, default=100, help="Each account's balance after seeding")
    g.add_argument("--amount", type=int, default=1, help="Amount of each transfer")
    g.add_argument("--max-attempts", type=int, default=100, help="Retry policy: tries per transaction")
    g.add_argument("--retry-deadline", type=float, default=10.0, help="Retry policy: give up on a transaction after this many seconds")
    g.add_argument("--backoff", default="none", choices=list(BACKOFFS), help="Retry policy: pause between tries")
    g.add_argument("--backoff-base-ms", type=float, default=5.0, help="Retry policy: first backoff pause (ms)")
    g.add_argument("--backoff-cap-ms", type=float, default=1000.0, help="Retry policy: longest backoff pause (ms)")
    g.add_argument(
        "--lock-timeout-ms",
        type=float,
        default=0.0,
        help="PostgreSQL lock mode: give up row-lock waits after this many ms (0: wait, the server's default)",
    )
    g.add_argument("--target", default="embedded", choices=list(TARGETS), help="Database: loadgen's embedded PostgreSQL or any PostgreSQL (--dsn)")
    g.add_argument(
        "--dsn",
        default="",
        is_secret=True,
        help="Connection string for target postgres (kept out of pages and files; or set LOADGEN_DSN)",
    )
    g.add_argument("--seed", type=int, default=0, help="Random seed for reproducible key choices (0: random)")
    g.add_argument("--out", default="reports", include_in_web_ui=False, help="Each test's results go in a new directory under this one")
    # Safe by default: Locust's own default is every interface. And on Stop, give users
    # a moment to finish the transaction in hand rather than kill them mid-statement
    # (which leaves attempts "interrupted" and connections dirty). Kept short: in
    # distributed mode a worker rejoins the master only this long after a stop.
    parser.set_defaults(web_host=DEFAULT_WEB_HOST, stop_timeout=str(STOP_TIMEOUT_S))


def scenario_from_options(opts: Any, users: int) -> Scenario:
    """The scenario the start form describes (raises ConfigError on nonsense)."""
    retry = RetryPolicy(
        max_attempts=int(opts.max_attempts),
        deadline_s=float(opts.retry_deadline),
        backoff=opts.backoff,
        base_ms=float(opts.backoff_base_ms),
        cap_ms=float(opts.backoff_cap_ms),
    )
    run_time = getattr(opts, "run_time", None)
    spawn_rate = getattr(opts, "spawn_rate", None) or float(max(users, 1))
    return Scenario(
        name="web-ui",
        accounts=int(opts.accounts),
        users=max(int(users), 1),
        spawn_rate=float(spawn_rate),
        duration_s=float(run_time) if run_time else 3600.0,  # replaced by the real length at stop
        initial_balance=int(opts.initial_balance),
        amount=int(opts.amount),
        distribution=opts.distribution,
        retry=retry,
        lock_timeout_ms=float(opts.lock_timeout_ms) or None,
        seed=int(opts.seed) or None,
    )


def install(events: Any) -> None:
    """Register the plugin on Locust's (global) events; safe to call twice."""
    if getattr(events, "_loadgen_installed", False):
        return
    events._loadgen_installed = True
    events.init_command_line_parser.add_listener(add_arguments)

    @events.init.add_listener
    def _on_init(environment: Environment, **_: Any) -> None:
        LoadgenPlugin(environment).register()


class LoadgenPlugin:
    """loadgen's state in one Locust process: the bench, the live counters, the last run directory."""

    def __init__(self, environment: Environment) -> None:
        self.env = environment
        self.counters = ContentionCounters()
        self.timeline = Timeline()
        self.worker_snaps: dict[str, dict[str, Any]] = {}
        self.bench: Bench | None = None
        self.run_id: str | None = None
        self.run_dir: Path | None = None
        self.started: datetime | None = None
        self.error: str | None = None
        self._sampler: gevent.Greenlet | None = None
        self._scenario: Scenario | None = None
        self._target: Target | None = None
        opts = environment.parsed_options
        # The DSN from the command line (or LOADGEN_DSN) stays here, never in a page.
        self._dsn = (getattr(opts, "dsn", "") or "") or os.environ.get("LOADGEN_DSN", "")
        environment.loadgen = None  # type: ignore[attr-defined]
        environment.loadgen_plugin = self  # type: ignore[attr-defined]

    @property
    def role(self) -> str:
        if isinstance(self.env.runner, MasterRunner):
            return "master"
        if isinstance(self.env.runner, WorkerRunner):
            return "worker"
        return "local"

    def register(self) -> None:
        ev = self.env.events
        ev.test_start.add_listener(self.on_test_start)
        ev.test_stop.add_listener(self.on_test_stop)
        ev.quitting.add_listener(self.on_quitting)
        ev.spawning_complete.add_listener(self.on_spawning_complete)
        if self.role == "master":
            ev.worker_report.add_listener(self.on_worker_report)
        else:
            ev.request.add_listener(self.on_request)
        if self.role == "worker":
            ev.report_to_master.add_listener(self.on_report_to_master)
        if self.env.web_ui is not None:
            from loadgen import webroutes

            webroutes.attach(self, self.env.web_ui)

    # -- settings -------------------------------------------------------

    def dsn(self) -> str:
        opts = self.env.parsed_options
        return (getattr(opts, "dsn", "") or "") or self._dsn

    def make_target(self) -> Target:
        opts = self.env.parsed_options
        return make_target(getattr(opts, "target", "embedded"), self.dsn() or None)

    def settings(self) -> dict[str, Any]:
        """The start form's loadgen settings as they stand, without secrets."""
        opts = self.env.parsed_options
        out = {k: getattr(opts, k, None) for k in _FORM_TYPES}
        dsn = self.dsn()
        out["dsn"] = redact_conninfo(dsn) if dsn else ""
        return out

    def users_asked(self) -> int:
        runner = self.env.runner
        n = getattr(runner, "target_user_count", None) or getattr(self.env.parsed_options, "num_users", None)
        return int(n or 1)

    # -- the test's life ------------------------------------------------

    def on_test_start(self, environment: Environment, **_: Any) -> None:
        self.counters = ContentionCounters()
        self.worker_snaps = {}
        self.timeline.reset()
        self.error = None
        self.run_dir = None
        self._close_bench()
        try:
            self._start_test()
        except (LoadgenError, OSError) as e:
            self.error = str(e)
            log.error("loadgen: cannot start the test: %s", e)
            if self.env.runner is not None:
                gevent.spawn_later(0, self.env.runner.stop)
            return
        except Exception as e:  # noqa: BLE001 - psycopg errors, said in one line
            self.error = f"cannot start the test: {_first_line(e)}"
            log.error("loadgen: %s", self.error)
            if self.env.runner is not None:
                gevent.spawn_later(0, self.env.runner.stop)
            return
        if self.role != "worker":
            self._sampler = gevent.spawn(self._sample_forever)

    def _start_test(self) -> None:
        from loadgen.runner import _connect, new_run_id
        from loadgen.schema import reset

        opts = self.env.parsed_options
        users = self.users_asked() if self.role != "worker" else _WORKER_POOL_START
        scenario = scenario_from_options(opts, users)
        make_distribution(scenario.distribution, scenario.accounts)
        target = self.make_target()
        self.run_id = new_run_id()
        self.started = datetime.now(timezone.utc)
        self._scenario, self._target = scenario, target
        if self.role != "worker":
            # One process seeds the bank, before any user (local or on a worker) starts.
            target.prepare(scenario.users)
            with _connect(target) as conn:
                reset(conn, scenario.accounts, scenario.initial_balance, truncate=target.kind != "dsql")
            log.info("loadgen: %s accounts seeded on %s; run %s", scenario.accounts, target.kind, self.run_id)
        if self.role != "master":
            worker = getattr(self.env.runner, "client_id", "local") if self.role == "worker" else "local"
            recorder = LiveRecorder(self.run_id, self.counters, worker=str(worker))
            self.bench = Bench(scenario, target, recorder)
            self.env.loadgen = self.bench  # type: ignore[attr-defined]

    def on_spawning_complete(self, user_count: int, **_: Any) -> None:
        self.resize_pool(user_count)

    def resize_pool(self, users: int) -> None:
        """Let the pool open one connection per user (it opens them only on demand)."""
        bench = self.bench
        if bench is not None and not bench.pool.closed and users > bench.pool.max_size:
            bench.pool.resize(min_size=0, max_size=users)

    def on_request(self, request_type: str, exception: BaseException | None, context: dict[str, Any], **_: Any) -> None:
        if request_type == TRANSACTION:
            self.counters.add_transaction(int(context.get("attempts", 1)), exception is None)

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        data["loadgen"] = self.counters.snapshot()

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        snap = data.get("loadgen")
        if snap is not None:
            self.worker_snaps[client_id] = snap

    def totals(self) -> dict[str, Any]:
        """Cumulative counts for this test: this process's, or the sum of the workers'."""
        if self.role == "master":
            return merge(list(self.worker_snaps.values()))
        return self.counters.snapshot()

    def _sample_forever(self) -> None:
        while True:
            self.timeline.sample(self.totals(), self.env.runner.user_count if self.env.runner else 0)
            gevent.sleep(_SAMPLE_S)

    def on_test_stop(self, environment: Environment, **_: Any) -> None:
        if self._sampler is not None:
            self.timeline.sample(self.totals(), 0)
            self._sampler.kill(block=False)
            self._sampler = None
        bench = self.bench
        if bench is None:
            return
        connections = bench.close()
        if self.role == "local":
            try:
                self.run_dir = self._write_run_dir(bench, connections)
                log.info("loadgen: results in %s", self.run_dir)
            except Exception as e:  # noqa: BLE001 - the UI goes on; say why in one line
                self.error = f"cannot write the run directory: {_first_line(e)}"
                log.error("loadgen: %s", self.error)

    def on_quitting(self, environment: Environment, **_: Any) -> None:
        self._close_bench()

    def _close_bench(self) -> None:
        if self.bench is not None and not self.bench.pool.closed:
            self.bench.close()

    # -- results --------------------------------------------------------

    def _write_run_dir(self, bench: Bench, connections: dict[str, int]) -> Path:
        """The test's run directory, written as a headless run writes it (loadgen.runner)."""
        from loadgen.runner import _connect, finish_run, prepare_out_dir, write_run_json

        assert self.run_id is not None and self.started is not None and self._target is not None
        out = Path(getattr(self.env.parsed_options, "out", "reports") or "reports").resolve()
        run_dir = prepare_out_dir(out, self.run_id)
        ended = datetime.now(timezone.utc)
        scenario = replace(bench.scenario, duration_s=max((ended - self.started).total_seconds(), 0.001))
        with _connect(self._target) as conn:
            server_version = conn.execute("SELECT version()").fetchone()[0]  # type: ignore[index]
        result = finish_run(bench.recorder, self.env, self._target, scenario, run_dir, connections, True)
        write_run_json(result, scenario, self._target, server_version, self.started, ended, self.run_id, ["loadgen", "ui"])
        if not result.invariants_hold:
            log.error("loadgen: invariants broken: %s", "; ".join(i.detail for i in result.invariants if not i.ok))
        self.write_report(run_dir)
        return run_dir

    def write_report(self, run_dir: Path) -> None:
        """``report.html`` beside the data; never fatal (see loadgen.runner.write_report)."""
        from loadgen.runner import write_report

        write_report(run_dir)

    def attempts_parquet(self) -> bytes | Path | None:
        """The last test's file, or the current test's attempts so far."""
        if self.run_dir is not None and (self.run_dir / "attempts.parquet").exists():
            return self.run_dir / "attempts.parquet"
        if self.bench is None:
            return None
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(self.bench.recorder.to_table(), buf, compression="zstd")
        return buf.getvalue()

    def run_json(self) -> bytes | Path | None:
        """The last test's ``run.json``, or, while a test runs, what is known so far."""
        if self.run_dir is not None and (self.run_dir / "run.json").exists():
            return self.run_dir / "run.json"
        if self.bench is None or self._target is None:
            return None
        from loadgen.metrics import summarize

        doc = {
            "format": 1,
            "run_id": self.run_id,
            "in_progress": True,
            "scenario": self.bench.scenario.to_dict(),
            "target": self._target.describe(),
            "started_at": self.started.isoformat() if self.started else None,
            "completed": False,
            "summary": summarize(self.bench.recorder.to_table().to_pandas()),
        }
        return (json.dumps(doc, indent=2, default=str) + "\n").encode()

    def data(self) -> dict[str, Any]:
        """Everything the Contention tab shows, as one JSON document."""
        runner = self.env.runner
        workers = getattr(runner, "worker_count", 0) if self.role == "master" else 0
        return {
            "time": time.time(),
            "role": self.role,
            "state": getattr(runner, "state", None),
            "users": getattr(runner, "user_count", 0),
            "workers": workers,
            "run_id": self.run_id,
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "error": self.error,
            "settings": self.settings(),
            "totals": view(self.totals()),
            "timeline": list(self.timeline.points),
        }


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
