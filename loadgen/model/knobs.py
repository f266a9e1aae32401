"""The knob table: every setting of a run, declared once.

A row says how a setting is written in a scenario file (``key``), which ``Scenario``
field it sets (``field``; ``retry.<name>`` for the retry policy), its ``loadgen run``
option (``flag``), its option in the web UI's start form (``form``), its kind, check,
help text and which targets (by dialect: ``postgresql``, ``dsql``) accept it. The
default is never written here: it is the ``Scenario`` (or ``RetryPolicy``)
dataclass's own, read through ``Knob.default``.

Everything else is derived from ``KNOBS``:

- the scenario-file loader (loadgen.model.scenariofile: keys, tables, checks, sweeps);
- ``loadgen run``'s and ``loadgen ui``'s options (``add_flags``, ``overrides_from_args``);
- the web UI's Locust options, form types and scenario (loadgen.ui.form);
- the worker transport (``scenario_to_dict``/``scenario_from_dict``);
- the check that a target accepts the scenario (``target_problem``, used by
  loadgen.targets.base.check_cells for every cell before any work).

Adding a knob (issue 13's ``cc``, ``rtt_ms``, ...): give ``Scenario`` (or
``RetryPolicy``) the field with its default and its range check in ``__post_init__``;
add one ``Knob(...)`` row below; show the key at its default in the example of
``scenarios/README.md``. ``tests/model/test_knobs.py`` then proves that the row reaches the
file loader, the CLI and the UI form with the same default, that every ``Scenario``
field has exactly one row, and that the README shows it. A new TOML table (say
``[network]``) needs nothing more (``_GROUPS`` may title its ``--help`` group). Set
``flag``/``form`` to None to keep a knob to scenario files; set ``dialects`` and
``refusal`` when only some targets can honour it.

Values travel in *file units* (what a user writes in TOML: seconds for durations,
0 for "no lock timeout") until ``Knob.to_field`` turns them into the field's units.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from loadgen.errors import ConfigError
from loadgen.model.retry import BACKOFFS, RetryPolicy
from loadgen.model.scenario import CC_MODES, DISTRIBUTIONS, ISOLATION_LEVELS, LOAD_MODELS, READ_KINDS, SHAPES, Scenario, parse_duration

__all__ = [
    "Knob",
    "KNOBS",
    "BY_KEY",
    "KINDS",
    "POSTGRESQL_ONLY",
    "LOCUST",
    "build_scenario",
    "target_problem",
    "options_problem",
    "add_flags",
    "overrides_from_args",
    "scenario_to_dict",
    "scenario_from_dict",
    "type_name",
    "field_default",
    "field_value",
]

#: What a check returns: what is wrong with a value, or None.
Check = Callable[[Any], str | None]

#: int, number (float), duration (seconds, > 0), duration0 (seconds, >= 0), choice, text.
KINDS = ("int", "number", "duration", "duration0", "choice", "text")
#: Targets of the PostgreSQL dialect: embedded and postgres (not DSQL, nor ``--dialect dsql``).
POSTGRESQL_ONLY: tuple[str, ...] = ("postgresql",)
#: ``form`` value of a knob that is one of Locust's own start-form fields (users, spawn rate).
LOCUST = "locust"


def _at_least(lo: float) -> Check:
    return lambda v: None if v >= lo else f"must be at least {lo:g}, got {v:g}"


def _positive(v: float) -> str | None:
    return None if v > 0 else f"must be positive, got {v:g}"


def _share(v: float) -> str | None:
    return None if 0 <= v <= 1 else f"must be a share from 0 to 1, got {v:g}"


def _open_share(v: float) -> str | None:
    return None if 0 < v <= 1 else f"must be a share above 0 and at most 1, got {v:g}"


@dataclass(frozen=True)
class Knob:
    """One setting of a run, as every front end sees it."""

    key: str  # dotted TOML key, as the user writes it: "retry.max_attempts"
    kind: str  # one of KINDS
    help: str  # one line, lower case, no default (added where shown)
    field: str | None = None  # Scenario field ("retry.<f>": RetryPolicy's); None: not part of the Scenario
    flag: str | None = None  # `loadgen run` option; None: scenario files only
    form: str | None = None  # web UI start-form option; LOCUST: Locust's own field; None: not in the form
    check: Check | None = None  # the value's own range (cross-knob rules live in Scenario.__post_init__)
    choices: tuple[str, ...] = ()
    sweep: bool = True  # may be a list in a scenario file
    dialects: tuple[str, ...] | None = None  # target dialects that accept a non-default value; None: all
    refusal: str = ""  # what the others say, ``{value}`` filled in
    scale: float = 1.0  # field value = file value x scale (think time: seconds in files, ms in Scenario)
    zero_is_none: bool = False  # 0 in a file means the field's None ("wait on row locks")
    label: str | None = None  # short name in sweep labels and messages (default: the key's last part)
    default_text: str | None = None  # the default as help shows it, where the field's value would mislead

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"knob {self.key}: kind {self.kind!r} is not one of {KINDS}")
        if (self.kind == "choice") != bool(self.choices):
            raise ValueError(f"knob {self.key}: a choice knob, and only one, lists its choices")

    @property
    def name(self) -> str:
        """Short name: ``backoff`` for ``retry.backoff``, ``keys`` for ``keys.distribution``."""
        return self.label or self.key.rsplit(".", 1)[-1]

    @property
    def dest(self) -> str | None:
        """The attribute ``loadgen run``'s parser stores the flag's value in."""
        return self.flag[2:].replace("-", "_") if self.flag else None

    @property
    def form_dest(self) -> str | None:
        """The start form's field name (a Locust option's dest); None when the knob is not in the form or is Locust's."""
        return self.form[2:].replace("-", "_") if self.form and self.form != LOCUST else None

    @property
    def optional(self) -> bool:
        """The field may be None (no value: seed, lock timeout, amount max)."""
        return self.field is not None and field_default(self.field) is None

    @property
    def default(self) -> Any:
        """The default in file units, read from the dataclasses (None: unset, or no Scenario field)."""
        if self.field is None:
            return None
        return self.from_field(field_default(self.field))

    def default_shown(self) -> str:
        """The default as help texts show it."""
        if self.default_text is not None:
            return self.default_text
        value = self.default
        if value is None:
            return "none"
        if self.kind in ("duration", "duration0"):
            return f"{value:g}s"
        return f"{value:g}" if isinstance(value, float) else str(value)

    # -- values ---------------------------------------------------------

    def problem(self, value: Any) -> tuple[Any, str | None]:
        """The value in file units and what is wrong with it (None when it is good)."""
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                return value, f"must be a whole number, got {type_name(value)} {value!r}"
        elif self.kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return value, f"must be a number, got {type_name(value)} {value!r}"
            value = float(value)
        elif self.kind in ("duration", "duration0"):
            if not isinstance(value, (int, float, str)) or isinstance(value, bool):
                return value, f'must be seconds or text like "30s", "2m", "50ms", got {type_name(value)}'
            try:
                value = parse_duration(value, allow_zero=self.kind == "duration0")
            except ConfigError as e:
                return value, str(e)
        elif self.kind == "choice":
            if not isinstance(value, str):
                return value, f"must be one of {', '.join(self.choices)}, got {type_name(value)} {value!r}"
            if value not in self.choices:
                return value, f"must be one of {', '.join(self.choices)}, got {value!r}"
        elif self.kind == "text":
            if not isinstance(value, str):
                return value, f"must be text, got {type_name(value)}"
        if self.check is not None:
            return value, self.check(value)
        return value, None

    def parse(self, value: Any, where: str) -> Any:
        """A checked value in file units; a bad one raises ``ConfigError("where: key: what")``."""
        value, problem = self.problem(value)
        if problem:
            raise ConfigError(f"{where}: {self.key}: {problem}")
        return value

    def from_text(self, text: str) -> Any:
        """A command-line (or form) string as a checked value in file units; argparse's ``type``."""
        value: Any = text
        if self.kind == "int":
            try:
                value = int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        elif self.kind == "number":
            try:
                value = float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        value, problem = self.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(self._said(problem))
        return value

    def _said(self, problem: str) -> str:
        """A problem as one line naming the knob: ``accounts must be at least 2, got 1``."""
        label = self.name.replace("_", " ")
        return problem if problem.startswith(f"{label} ") else f"{label} {problem}"

    def to_field(self, value: Any) -> Any:
        """A file-units value as the Scenario field holds it."""
        if self.zero_is_none and value == 0:
            return None
        if self.scale != 1.0 and value is not None:
            return value * self.scale
        return value

    def from_field(self, value: Any) -> Any:
        """The inverse of ``to_field`` (None stays None)."""
        if value is None:
            return None
        return value / self.scale if self.scale != 1.0 else value

    # -- the web UI's start form ---------------------------------------

    @property
    def form_type(self) -> type:
        """How the start form's text is read back (Locust converts by the default's type)."""
        return {"int": int, "number": float, "duration": float, "duration0": float}.get(self.kind, str)

    def form_value(self, field_value: Any) -> Any:
        """A field's value as the form holds it: file units, and 0 for an unset optional field."""
        value = self.from_field(field_value)
        return self.form_type(0) if value is None else self.form_type(value)

    def from_form(self, value: Any) -> Any:
        """The form's value (already of ``form_type``) as the Scenario field holds it; 0 in an optional field: unset."""
        if self.optional and not value:
            return None
        checked, problem = self.problem(value)
        if problem:
            raise ConfigError(self._said(problem))
        return self.to_field(checked)


