"""The ``loadgen`` command line: its options parsed, its command's module loaded, the command run.

Anything the user can fix ends as one line on stderr and exit code 2; broken
invariants end with exit code 1; a breached gate (``--max-conflict-rate`` ...) with 3.

Each command is a module of this package (``run``, ``report``, ``predict``, ``ui``,
``db``, ``dsql``, ``worker``) that imports what it uses at its top, and
:func:`load_command` is the one place that loads a command's module, once the
command is known. That is the start-up cost: Locust patches the standard library for
gevent (before anything imports psycopg) and takes about a second; the report brings
pandas, pyarrow and matplotlib. ``loadgen --help`` loads none of them, ``loadgen
report``, ``db`` and ``predict`` never load Locust, and a run's fixed cost (issue 15,
BENCHMARKS.md) carries no module it does not use.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from loadgen.cli import db, dsql
from loadgen.cli.exits import EXIT_INTERRUPTED, EXIT_USAGE
from loadgen.cli.parser import build_parser
from loadgen.errors import LoadgenError

__all__ = ["main", "prepare", "load_command"]

#: A command: the parsed command line in, the exit code out.
Command = Callable[[argparse.Namespace], int]


def load_command(args: argparse.Namespace) -> Command:
    """The command ``args`` asks for, its modules loaded now: the command line's one place of lazy imports."""
    if args.command == "run" and args.worker:
        from loadgen.cli import worker  # lazy: Locust and the engine's worker side, for a worker only

        return worker.cmd_worker
    if args.command == "run":
        from loadgen.cli import run  # lazy: Locust, the engine, pandas and pyarrow, for a run only

        return run.cmd_run
    if args.command == "report":
        from loadgen.cli import report  # lazy: pandas, pyarrow and matplotlib, for the report only

        return report.cmd_report
    if args.command == "predict":
        from loadgen.cli import predict  # lazy: the report's modules and the simulator, for a prediction only

        return predict.cmd_predict
    if args.command == "ui":
        from loadgen.cli import ui  # lazy: Locust and its web UI, for the web UI only

        return ui.cmd_ui
    if args.command == "dsql":
        return dsql.cmd_dsql  # cheap: boto3 loads when a cluster is made or deleted
    if args.command == "db":
        return db.cmd_db  # cheap: the embedded server's own module
    raise AssertionError(f"no module for command {args.command!r}")


def prepare(argv: list[str] | None = None) -> Callable[[], int]:
    """The command line parsed and its command loaded: what is left is to run it.

    Apart from :func:`main` so that :func:`loadgen.cli.command.entry` can load the
    command's modules with the garbage collector paused, and freeze them.
    """
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
    args.argv = argv  # recorded in run.json, connection strings redacted (loadgen.cli.arguments.safe_argv)
    if args.command is None:
        parser.print_help()
        return lambda: EXIT_USAGE
    try:
        command = load_command(args)
    except KeyboardInterrupt:
        return _interrupted
    return lambda: _run(command, args)


def _interrupted() -> int:
    print("loadgen: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def _run(command: Command, args: argparse.Namespace) -> int:
    try:
        return command(args)
    except LoadgenError as e:
        print(f"loadgen: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return _interrupted()


def main(argv: list[str] | None = None) -> int:
    """``loadgen ARGS...`` in this process; the exit code."""
    return prepare(argv)()


if __name__ == "__main__":  # pragma: no cover  - the command is loadgen.cli.command.entry
    sys.exit(main())
