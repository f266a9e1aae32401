"""Every command's options, and nothing else: building the parser loads no command's modules.

``loadgen --help`` and every command's start read this module, so it imports only what
the options' help needs (the knob table, the targets' names); each command's work
lives in its own module (``loadgen.cli.run``, ``report``, ...), loaded by
``loadgen.cli.main`` once the command is known.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NoReturn

from loadgen import __version__
from loadgen.cli.exits import EXIT_USAGE
from loadgen.model import knobs
from loadgen.targets.spec import KINDS
from loadgen.ui.form import UI_TARGETS

__all__ = ["build_parser"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints usage; one clear line is friendlier in scripts and logs.
        self.exit(EXIT_USAGE, f"loadgen: {message}\n")


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _positive_int(text: str) -> int:
    value = _whole_number(text)
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
    _add_run(sub)
    _add_report(sub)
    _add_db(sub)
    _add_dsql(sub)
    _add_predict(sub)
    _add_ui(sub)
    return p


def _add_run(sub: Any) -> None:
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
    _add_dsql_run_options(r)


def _add_dsql_run_options(run: argparse.ArgumentParser) -> None:
    g = run.add_argument_group("Aurora DSQL (--target dsql)")
    g.add_argument("--endpoint", help="cluster endpoint ID.dsql.REGION.on.aws (or a cluster id with --region)")
    g.add_argument("--region", help="AWS Region (default: from the endpoint)")
    g.add_argument("--db-user", help="database role: admin (default) or a role mapped to IAM with AWS IAM GRANT")
    g.add_argument("--profile", help="AWS profile for credentials (default: the usual boto3 chain)")
    g.add_argument("--token-expiry", type=_whole_number, help="IAM token lifetime in seconds (default 900)")
    g.add_argument(
        "--sslmode",
        help="verify-full (default: the server's certificate checked against --sslrootcert) or require (encrypted, not verified)",
    )
    g.add_argument(
        "--sslrootcert",
        help="roots verify-full checks against: 'certifi' (default: certifi's bundle, which holds Amazon's roots), a CA bundle file, "
        "or 'system' (the roots of libpq's own OpenSSL, libpq 16+)",
    )
    g.add_argument("--connect-rate", type=_number, help="new connections per second (default 80; DSQL allows 100)")
    g.add_argument(
        "--max-connections",
        dest="dsql_max_connections",
        type=_whole_number,
        help="the cluster's connection quota (default 10000, DSQL's default; it is adjustable)",
    )
    g.add_argument(
        "--ephemeral",
        action="store_true",
        help="create a cluster for this run and delete it afterwards, even on failure (needs --region or a default Region)",
    )
    run.add_argument(
        "--dialect",
        choices=["postgresql", "dsql"],
        help="dsql: follow DSQL's rules on any target and check every statement sent (default: the target's own)",
    )


def _add_report(sub: Any) -> None:
    rep = sub.add_parser("report", help="write the HTML contention report for run or sweep directories")
    rep.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="run or sweep directories")
    rep.add_argument("-o", "--output", type=Path, help="HTML file to write (default: report.html in the first PATH)")
    rep.add_argument("--compare", action="store_true", help="two runs or sweeps side by side, differences stated")


def _add_db(sub: Any) -> None:
    d = sub.add_parser("db", help="manage the embedded PostgreSQL")
    d.add_argument("action", choices=["start", "stop", "status", "url", "prune"])
    d.add_argument("--max-connections", type=_positive_int, default=0, help="with start: at least this many")
    d.add_argument("--force", action="store_true", help="with stop: stop even while runs are live (cuts them)")


def _add_dsql(sub: Any) -> None:
    d = sub.add_parser("dsql", help="create or delete an Aurora DSQL cluster")
    actions = d.add_subparsers(dest="dsql_action", metavar="ACTION", parser_class=_Parser)
    actions.required = True
    c = actions.add_parser("create", help="create a cluster, wait until ACTIVE, print its endpoint")
    c.add_argument("--region", help="AWS Region (default: your profile's)")
    c.add_argument("--profile", help="AWS profile")
    c.add_argument("--tag", action="append", metavar="KEY=VALUE", help="a tag for the cluster (repeatable)")
    c.add_argument("--no-deletion-protection", action="store_true", help="create it without deletion protection")
    x = actions.add_parser("delete", help="delete a cluster (turning deletion protection off) and wait until it is gone")
    x.add_argument("cluster", metavar="ID", help="cluster identifier or endpoint")
    x.add_argument("--region", help="AWS Region (default: from the endpoint, or your profile's)")
    x.add_argument("--profile", help="AWS profile")


def _add_predict(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="simulate first-committer-wins OCC at other accounts x users from one measured run",
        description="Each simulated attempt takes a duration drawn from the run's committed attempts, "
        "keys from its key distribution and its retry policy; conflicts are decided at COMMIT, as Aurora DSQL does.",
    )
    p.add_argument("run_dir", type=Path, metavar="DIR", help="a run directory (attempts.parquet and run.json)")
    p.add_argument("--accounts", required=True, metavar="LIST", help="accounts per cell, comma-separated (e.g. 100,1000,10000)")
    p.add_argument("--users", required=True, metavar="LIST", help="concurrent users per cell, comma-separated (e.g. 10,100)")
    p.add_argument(
        "--rtt-ms", type=float, metavar="MS", help="each round trip takes MS instead of what the run emulated (a remote database)"
    )
    # The simulator's default, said here without importing it (numpy): tests/model/test_predict.py checks they agree.
    p.add_argument("--attempts", type=int, help="attempts simulated per cell (default 20,000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0): the same inputs give the same output")
    p.add_argument("--json", action="store_true", help="print a JSON list of cells instead of a table")


def _add_ui(sub: Any) -> None:
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
    u.add_argument("--target", default="embedded", choices=list(UI_TARGETS), help=f"{' or '.join(UI_TARGETS)} (default embedded)")
    u.add_argument("--dsn", help="connection string or URL for --target postgres (or set LOADGEN_DSN)")
    u.add_argument(
        "--out", type=Path, default=Path("reports"), help="each test's results go in a new directory under this one (default reports/)"
    )
    u.epilog = "Options after -- go to Locust as they are (e.g. loadgen ui -- --web-login)."
