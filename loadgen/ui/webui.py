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

# isort: split

import contextlib
import json
import logging
import os
import signal
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadgen.engine.live import ContentionCounters, LiveRecorder, Timeline, merge, view
from loadgen.engine.session import RunSession, write_report_or_warn
from loadgen.engine.users import TRANSACTION, Bench, set_bench
from loadgen.errors import LoadgenError, first_line
from loadgen.model.keys import make_distribution
from loadgen.results.outofcore import summarize_files
from loadgen.results.records import RunRecord
from loadgen.results.rundir import attempts_file, attempts_so_far, run_file
from loadgen.targets.base import Target, redact_conninfo
from loadgen.targets.scope import RunScope
from loadgen.targets.spec import TargetSpec, make_target
from loadgen.ui import routes as webroutes
from loadgen.ui.exitcode import ExitCode
from loadgen.ui.form import DEFAULT_WEB_HOST, FORM_TYPES, add_arguments, scenario_from_options

__all__ = ["install", "add_arguments", "LoadgenPlugin", "scenario_from_options", "DEFAULT_WEB_HOST"]

log = logging.getLogger("loadgen")

#: Pool size on a worker until it knows how many users it runs.
_WORKER_POOL_START = 50
_SAMPLE_S = 1.0
_STATIC = Path(__file__).with_name("static")


def install(events: Any) -> None:
    """Register the plugin on Locust's (global) events; safe to call twice."""
    if getattr(events, "_loadgen_installed", False):
        return
    events._loadgen_installed = True
    events.init_command_line_parser.add_listener(add_arguments)

    @events.init.add_listener
    def _on_init(environment: Environment, **_: Any) -> None:
        plugin = LoadgenPlugin(environment)
        plugin.register()
        ExitCode(plugin).register()  # conflicts are measured, not failures: loadgen's exit codes


