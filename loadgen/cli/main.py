"""The ``loadgen`` command line: thin over the library; each subcommand is a small ``cmd_*``.

Anything the user can fix ends as one line on stderr and exit code 2; broken
invariants end with exit code 1; a breached gate (``--max-conflict-rate`` ...) with 3.

Imports inside the ``cmd_*`` functions are on purpose ("lazy"): the engine's modules
load Locust, which patches the standard library for gevent (it must come before
psycopg) and takes about a second; the report's load pandas and matplotlib. Each
subcommand loads what it runs and no more: ``loadgen report``, ``db`` and ``predict``
never load Locust, and a run's fixed cost (issue 15, BENCHMARKS.md) carries no module
it does not use.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from loadgen import __version__
from loadgen.cli import dsql as dsql_cli
from loadgen.cli import predict as predict_cli
from loadgen.errors import ConfigError, LoadgenError
from loadgen.model import knobs, scenariofile
from loadgen.model.scenario import parse_duration
from loadgen.model.scenariofile import Cell, ScenarioFile
from loadgen.results.fixed_cost import fixed_cost, process_start_time, record_fixed_cost
from loadgen.results.records import SweepRecord
from loadgen.targets.base import check_cells, redact_conninfo
from loadgen.targets.embedded import EmbeddedPostgres
from loadgen.targets.spec import KINDS, TargetSpec, make_target
from loadgen.ui import LOCUSTFILE

__all__ = ["main"]

EXIT_OK, EXIT_INVARIANT, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints usage; one clear line is friendlier in scripts and logs.
        self.exit(EXIT_USAGE, f"loadgen: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="loadgen", description="Measure optimistic-concurrency contention on PostgreSQL-compatible databases.")
    p.add_argument("--version", action="version", version=f"loadgen {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    r = sub.add_parser("run", help="run transfers headless and write a results directory")
    r.add_argument(
        "scenario",
        nargs="?",
        help="a scenario file (scenarios/NAME.toml) or a built-in's name; options below override it "
        "(default: quickstart, or a single run when workload options are given)",
    )
    knobs.add_flags(r)  # every scenario knob with a flag: loadgen.model.knobs
    r.add_argument("--target", default="embedded", help=f"{', '.join(KINDS)} (default embedded)")
    r.add_argument("--dsn", help="connection string or URL for --target postgres")
    r.add_argument("--schema", help="--target postgres: the schema holding the tables, one live run at a time (default loadgen)")
    r.add_argument(
        "--resume",
        type=Path,
        metavar="SWEEP_DIR",
        help="run the cells of a killed or interrupted sweep that did not finish, into its directory (target options as before)",
    )
    r.add_argument("--keep-db", action="store_true", help="embedded target: keep the run's own database after it ends (default: dropped)")
    r.add_argument("--out", type=Path, default=Path("reports"), help="results go in a new directory under this one (default reports/)")
    c = r.add_argument_group("fault injection (PostgreSQL targets)")
    c.add_argument("--chaos-kill-every", help="terminate some of loadgen's backends at this interval (e.g. 2s)")
    c.add_argument("--chaos-kill-fraction", type=_number, help="share of loadgen's backends terminated each time (default 0.2)")
    c.add_argument("--chaos-restart-at", help="restart the embedded server once, this long into the run")
    r.add_argument(
        "--unreachable-limit", default="60s", help="end the run when no attempt reaches the database for this long (default 60s)"
    )
    r.add_argument("-q", "--quiet", action="store_true", help="no progress (a terminal gets a live display, logs and pipes plain lines)")
    r.add_argument(
        "--csv", metavar="PREFIX", help="also write PREFIX_stats.csv, PREFIX_failures.csv, PREFIX_attempts.csv (as Locust's --csv)"
    )
    r.add_argument("--html", metavar="FILE", type=Path, help="also write the HTML report to FILE (as Locust's --html)")
    s = r.add_argument_group("scale out (Locust distributed mode)")
    s.add_argument("--processes", type=_positive_int, help="run the users in this many worker processes on this machine")
    s.add_argument("--master", action="store_true", help="be the master: wait for --expect-workers workers started elsewhere")
    s.add_argument("--expect-workers", type=_positive_int, help="with --master: workers to wait for (default 1)")
    s.add_argument("--master-bind-host", default=None, help="with --master: interface to listen on (default 127.0.0.1)")
    s.add_argument("--master-port", type=_positive_int, help="the master's port (default 5557; --processes alone: any free port)")
    s.add_argument("--worker", action="store_true", help="be a worker: run users for the master at --master-host")
    s.add_argument("--master-host", help="with --worker: the master's address")
    dsql_cli.add_run_options(r)

    rep = sub.add_parser("report", help="write the HTML contention report for run or sweep directories")
    rep.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="run or sweep directories")
    rep.add_argument("-o", "--output", type=Path, help="HTML file to write (default: report.html in the first PATH)")
    rep.add_argument("--compare", action="store_true", help="two runs or sweeps side by side, differences stated")

    d = sub.add_parser("db", help="manage the embedded PostgreSQL")
    d.add_argument("action", choices=["start", "stop", "status", "url", "prune"])
    d.add_argument("--max-connections", type=_positive_int, default=0, help="with start: at least this many")
    d.add_argument("--force", action="store_true", help="with stop: stop even while runs are live (cuts them)")
    dsql_cli.add_command(sub, _Parser)
    predict_cli.add_command(sub, _Parser)

    u = sub.add_parser("ui", help="start the target and Locust's web UI with a live Contention tab")
    u.add_argument(
        "scenario",
        nargs="?",
        metavar="SCENARIO",
        help="a scenario file or built-in name: its settings become the start form's defaults (a sweep: its first cell)",
    )
    u.add_argument("--web-host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1; 0.0.0.0 opens it to the network)")
    u.add_argument("--web-port", type=_positive_int, default=8089, help="port to listen on (default 8089)")
    # Every knob the start form shows, as its default there (overriding SCENARIO's).
    knobs.add_flags(u, include=lambda k: k.form is not None, prefix="the start form's default: ")
    u.add_argument("--target", default="embedded", help="embedded (default) or postgres")
    u.add_argument("--dsn", help="connection string or URL for --target postgres (or set LOADGEN_DSN)")
    u.add_argument(
        "--out", type=Path, default=Path("reports"), help="each test's results go in a new directory under this one (default reports/)"
    )
    u.epilog = "Options after -- go to Locust as they are (e.g. loadgen ui -- --web-login)."
    return p


def _safe_argv(argv: list[str]) -> list[str]:
    """The command line as recorded: connection strings redacted."""
    out: list[str] = []
    redact_next = False
    for arg in argv:
        if redact_next:
            out.append(redact_conninfo(arg))
            redact_next = False
        elif arg == "--dsn":
            out.append(arg)
            redact_next = True
        elif arg.startswith("--dsn="):
            out.append("--dsn=" + redact_conninfo(arg[6:]))
        else:
            out.append(arg)
    return out


def _scenario_file_from_args(args: argparse.Namespace) -> ScenarioFile:
    """The scenario file (or an ad-hoc single run) this command line asks for, validated."""
    overrides = knobs.overrides_from_args(args)
    if args.scenario is None and overrides:
        # No file, some options: one run from the built-in defaults, as before scenario files.
        return ScenarioFile("ad-hoc", "", "command line", (Cell(0, {}, knobs.build_scenario(overrides)),))
    return scenariofile.load(args.scenario or "quickstart", overrides)


def _chaos_from_args(args: argparse.Namespace) -> Any:
    from loadgen.engine.chaos import Chaos  # lazy: see the module docstring

    return Chaos(
        kill_every_s=parse_duration(args.chaos_kill_every) if args.chaos_kill_every else None,
        kill_fraction=args.chaos_kill_fraction if args.chaos_kill_fraction is not None else 0.2,
        restart_at_s=parse_duration(args.chaos_restart_at) if args.chaos_restart_at else None,
    )


def _plan_run(args: argparse.Namespace) -> tuple[ScenarioFile, Any, Any, Any]:
    """What ``loadgen run`` will do, every option checked, before any database work (and, with
    ``--ephemeral``, before a cluster is created): (scenario file, target, chaos, fleet)."""
    # The command line's settings against its own target first: one DSQL refuses is named for DSQL.
    problem = knobs.options_problem(dsql_cli.options_dialect(args), knobs.overrides_from_args(args))
    if problem:
        raise ConfigError(problem)
    sf = _scenario_file_from_args(args)  # validate before any database work
    chaos = _chaos_from_args(args)
    parse_duration(args.unreachable_limit)
    fleet = _fleet_from_args(args)
    spec = dsql_cli.target_spec(args, sf)  # the command line's target options over the file's [target]
    check_cells(spec.sql_dialect, sf.cells)  # every cell against the target, before any work
    target = make_target(spec)
    if chaos.active and target.kind == "dsql":
        raise ConfigError("fault injection (--chaos-*) is for PostgreSQL targets, not DSQL")
    if fleet is not None:
        from loadgen.engine.distributed import check_scale_out  # lazy: see the module docstring

        check_scale_out(target, [c.scenario for c in sf.cells])  # before any database work
    return sf, target, chaos, fleet


def cmd_run(args: argparse.Namespace, argv: list[str]) -> int:
    # Locust first: gevent must patch the standard library before anything imports psycopg.
    import locust  # noqa: F401

    from loadgen.cli.display import progress_view  # lazy: see the module docstring
    from loadgen.engine import interrupts  # lazy: see the module docstring

    interrupts.install()  # Ctrl-C and SIGTERM from here on, also in a process started in the background
    if args.resume is not None:
        return cmd_resume(args, argv)
    sf, target, chaos, fleet = _plan_run(args)
    unreachable_limit_s = parse_duration(args.unreachable_limit)
    from loadgen.cli.summary import format_summary  # lazy: see the module docstring
    from loadgen.engine import sweep  # lazy: see the module docstring

    s0 = sf.cells[0].scenario
    what = (
        f"{len(sf.cells)} cells over {', '.join(sf.sweep_keys)}"
        if sf.is_sweep
        else (f"{s0.accounts} accounts, {s0.users} users, {s0.duration_s:g} s, {s0.distribution} keys")
    )
    name = "" if sf.name == "ad-hoc" else f" {sf.name}"
    modes = sorted({c.scenario.cc for c in sf.cells})
    latency = s0.latency
    rtt = f", rtt +{latency.rtt_ms:g} ms" if latency.active and not sf.is_sweep else ""
    print(f"loadgen run{name}: {what}, target {target.kind}, cc {'/'.join(modes)}{rtt}", flush=True)
    with progress_view(args.quiet, sf.name, sf.is_sweep) as view:
        result = sweep.run_file(
            sf,
            target,
            args.out,
            progress=view,
            command_line=["loadgen", *_safe_argv(argv)],
            run_options={
                "chaos": chaos,
                "unreachable_limit_s": unreachable_limit_s,
                "keep_db": args.keep_db,
                **({"fleet": fleet} if fleet else {}),
            },
        )
    if result.is_sweep:
        print(sweep.format_sweep(result))
    else:
        run = result.results[0]
        # Known only now, the report written: the rest is printing and leaving (entry()).
        first, last = run.attempt_span or (None, None)
        fixed = fixed_cost(process_start_time(), first, last, time.time())
        if fixed is not None:
            record_fixed_cost(run.run_dir, fixed)
            run.client["fixed_cost_s"] = fixed
        print(format_summary(run))
    if result.report is not None:
        print(f"  report            {result.report}")
    _locust_style_outputs(args, result)
    if not dsql_cli.report_dialect_check(target, result.out_dir):
        return EXIT_INVARIANT
    aborted = [r for r in result.results if r.aborted]
    if aborted:
        print(f"loadgen: run ended early: {aborted[0].aborted}; results so far are in {result.out_dir}", file=sys.stderr)
        return EXIT_INVARIANT
    if not result.invariants_hold:
        return EXIT_INVARIANT
    return _gates_exit(result)


def _gates_exit(result: Any) -> int:
    """After the invariants (which win): interrupted, else one line per breached gate and exit 3, else 0."""
    from loadgen.results.gates import EXIT_GATE, breach_lines  # lazy: see the module docstring

    if not result.completed:
        return EXIT_INTERRUPTED
    lines = []
    for run in result.results:
        where = "" if len(result.results) == 1 else f" (cell {run.run_dir.name})"
        lines += breach_lines(run.gates, where)
    for line in lines:
        print(f"loadgen: {line}", file=sys.stderr, flush=True)
    return EXIT_GATE if lines else EXIT_OK


def cmd_resume(args: argparse.Namespace, argv: list[str]) -> int:
    """``loadgen run --resume SWEEP_DIR``: the sweep's recorded cells; target and run options from this command line."""
    from loadgen.cli.display import progress_view  # lazy: see the module docstring
    from loadgen.engine import sweep  # lazy: see the module docstring

    if args.scenario or knobs.overrides_from_args(args):
        raise ConfigError("--resume runs the sweep's own cells as recorded: give no scenario or workload options with it")
    if not SweepRecord.exists(args.resume):
        raise ConfigError(f"--resume needs a sweep directory (with sweep.json): {args.resume}")
    target = make_target(dsql_cli.target_spec(args))
    fleet = _fleet_from_args(args)
    with progress_view(args.quiet, args.resume.name, True) as view:
        result = sweep.resume(
            args.resume,
            target,
            progress=view,
            say=lambda line: print(line, flush=True),
            command_line=["loadgen", *_safe_argv(argv)],
            run_options={
                "chaos": _chaos_from_args(args),
                "unreachable_limit_s": parse_duration(args.unreachable_limit),
                "keep_db": args.keep_db,
                **({"fleet": fleet} if fleet else {}),
            },
        )
    if result.results:
        print(sweep.format_sweep(result))
    if result.report is not None:
        print(f"  report            {result.report}")
    if any(r.aborted for r in result.results) or not result.invariants_hold:
        return EXIT_INVARIANT
    return _gates_exit(result)


