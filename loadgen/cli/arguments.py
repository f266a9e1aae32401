"""What the parsed command line means: the scenario file it asks for, its target as data, the line as recorded.

Shared by the commands that run load (``run``, ``run --resume``, ``ui``); cheap to import.
"""

from __future__ import annotations

import argparse
from typing import Any

from loadgen.model import knobs, scenariofile
from loadgen.model.scenariofile import Cell, ScenarioFile
from loadgen.targets.base import redact_conninfo
from loadgen.targets.spec import KINDS, TargetSpec

__all__ = ["scenario_file_from_args", "target_spec", "options_dialect", "safe_argv"]


def scenario_file_from_args(args: argparse.Namespace) -> ScenarioFile:
    """The scenario file (or an ad-hoc single run) this command line asks for, validated."""
    overrides = knobs.overrides_from_args(args)
    if args.scenario is None and overrides:
        # No file, some options: one run from the built-in defaults, as before scenario files.
        return ScenarioFile("ad-hoc", "", "command line", (Cell(0, {}, knobs.build_scenario(overrides)),))
    return scenariofile.load(args.scenario or "quickstart", overrides)


def target_spec(args: argparse.Namespace, sf: Any = None) -> TargetSpec:
    """The run's target as data: the command line's options over the scenario file's ``[target]``
    (``--target``'s default, embedded, gives way to a file that names its target)."""
    given = {
        "kind": args.target,
        "dsn": args.dsn,
        "schema": getattr(args, "schema", None),
        "endpoint": args.endpoint,
        "region": args.region,
        "db_user": args.db_user,
        "profile": args.profile,
        "token_expiry_s": args.token_expiry,
        "sslmode": args.sslmode,
        "sslrootcert": args.sslrootcert,
        "connect_rate": args.connect_rate,
        "max_connections": args.dsql_max_connections,
        "dialect": args.dialect,
    }
    from_file = dict(sf.target) if sf is not None else {}
    if args.target == "embedded" and not args.dsn and "kind" in from_file:
        del given["kind"]
    return TargetSpec.from_options({**from_file, **{k: v for k, v in given.items() if v is not None}})


def options_dialect(args: argparse.Namespace) -> str:
    """The dialect the command line's own ``--target``/``--dialect`` speak (a scenario file may change the target later)."""
    kind = KINDS.get(args.target)
    return args.dialect or (kind.dialect if kind is not None else None) or "postgresql"


def safe_argv(argv: list[str]) -> list[str]:
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