class LoadgenPlugin:
    """loadgen's state in one Locust process: the bench, the live counters, the last run directory."""

    def __init__(self, environment: Environment) -> None:
        self.env = environment
        self.counters = ContentionCounters()
        self.timeline = Timeline()
        self.worker_snaps: dict[str, dict[str, Any]] = {}
        self.bench: Bench | None = None
        self.run_dir: Path | None = None
        self.error: str | None = None
        self._sampler: gevent.Greenlet | None = None
        self._interrupts = 0
        #: Leaving (Ctrl-C, SIGTERM): write the test's data, skip its report.
        self._quitting = False
        #: The current (or last) test's run: its id, target, bank reset and records.
        self.session: RunSession | None = None
        opts = environment.parsed_options
        # The DSN from the command line (or LOADGEN_DSN) stays here, never in a page.
        self._dsn = (getattr(opts, "dsn", "") or "") or os.environ.get("LOADGEN_DSN", "")
        set_bench(environment, None)

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
        if self.role == "master":
            ev.worker_report.add_listener(self.on_worker_report)
        else:
            ev.request.add_listener(self.on_request)
        if self.role == "worker":
            ev.report_to_master.add_listener(self.on_report_to_master)
        if self.env.web_ui is not None:
            webroutes.attach(self, self.env.web_ui)
        if self.role != "worker":
            # Ours, not Python's: a shell that starts `loadgen ui &` leaves SIGINT ignored,
            # and Python then never raises KeyboardInterrupt; gevent's handler works regardless.
            gevent.signal_handler(signal.SIGINT, self.on_interrupt)

    def on_interrupt(self) -> None:
        """Ctrl-C: stop the test (in-flight attempts end as ``interrupted``), write it, then leave; again: leave now."""
        self._interrupts += 1
        if self._interrupts > 1:
            os._exit(130)  # a second Ctrl-C: at once; what reached disk stays
        print("\nloadgen ui: stopping the test and writing its results (Ctrl-C again to quit at once)", file=sys.stderr, flush=True)
        gevent.spawn(self._shut_down)

    def _shut_down(self) -> None:
        self._quitting = True
        self.stop_test()
        runner = self.env.runner
        if self.env.web_ui is not None:
            self.env.web_ui.stop()  # Locust's main greenlet ends: it fires `quitting` and exits
        if runner is not None:
            runner.quit()

    def stop_test(self) -> None:
        """Stop a running test the way the Stop button does, so it writes its run directory before anything closes."""
        runner = self.env.runner
        if runner is not None and getattr(runner, "state", None) in ("spawning", "running"):
            runner.stop()

    # -- settings -------------------------------------------------------

    def dsn(self) -> str:
        opts = self.env.parsed_options
        return (getattr(opts, "dsn", "") or "") or self._dsn

    def make_target(self) -> Target:
        opts = self.env.parsed_options
        return make_target(TargetSpec.from_options({"kind": getattr(opts, "target", "embedded"), "dsn": self.dsn() or None}))

    def settings(self) -> dict[str, Any]:
        """The start form's loadgen settings as they stand, without secrets."""
        opts = self.env.parsed_options
        out = {k: getattr(opts, k, None) for k in FORM_TYPES}
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
            self.error = f"cannot start the test: {first_line(e)}"
            log.error("loadgen: %s", self.error)
            if self.env.runner is not None:
                gevent.spawn_later(0, self.env.runner.stop)
            return
        if self.role != "worker":
            self._sampler = gevent.spawn(self._sample_forever)

    @property
    def run_id(self) -> str | None:
        return self.session.run_id if self.session is not None else None

    def _start_test(self) -> None:
        opts = self.env.parsed_options
        assert opts is not None  # Locust parses its options before any test starts
        users = self.users_asked() if self.role != "worker" else _WORKER_POOL_START
        scenario = scenario_from_options(opts, users)
        make_distribution(scenario.distribution, scenario.accounts)
        target = self.make_target()
        session = self.session = RunSession(scenario, target, command_line=["loadgen", "ui"])
        if self.role == "local":
            # The run directory from the start: attempts reach it every second.
            session.open_run_dir(Path(getattr(opts, "out", "reports") or "reports").resolve())
        if self.role != "worker":
            # One process seeds the bank, before any user (local or on a worker) starts, in
            # the test's own database (or schema); workers hear where from the spawn message.
            session.prepare()
            opts.loadgen_scope = json.dumps(target.scope.to_dict()) if target.scope is not None else ""
            log.info("loadgen: %s accounts seeded on %s; run %s", scenario.accounts, target.kind, session.run_id)
        elif getattr(opts, "loadgen_scope", ""):
            target.join_run(RunScope.from_dict(json.loads(opts.loadgen_scope)))
        session.start()
        if self.role != "master":
            worker = getattr(self.env.runner, "client_id", "local") if self.role == "worker" else "local"
            recorder = LiveRecorder(session.run_id, self.counters, worker=str(worker))
            self.bench = Bench(scenario, target, recorder)
            set_bench(self.env, self.bench)
            if self.role == "local":
                # Every user's connection open before Locust spawns them (a worker's share is not known yet).
                self.bench.warm_up()
            if session.run_dir is not None:
                session.stream(lambda: (recorder,))

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
        if bench is None or self.role == "master":
            if self.session is not None and self.role != "worker":
                self.session.end_target()  # the master's test (or one that never started) ends here
            return
        connections = bench.close()
        if self.role == "local":
            try:
                self.run_dir = self._write_run_dir(bench, connections)
                log.info("loadgen: results in %s", self.run_dir)
            except Exception as e:  # noqa: BLE001 - the UI goes on; say why in one line
                self.error = f"cannot write the run directory: {first_line(e)}"
                log.error("loadgen: %s", self.error)

    def on_quitting(self, environment: Environment, **_: Any) -> None:
        # SIGTERM (Locust's own handler) lands here with the test still running: stop it
        # first, or closing the connections under transactions in flight records them as connection errors.
        self._quitting = True
        self.stop_test()
        self._close_bench()
        if self.session is not None and self.role != "worker":
            self.session.end_target()

    def _close_bench(self) -> None:
        if self.bench is not None and not self.bench.connections.closed:
            self.bench.close()

    # -- results --------------------------------------------------------

    def _write_run_dir(self, bench: Bench, connections: dict[str, int]) -> Path:
        """The test's run directory, written as a headless run writes it (loadgen.engine.session)."""
        session = self.session
        assert session is not None and session.started is not None
        run_dir = session.run_dir or session.open_run_dir(Path(getattr(self.env.parsed_options, "out", "reports") or "reports").resolve())
        ended = datetime.now(UTC)
        # The test ran as long as the user let it: that is the scenario's duration.
        session.scenario = replace(bench.scenario, duration_s=max((ended - session.started).total_seconds(), 0.001))
        result = session.finish(bench.recorder, self.env, connections)
        if not result.invariants_hold:
            log.error("loadgen: invariants broken: %s", "; ".join(i.detail for i in result.invariants if not i.ok))
        if self._quitting:
            # Leaving: the data is written; the report (seconds of charting) can wait for `loadgen report`.
            log.info("loadgen: report not drawn while quitting; `loadgen report %s` draws it", run_dir)
        else:
            session.closing_report()
        return run_dir

    def draw_missing_report(self, run_dir: Path) -> None:
        """``report.html`` beside the data, for a download that found none; never fatal (loadgen.engine.session.write_report_or_warn)."""
        write_report_or_warn([run_dir])

    def attempts_parquet(self) -> BinaryIO | Path | None:
        """The last test's file, or the current test's attempts so far (an open file, gone once sent)."""
        if self.run_dir is not None and (done := attempts_file(self.run_dir)) is not None:
            return done
        if self.bench is None:
            return None
        with self._attempts_so_far() as path:
            return path.open("rb")  # still readable once its directory is removed

    def _attempts_so_far(self) -> contextlib.AbstractContextManager[Path]:
        """The running test's attempts as one temporary file: those already on disk, then those still in memory."""
        assert self.bench is not None
        session = self.session
        streamed = session is not None and session.streamed is not None
        return attempts_so_far(session.run_dir if session is not None and streamed else None, self.bench.recorder.to_table)

    def run_json(self) -> bytes | Path | None:
        """The last test's ``run.json``, or, while a test runs, what is known so far."""
        if self.run_dir is not None and (done := run_file(self.run_dir)) is not None:
            return done
        session = self.session
        if self.bench is None or session is None:
            return None
        record = RunRecord(
            run_id=session.run_id,
            in_progress=True,
            scenario=self.bench.scenario.to_dict(),
            target=session.target.describe(),
            started_at=session.started.isoformat() if session.started else None,
            completed=False,
            summary=self._summary_so_far(),
        )
        return record.to_json().encode()

    def _summary_so_far(self) -> dict[str, Any]:
        """run.json's summary of the attempts so far, read back a batch at a time (a test of hours holds millions)."""
        with self._attempts_so_far() as path:
            summary, _, _ = summarize_files([path])
        return summary

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
            # The test's own database on the embedded server (None once it ended, or on other targets).
            "database": self.session.target.scope.database if self.session is not None and self.session.target.scope else None,
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "error": self.error,
            "settings": self.settings(),
            "totals": view(self.totals()),
            "timeline": list(self.timeline.points),
        }