def _locust_style_outputs(args: argparse.Namespace, result: Any) -> None:
    """``--csv PREFIX`` and ``--html FILE``, as Locust's headless runs write them (loadgen's numbers)."""
    if args.csv and result.results:
        from loadgen.results.export import write_csv  # lazy: see the module docstring

        for path in write_csv([r.run_dir for r in result.results], args.csv):
            print(f"  csv               {path}")
    if args.html and result.results:
        from loadgen.report import write_report  # lazy: see the module docstring

        print(f"  html              {write_report([result.out_dir], args.html)}")


def _fleet_from_args(args: argparse.Namespace) -> Any:
    """The scale-out settings, or None for a single-process run."""
    if not (args.processes or args.master):
        if args.expect_workers or args.master_bind_host:
            raise ConfigError("--expect-workers and --master-bind-host are for --master")
        return None

    from loadgen.engine.distributed import DEFAULT_MASTER_PORT, Fleet  # lazy: see the module docstring

    port = args.master_port or (0 if not args.master else DEFAULT_MASTER_PORT)
    expect = args.expect_workers or (1 if args.master and not args.processes else 0)
    return Fleet(
        processes=args.processes or 0,
        expect_workers=expect,
        bind_host=args.master_bind_host or "127.0.0.1",
        bind_port=port,
    )


