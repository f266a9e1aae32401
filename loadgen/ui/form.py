"""The web UI's start form: loadgen's settings as Locust options, and the scenario they describe.

The fields are the knobs whose ``form`` column is FORM (loadgen.model.knobs), each named
as its ``loadgen run`` flag (``--keys``: field ``keys``); users and spawn rate are Locust's
own fields, the run time is Locust's ``--run-time``. Where to run (target, DSN) and where
results go are the UI's own options, here; the targets offered are the kinds of target
(loadgen.targets.spec.KINDS) whose required options the form asks for.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from loadgen.model.knobs import FORM, KNOBS, Knob, field_default
from loadgen.model.scenario import Scenario
from loadgen.targets.spec import KINDS

__all__ = ["FORM_TYPES", "FORM_KNOBS", "UI_TARGETS", "STOP_TIMEOUT_S", "DEFAULT_WEB_HOST", "add_arguments", "scenario_from_options"]

#: Locust listens on every interface unless told otherwise; loadgen only on loopback.
DEFAULT_WEB_HOST = "127.0.0.1"
#: Seconds users get to finish their transaction when a test stops.
STOP_TIMEOUT_S = 3
#: The target options the form asks for, beside the kind (a secret field, or LOADGEN_DSN).
FORM_TARGET_OPTIONS: tuple[str, ...] = ("dsn",)
#: Targets the form can start: those it can ask everything they require for (DSQL needs the
#: command line's endpoint, region and IAM settings).
UI_TARGETS: tuple[str, ...] = tuple(k.name for k in KINDS.values() if set(k.required) <= set(FORM_TARGET_OPTIONS))
#: The knobs the start form shows, in the table's order.
FORM_KNOBS: tuple[Knob, ...] = tuple(k for k in KNOBS if k.form == FORM)
#: Option spellings of the form's fields before they were named as the flags, still taken from
#: Locust's command line (``locust -f loadgen/ui/locustfile.py --distribution zipf`` in scripts).
OLD_SPELLINGS: dict[str, tuple[str, ...]] = {"keys.distribution": ("--distribution",), "retry.deadline": ("--retry-deadline",)}
#: Options the start form sends that are loadgen's, with how to read them back.
FORM_TYPES: dict[str, type] = {**{k.form_dest: k.form_type for k in FORM_KNOBS if k.form_dest}, "target": str}


def add_arguments(parser: Any) -> None:
    """loadgen's settings as Locust options; all but ``--out`` appear in the start form."""
    g = parser  # argument groups do not take include_in_web_ui / is_secret
    # Where the test runs first, then the workload (the knob table's order): the form lists them so.
    kinds = " or ".join(KINDS[name].summary for name in UI_TARGETS)
    g.add_argument("--target", default="embedded", choices=list(UI_TARGETS), help=f"Database: {kinds}")
    g.add_argument(
        "--dsn",
        default="",
        is_secret=True,
        help="Connection string for target postgres (kept out of pages and files; or set LOADGEN_DSN)",
    )
    for knob in FORM_KNOBS:
        assert knob.flag is not None and knob.field is not None
        g.add_argument(
            knob.flag,
            *OLD_SPELLINGS.get(knob.key, ()),
            dest=knob.form_dest,
            type=knob.form_type,
            default=knob.form_value(field_default(knob.field)),
            choices=list(knob.choices) if knob.choices else None,
            help=_sentence(knob),
        )
    g.add_argument("--out", default="reports", include_in_web_ui=False, help="Each test's results go in a new directory under this one")
    # Safe by default: Locust's own default is every interface. And on Stop, give users
    # a moment to finish the transaction in hand rather than kill them mid-statement
    # (which leaves attempts "interrupted" and connections dirty). Kept short: in
    # distributed mode a worker rejoins the master only this long after a stop.
    parser.set_defaults(web_host=DEFAULT_WEB_HOST, stop_timeout=str(STOP_TIMEOUT_S))


def _sentence(knob: Knob) -> str:
    text = knob.help[0].upper() + knob.help[1:]
    return f"{text} (0: none)" if knob.optional and "0:" not in knob.help else text


def scenario_from_options(opts: Any, users: int) -> Scenario:
    """The scenario the start form describes (raises ConfigError on nonsense)."""
    retry: dict[str, Any] = {}
    changes: dict[str, Any] = {}
    for knob in FORM_KNOBS:
        assert knob.field is not None and knob.form_dest is not None
        value = knob.from_form(getattr(opts, knob.form_dest))
        if knob.field.startswith("retry."):
            retry[knob.field[6:]] = value
        else:
            changes[knob.field] = value
    run_time = getattr(opts, "run_time", None)
    spawn_rate = getattr(opts, "spawn_rate", None) or float(max(users, 1))
    base = Scenario()
    return replace(
        base,
        **changes,
        name="web-ui",
        users=max(int(users), 1),
        spawn_rate=float(spawn_rate),
        duration_s=float(run_time) if run_time else 3600.0,  # replaced by the real length at stop
        retry=replace(base.retry, **retry),
    )