def type_name(value: Any) -> str:
    """What a value is, as an error message says it."""
    return {bool: "a boolean", int: "a whole number", float: "a number", str: "text", list: "a list", dict: "a table"}.get(
        type(value), type(value).__name__
    )


def field_default(field: str) -> Any:
    if field.startswith("retry."):
        return getattr(RetryPolicy(), field[6:])
    return getattr(Scenario(), field)


# fmt: off
KNOBS: tuple[Knob, ...] = (
    Knob("name", "text", "the scenario's name (default: the file's name)", field="name", sweep=False),
    Knob("description", "text", "what the scenario shows", sweep=False),
    Knob("accounts", "int", "accounts in the bank (re-seeded at every start)", field="accounts",
         flag="--accounts", form="--accounts", check=_at_least(2)),
    Knob("users", "int", "concurrent users, one transaction in flight each", field="users",
         flag="--users", form=LOCUST, check=_at_least(1)),
    Knob("spawn_rate", "number", "users started per second", field="spawn_rate",
         flag="--spawn-rate", form=LOCUST, check=_positive, default_text="all at once"),
    Knob("duration", "duration", "how long to run: seconds, or like 30s, 2m", field="duration_s", flag="--duration"),
    Knob("initial_balance", "int", "each account's balance after seeding", field="initial_balance",
         flag="--initial-balance", form="--initial-balance", check=_at_least(0)),
    Knob("amount", "int", "amount of each transfer", field="amount", flag="--amount", form="--amount", check=_at_least(1)),
    Knob("amount_max", "int", "draw each amount uniformly from amount to this", field="amount_max",
         flag="--amount-max", check=_at_least(1)),
    Knob("seed", "int", "random seed for reproducible key choices (in the web form, 0: random)", field="seed",
         flag="--seed", form="--seed", check=_at_least(0), default_text="random"),
    Knob("keys.distribution", "choice", "how payer and payee are chosen", field="distribution",
         flag="--keys", form="--distribution", choices=DISTRIBUTIONS, label="keys"),
    Knob("keys.zipf_s", "number", "zipf keys: the exponent s", field="zipf_s", flag="--zipf-s", form="--zipf-s", check=_positive),
    Knob("keys.hot_ops", "number", "hotspot keys: share of operations that go to the hot accounts", field="hot_ops",
         flag="--hot-ops", form="--hot-ops", check=_open_share),
    Knob("keys.hot_keys", "number", "hotspot keys: share of the accounts that are hot", field="hot_keys",
         flag="--hot-keys", form="--hot-keys", check=_open_share),
    Knob("keys.hotset_p", "number", "hotset keys: probability of choosing among the first hotset-k accounts", field="hotset_p",
         flag="--hotset-p", form="--hotset-p", check=_share),
    Knob("keys.hotset_k", "int", "hotset keys: how many accounts are hot", field="hotset_k",
         flag="--hotset-k", form="--hotset-k", check=_at_least(2)),
    Knob("transaction.shape", "choice", "transaction shape", field="transaction", flag="--shape", choices=SHAPES, label="shape"),
    Knob("transaction.legs", "int", "multi-leg shape: payees per transaction", field="legs", flag="--legs", check=_at_least(1)),
    Knob("transaction.read_mix", "number", "share of read-only transactions (0 to 1)", field="read_mix",
         flag="--read-mix", check=_share),
    Knob("transaction.read_kind", "choice", "what a read-only transaction reads", field="read_kind",
         flag="--read-kind", choices=READ_KINDS),
    Knob("retry.max_attempts", "int", "retry policy: tries per transaction", field="retry.max_attempts",
         flag="--max-attempts", form="--max-attempts", check=_at_least(1)),
    Knob("retry.deadline", "duration", "retry policy: give up on a transaction after this many seconds", field="retry.deadline_s",
         flag="--deadline", form="--retry-deadline"),
    Knob("retry.backoff", "choice", "retry policy: pause between tries (none is the talk's immediate retry)",
         field="retry.backoff", flag="--backoff", form="--backoff", choices=BACKOFFS),
    Knob("retry.base_ms", "number", "retry policy: first backoff pause (ms)", field="retry.base_ms",
         flag="--backoff-base-ms", form="--backoff-base-ms", check=_at_least(0)),
    Knob("retry.cap_ms", "number", "retry policy: longest backoff pause (ms)", field="retry.cap_ms",
         flag="--backoff-cap-ms", form="--backoff-cap-ms", check=_at_least(0)),
    Knob("load.model", "choice", "load model: closed loop, batches or open loop", field="load", flag="--load",
         choices=LOAD_MODELS, label="load"),
    Knob("load.think_time", "duration0", "closed loop: pause between one user's transactions", field="think_ms",
         flag="--think-time", scale=1000.0),
    Knob("load.batches", "int", "batches load model: how many batches of users transfers", field="batches",
         flag="--batches", check=_at_least(1)),
    Knob("load.arrival_rate", "number", "open load model: transactions started per second", field="arrival_rate",
         flag="--arrival-rate", check=_positive),
    Knob("rtt_ms", "number", "emulated latency: ms added to every round trip (each statement, BEGIN, COMMIT), client-side",
         field="rtt_ms", flag="--rtt-ms", form="--rtt-ms", check=_at_least(0)),
    Knob("rtt_jitter_ms", "number", "emulated latency: plus a random extra per round trip, exponential with this mean (ms)",
         field="rtt_jitter_ms", flag="--rtt-jitter-ms", form="--rtt-jitter-ms", check=_at_least(0)),
    Knob("commit_ms", "number", "emulated latency: ms more on COMMIT (DSQL's commit checks conflicts and replicates)",
         field="commit_ms", flag="--commit-ms", form="--commit-ms", check=_at_least(0)),
    Knob("postgres.lock_timeout_ms", "number",
         "cc locking only: give up a row-lock wait after this many ms; 0: wait (cc nowait gives up after 1 ms; "
         "cc occ's COMMIT after 50 ms)",
         field="lock_timeout_ms", flag="--lock-timeout-ms", form="--lock-timeout-ms", check=_at_least(0),
         zero_is_none=True, default_text="0 (cc locking waits; cc nowait gives up after 1 ms)", dialects=POSTGRESQL_ONLY,
         refusal="lock_timeout_ms is a PostgreSQL setting: DSQL takes no row locks and refuses SET lock_timeout"),
    Knob("postgres.isolation", "choice", "PostgreSQL: the transactions' isolation level (DSQL has snapshot isolation only)",
         field="isolation", flag="--isolation", form="--isolation", choices=ISOLATION_LEVELS, dialects=POSTGRESQL_ONLY,
         refusal="isolation {value}: DSQL has one isolation level (snapshot, as repeatable-read); run this cell on a PostgreSQL target"),
    # After isolation: a cell DSQL cannot run for its isolation level is refused for that, its root cause.
    Knob("cc", "choice",
         "concurrency control: occ (first committer wins, as on DSQL: snapshot reads, writes applied with COMMIT, "
         "the later committer fails at COMMIT), nowait (the later writer fails at its statement at once, 55P03) "
         "or locking (PostgreSQL's own row-lock waits and deadlocks); DSQL is always occ",
         field="cc", flag="--cc", form="--cc", choices=CC_MODES, dialects=POSTGRESQL_ONLY,
         refusal="cc {value} is PostgreSQL's row locking: DSQL takes no row locks, it is always cc occ"),
    Knob("gates.max_conflict_rate", "number", "gate for CI: exit 3 when the conflict rate is above this share (0.05: 5 percent)",
         field="max_conflict_rate", flag="--max-conflict-rate", form="--max-conflict-rate", check=_share, zero_is_none=True,
         sweep=False, default_text="no gate"),
    Knob("gates.max_retries_per_commit", "number", "gate for CI: exit 3 when retries per commit are above this",
         field="max_retries_per_commit", flag="--max-retries-per-commit", form="--max-retries-per-commit", check=_at_least(0),
         zero_is_none=True, sweep=False, default_text="no gate"),
    Knob("gates.max_txn_p99_ms", "number", "gate for CI: exit 3 when the transaction latency p99 is above this many ms",
         field="max_txn_p99_ms", flag="--max-txn-p99-ms", form="--max-txn-p99-ms", check=_at_least(0),
         zero_is_none=True, sweep=False, default_text="no gate"),
    Knob("target.kind", "text", "where to run: embedded, postgres or dsql", sweep=False),
    Knob("target.dsn", "text", "connection string for target postgres", sweep=False),
    Knob("target.schema", "text", "target postgres: the schema holding the tables (default loadgen; --schema)", sweep=False),
    Knob("target.endpoint", "text", "DSQL: the cluster's endpoint", sweep=False),
    Knob("target.region", "text", "DSQL: the cluster's AWS Region", sweep=False),
    Knob("target.db_user", "text", "DSQL: the database role", sweep=False),
    Knob("target.profile", "text", "DSQL: the AWS profile", sweep=False),
)
# fmt: on