def cmd_worker(args: argparse.Namespace) -> int:
    if not args.master_host:
        raise ConfigError("--worker needs --master-host (the address of the loadgen --master)")
    import locust  # noqa: F401  - gevent's monkey-patching before psycopg

    from loadgen.engine.distributed import DEFAULT_MASTER_PORT, run_worker  # lazy: see the module docstring

    print(f"loadgen worker: joining the master at {args.master_host}:{args.master_port or DEFAULT_MASTER_PORT}", flush=True)
    return run_worker(args.master_host, args.master_port or DEFAULT_MASTER_PORT)


def cmd_report(args: argparse.Namespace) -> int:
    from loadgen.report import write_report  # lazy: see the module docstring
    from loadgen.results.rundir import recover_cut_off  # lazy: pyarrow, for the commands that read results

    # Recovering a killed run writes (attempts.parquet written from its parts, its run.json marked cut off):
    # a step of its own, said out loud, never a side effect of reading.
    for path in args.paths:
        for recovered in recover_cut_off(path):
            print(recovered.describe())
    out = write_report(args.paths, args.output, compare=args.compare)
    print(f"report: {out}")
    return EXIT_OK


def cmd_db(args: argparse.Namespace) -> int:
    server = EmbeddedPostgres()
    if args.action == "start":
        status = server.ensure_running(min_connections=args.max_connections)
        print(f"running (pid {status.pid}, max_connections {status.max_connections}): {server.url}")
    elif args.action == "stop":
        print("stopped" if server.stop(force=args.force) else "not running")
    elif args.action == "prune":
        dropped = server.prune() if server.status().running else []
        print(f"dropped {len(dropped)} database(s) of runs no longer live" + (": " + ", ".join(dropped) if dropped else ""))
    elif args.action == "status":
        status = server.status()
        if status.running:
            print(f"running (pid {status.pid}, max_connections {status.max_connections}): {server.url}")
            for run in status.live_runs:
                print(f"  live run {run.run_id} (pid {run.pid}, {run.users} users, database {run.database})")
            left = [db for db in server.run_databases() if db not in {r.database for r in status.live_runs}]
            if left:
                print(f"  {len(left)} database(s) left by runs that ended without dropping them (--keep-db, or killed): loadgen db prune")
        else:
            print(f"not running (data in {server.home})")
            return 3
    elif args.action == "url":
        print(server.url)
    return EXIT_OK


