"""``loadgen ui [SCENARIO]``: the target started, then Locust's web UI with loadgen's start form and Contention tab.

Loaded only for this command (loadgen.cli.main): Locust first (gevent's patching before psycopg).
"""

from __future__ import annotations

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

# isort: split

import argparse
import os
import socket
import sys

from locust.main import main as locust_main

from loadgen.cli.arguments import scenario_file_from_args
from loadgen.cli.exits import EXIT_OK
from loadgen.errors import ConfigError
from loadgen.model import knobs
from loadgen.model.scenariofile import ScenarioFile
from loadgen.targets.spec import TargetSpec, make_target
from loadgen.ui import LOCUSTFILE

__all__ = ["cmd_ui", "ui_form_defaults"]


def ui_form_defaults(loaded: ScenarioFile) -> dict[str, str]:
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
    # Neither a scenario nor a knob option: the form keeps its own defaults (the Scenario's).
    asked = args.scenario is not None or knobs.overrides_from_args(args)
    form = ui_form_defaults(scenario_file_from_args(args)) if asked else {}
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
    sys.argv = locust_argv + extra
    locust_main()
    return EXIT_OK