BY_KEY: dict[str, Knob] = {k.key: k for k in KNOBS}
_BY_FIELD: dict[str, Knob] = {k.field: k for k in KNOBS if k.field is not None}


def build_scenario(values: Mapping[str, Any], base: Scenario | None = None) -> Scenario:
    """A Scenario from checked file-unit values by key; cross-knob rules raise ConfigError.

    A spawn rate not given is the user count: everyone starts at once.
    """
    base = base or Scenario()
    changes: dict[str, Any] = {}
    retry: dict[str, Any] = {}
    for key, value in values.items():
        knob = BY_KEY[key]
        if knob.field is None:
            continue
        if knob.field.startswith("retry."):
            retry[knob.field[6:]] = knob.to_field(value)
        else:
            changes[knob.field] = knob.to_field(value)
    if "spawn_rate" not in changes:
        changes["spawn_rate"] = float(changes.get("users", base.users))
    if retry:
        changes["retry"] = replace(base.retry, **retry)
    return replace(base, **changes)


def target_problem(dialect: str, scenario: Scenario) -> str | None:
    """What in ``scenario`` a target of ``dialect`` (``postgresql``, ``dsql``) cannot honour, or None."""
    for knob in KNOBS:
        if knob.dialects is None or knob.field is None or dialect in knob.dialects:
            continue
        value = field_value(scenario, knob.field)
        if value != field_default(knob.field):
            return knob.refusal.format(value=value) or f"{knob.key} is for {' and '.join(knob.dialects)} targets only"
    return None