def _ui_form_defaults(loaded: ScenarioFile) -> dict[str, str]:
    """A scenario's settings as the web UI's start-form options (its first cell, for a sweep)."""
    sc = loaded.cells[0].scenario
    if len(loaded.cells) > 1:
        print(
            f"loadgen ui: {loaded.name} is a sweep of {len(loaded.cells)} cells; the form starts with the first: {loaded.cells[0].label}",
            flush=True,
        )
    form: dict[str, str] = {}
    unused: list[str] = []
    for knob in knobs.KNOBS:
        if knob.field is None or knob.key == "name":
            continue
        value = knobs.field_value(sc, knob.field)
        if knob.form is None:
            if value != knobs.field_default(knob.field):
                unused.append(knob.key)
            continue
        shown = knob.form_value(value)
        assert knob.flag is not None  # a form's field is named as its flag
        form[knob.flag] = f"{shown:g}" if isinstance(shown, float) else str(shown)
    if unused:
        print(f"loadgen ui: the web UI's form has no field for these settings of {loaded.name}; not used: " + ", ".join(unused), flush=True)
    return form


def cmd_ui(args: argparse.Namespace) -> int:
    import locust  # noqa: F401  - gevent's monkey-patching before psycopg

    # Neither a scenario nor a knob option: the form keeps its own defaults (the Scenario's).
    asked = args.scenario is not None or knobs.overrides_from_args(args)
    form = _ui_form_defaults(_scenario_file_from_args(args)) if asked else {}
    users = int(form.pop("--users", knobs.BY_KEY["users"].default))
    spawn_rate = float(form.pop("--spawn-rate", users))
    dsn = args.dsn or os.environ.get("LOADGEN_DSN") or None
    target = make_target(TargetSpec.from_options({"kind": args.target, "dsn": dsn}))
    try:  # say so plainly now rather than in a Locust traceback later
        with socket.socket(socket.AF_INET6 if ":" in args.web_host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((args.web_host, args.web_port))
    except OSError as e:
        raise ConfigError(f"cannot listen on {args.web_host}:{args.web_port}: {e.strerror or e}") from None
    target.prepare(users)
    if dsn:
        # Through the environment, not Locust's argv: argv values end up in the page.
        os.environ["LOADGEN_DSN"] = dsn
    locust_argv = [
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--web-host",
        args.web_host,
        "--web-port",
        str(args.web_port),
        "--users",
        str(users),
        "--spawn-rate",
        str(spawn_rate),
        "--target",
        args.target,
        "--out",
        str(args.out),
        # Conflicts are failed attempts to Locust; they are what we measure, not an error.
        "--exit-code-on-error",
        "0",
    ]
    for option, value in form.items():
        locust_argv += [option, value]
    extra = [a for a in args.locust_args if a != "--"]
    shown = f"[{args.web_host}]" if ":" in args.web_host else args.web_host
    where = target.describe().get("url") or target.describe().get("dsn")
    print(f"loadgen ui: target {target.kind} at {where}", flush=True)
    print(f"loadgen ui: web UI at http://{shown}:{args.web_port}/ (contention charts at /contention); Ctrl-C stops", flush=True)
    from locust.main import main as locust_main  # lazy: see the module docstring

    sys.argv = locust_argv + extra
    locust_main()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # The pool logs every broken connection; loadgen counts them instead (run.json, summary).
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    # Starting all users at once is what loadgen means to do; Locust's advice against it is noise here.
    logging.getLogger("locust.runners").addFilter(lambda r: "spawn rate is very high" not in r.getMessage())
    parser = build_parser()
    locust_args: list[str] = []
    if argv[:1] == ["ui"] and "--" in argv:
        # loadgen ui [options] -- [Locust's options]
        cut = argv.index("--")
        argv, locust_args = argv[:cut], argv[cut + 1 :]
    args = parser.parse_args(argv)
    args.locust_args = locust_args
    try:
        if args.command == "run" and args.ephemeral:
            import locust  # noqa: F401  - before the checks: they may load psycopg, which must follow gevent's patching

            # Every option checked as the run will take it (TLS, chaos, processes, cells) before creating a cluster.
            return dsql_cli.run_ephemeral(args, lambda: cmd_run(args, argv), check=lambda: _plan_run(args))
        if args.command == "run" and args.worker:
            return cmd_worker(args)
        if args.command == "run":
            return cmd_run(args, argv)
        if args.command == "dsql":
            return dsql_cli.cmd_dsql(args)
        if args.command == "db":
            return cmd_db(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "ui":
            return cmd_ui(args)
        if args.command == "predict":
            return predict_cli.cmd_predict(args)
        parser.print_help()
        return EXIT_USAGE
    except LoadgenError as e:
        print(f"loadgen: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("loadgen: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover  - the command is loadgen.cli.command.entry
    sys.exit(main())