def options_problem(dialect: str, values: Mapping[str, Any]) -> str | None:
    """:func:`target_problem` for knobs given as options (file units, by key), before they make a
    scenario: a setting the target refuses is named for the target, not for another rule it breaks."""
    for key, value in values.items():
        knob = BY_KEY.get(key)
        if knob is None or knob.dialects is None or knob.field is None or dialect in knob.dialects:
            continue
        if knob.to_field(value) != field_default(knob.field):
            return knob.refusal.format(value=value) or f"{knob.key} is for {' and '.join(knob.dialects)} targets only"
    return None


def field_value(scenario: Scenario, field: str) -> Any:
    if field.startswith("retry."):
        return getattr(scenario.retry, field[6:])
    return getattr(scenario, field)


# -- loadgen run's options ---------------------------------------------------

#: Where each TOML table's flags appear in ``loadgen run --help``.
_GROUPS = {
    "": None,
    "keys": "workload",
    "transaction": "workload",
    "load": "workload",
    "retry": "retry policy",
    "postgres": "PostgreSQL",
    "gates": "gates (CI: exit code 3 when one is breached; 0: no gate)",
}


def add_flags(parser: argparse.ArgumentParser, include: Callable[[Knob], bool] | None = None, prefix: str = "") -> None:
    """Every knob with a flag (and ``include``d) as an option of ``parser``; default None: the file or the Scenario decides."""
    groups: dict[str, Any] = {}
    for knob in KNOBS:
        if knob.flag is None or (include is not None and not include(knob)):
            continue
        table = knob.key.split(".")[0] if "." in knob.key else ""
        title = _GROUPS.get(table, table)
        if title is None:
            where: Any = parser
        else:
            where = groups.get(title) or groups.setdefault(title, parser.add_argument_group(title))
        choices = "|".join(knob.choices)
        long_list = len(choices) > 40  # too long for the usage line: listed in the help instead
        where.add_argument(
            knob.flag,
            dest=knob.dest,
            type=knob.from_text,
            default=None,
            metavar=(knob.name.upper() if long_list else choices) if choices else None,
            help=f"{prefix}{knob.help}{': ' + ', '.join(knob.choices) if long_list else ''} (default {knob.default_shown()})",
        )


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The knobs the command line set, by TOML key, in file units."""
    return {k.key: getattr(args, k.dest) for k in KNOBS if k.dest and getattr(args, k.dest, None) is not None}


# -- the worker transport ----------------------------------------------------


def scenario_to_dict(scenario: Scenario) -> dict[str, Any]:
    """A scenario as plain data (JSON, msgpack): its fields by name, the retry policy nested."""
    return scenario.to_dict()


def scenario_from_dict(data: Mapping[str, Any]) -> Scenario:
    """The inverse of ``scenario_to_dict``, field by knob; every value is checked again by the dataclasses."""
    retry = dict(data.get("retry") or {})
    known = {f for f in _BY_FIELD if not f.startswith("retry.")} | {"retry"}
    unknown = sorted(set(data) - known) + sorted(f"retry.{f}" for f in retry if f"retry.{f}" not in _BY_FIELD)
    if unknown:
        raise ConfigError(f"scenario: unknown fields {', '.join(unknown)}")
    changes = {f: data[f] for f in _BY_FIELD if not f.startswith("retry.") and f in data}
    return replace(Scenario(), **changes, retry=replace(RetryPolicy(), **retry))
