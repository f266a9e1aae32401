"""Scenario files: TOML in, a validated list of cells out, before any database work.

A file sets any knob of a run. A numeric or choice knob given as a list makes the
scenario a sweep over the cartesian product of the lists, one *cell* per
combination, in the order the keys appear in the file. Every value is checked
here, eagerly, and a mistake reads ``file: key: what is wrong``.

Layout (every key optional; the tables group knobs, see ``KNOBS``)::

    name = "hotspot-sweep"
    description = "..."
    accounts = [10, 100, 1000]      # a list: swept
    users = 50
    duration = "20s"
    [keys]        distribution, zipf_s, hot_ops, hot_keys, hotset_p, hotset_k
    [transaction] shape, legs, read_mix, read_kind
    [retry]       max_attempts, deadline, backoff, base_ms, cap_ms
    [load]        model, think_time, batches, arrival_rate
    [postgres]    lock_timeout_ms  (0: wait on row locks, PostgreSQL's own default), isolation
    [target]      kind, dsn; for DSQL: endpoint, region, db_user, profile

Built-in scenarios ship inside the package (``loadgen/scenarios/*.toml``), so a
bare name such as ``quickstart`` works from an installed wheel too.
"""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from loadgen.errors import ConfigError
from loadgen.model.retry import BACKOFFS, RetryPolicy
from loadgen.model.scenario import DISTRIBUTIONS, ISOLATION_LEVELS, LOAD_MODELS, READ_KINDS, SHAPES, Scenario, parse_duration

__all__ = ["Knob", "KNOBS", "Cell", "ScenarioFile", "load", "load_text", "builtin_names", "builtin_path"]

Check = Callable[[Any], str | None]

#: A sweep larger than this is a typo, not a plan (each cell is a whole run).
MAX_CELLS = 10_000


@dataclass(frozen=True)
class Knob:
    """One settable key of a scenario file."""

    path: str  # dotted TOML key, as the user writes it
    kind: str  # int, number, duration, choice, text
    check: Check | None = None  # returns what is wrong, or None
    choices: tuple[str, ...] = ()
    sweep: bool = True  # may be a list


def _at_least(lo: float) -> Check:
    return lambda v: None if v >= lo else f"must be at least {lo:g}, got {v:g}"


def _positive(v: float) -> str | None:
    return None if v > 0 else f"must be positive, got {v:g}"


def _share(v: float) -> str | None:
    return None if 0 <= v <= 1 else f"must be a share from 0 to 1, got {v:g}"


def _open_share(v: float) -> str | None:
    return None if 0 < v <= 1 else f"must be a share above 0 and at most 1, got {v:g}"


KNOBS: tuple[Knob, ...] = (
    Knob("name", "text", sweep=False),
    Knob("description", "text", sweep=False),
    Knob("accounts", "int", _at_least(2)),
    Knob("users", "int", _at_least(1)),
    Knob("spawn_rate", "number", _positive),
    Knob("duration", "duration"),
    Knob("initial_balance", "int", _at_least(0)),
    Knob("amount", "int", _at_least(1)),
    Knob("amount_max", "int", _at_least(1)),
    Knob("seed", "int", _at_least(0)),
    Knob("keys.distribution", "choice", choices=DISTRIBUTIONS),
    Knob("keys.zipf_s", "number", _positive),
    Knob("keys.hot_ops", "number", _open_share),
    Knob("keys.hot_keys", "number", _open_share),
    Knob("keys.hotset_p", "number", _share),
    Knob("keys.hotset_k", "int", _at_least(2)),
    Knob("transaction.shape", "choice", choices=SHAPES),
    Knob("transaction.legs", "int", _at_least(1)),
    Knob("transaction.read_mix", "number", _share),
    Knob("transaction.read_kind", "choice", choices=READ_KINDS),
    Knob("retry.max_attempts", "int", _at_least(1)),
    Knob("retry.deadline", "duration"),
    Knob("retry.backoff", "choice", choices=BACKOFFS),
    Knob("retry.base_ms", "number", _at_least(0)),
    Knob("retry.cap_ms", "number", _at_least(0)),
    Knob("load.model", "choice", choices=LOAD_MODELS),
    Knob("load.think_time", "duration0"),
    Knob("load.batches", "int", _at_least(1)),
    Knob("load.arrival_rate", "number", _positive),
    Knob("postgres.lock_timeout_ms", "number", _at_least(0)),
    Knob("postgres.isolation", "choice", choices=ISOLATION_LEVELS),
    Knob("target.kind", "text", sweep=False),
    Knob("target.dsn", "text", sweep=False),
    Knob("target.endpoint", "text", sweep=False),
    Knob("target.region", "text", sweep=False),
    Knob("target.db_user", "text", sweep=False),
    Knob("target.profile", "text", sweep=False),
)
_BY_PATH = {k.path: k for k in KNOBS}
_TABLES = sorted({k.path.split(".")[0] for k in KNOBS if "." in k.path})

#: Scenario field (or ``retry.<field>``) each knob sets; knobs absent here are handled apart.
_FIELD = {
    "accounts": "accounts",
    "users": "users",
    "spawn_rate": "spawn_rate",
    "duration": "duration_s",
    "initial_balance": "initial_balance",
    "amount": "amount",
    "amount_max": "amount_max",
    "seed": "seed",
    "keys.distribution": "distribution",
    "keys.zipf_s": "zipf_s",
    "keys.hot_ops": "hot_ops",
    "keys.hot_keys": "hot_keys",
    "keys.hotset_p": "hotset_p",
    "keys.hotset_k": "hotset_k",
    "transaction.shape": "transaction",
    "transaction.legs": "legs",
    "transaction.read_mix": "read_mix",
    "transaction.read_kind": "read_kind",
    "load.model": "load",
    "load.think_time": "think_ms",
    "load.batches": "batches",
    "load.arrival_rate": "arrival_rate",
    "postgres.lock_timeout_ms": "lock_timeout_ms",
    "postgres.isolation": "isolation",
    "retry.max_attempts": "retry.max_attempts",
    "retry.deadline": "retry.deadline_s",
    "retry.backoff": "retry.backoff",
    "retry.base_ms": "retry.base_ms",
    "retry.cap_ms": "retry.cap_ms",
}

_SHORT = {"keys.distribution": "keys", "transaction.shape": "shape", "load.model": "load"}


@dataclass(frozen=True)
class Cell:
    """One combination of a sweep's values: a complete, validated scenario."""

    index: int
    settings: dict[str, Any]  # the swept keys (dotted) and this cell's value of each
    scenario: Scenario

    @property
    def label(self) -> str:
        return " ".join(f"{_short(k)}={_fmt(v)}" for k, v in self.settings.items()) or "single"

    @property
    def slug(self) -> str:
        """A directory name: ``03_accounts-10_users-50``."""
        parts = [f"{self.index + 1:02d}"] + [f"{_short(k)}-{_fmt(v)}" for k, v in self.settings.items()]
        return re.sub(r"[^A-Za-z0-9._-]", "-", "_".join(parts))

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label, "slug": self.slug, "settings": dict(self.settings)}


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _short(path: str) -> str:
    return _SHORT.get(path, path.rsplit(".", 1)[-1])


@dataclass(frozen=True)
class ScenarioFile:
    """A loaded scenario file: its cells, in sweep order, and where to run them."""

    name: str
    description: str
    source: str
    cells: tuple[Cell, ...]
    sweep_keys: tuple[str, ...] = ()
    target_kind: str | None = None
    dsn: str | None = field(default=None, repr=False)  # may hold a password: never log it
    #: DSQL: the cluster to reach (``target.endpoint``, ``region``, ``db_user``, ``profile``).
    dsql: dict[str, str] = field(default_factory=dict)

    @property
    def is_sweep(self) -> bool:
        return bool(self.sweep_keys)


def builtin_names() -> list[str]:
    folder = resources.files("loadgen") / "scenarios"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def builtin_path(name: str) -> Any:
    return resources.files("loadgen") / "scenarios" / f"{name}.toml"


def load(name_or_path: str, overrides: Mapping[str, Any] | None = None) -> ScenarioFile:
    """Load a scenario file, or a built-in by its bare name; ``overrides`` (dotted keys) win."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or "/" in name_or_path or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{name_or_path}: cannot read scenario file: {e.strerror or e}") from None
        return load_text(text, str(path), overrides)
    resource = builtin_path(name_or_path)
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name_or_path) or not resource.is_file():
        raise ConfigError(
            f"no scenario file {name_or_path!r} and no built-in scenario of that name (built-ins: {', '.join(builtin_names())})"
        )
    return load_text(resource.read_text(encoding="utf-8"), f"{name_or_path} (built-in)", overrides)


def load_text(text: str, source: str, overrides: Mapping[str, Any] | None = None) -> ScenarioFile:
    """Validate a scenario document; ``source`` names it in error messages."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    groups = doc.pop("cells", None)
    values = _flatten(doc, source)
    resolved = {path: _validate(source, path, value) for path, value in values.items()}
    for path, value in (overrides or {}).items():
        # The command line wins over the file; it sets one value, ending any sweep of that key.
        resolved[path] = _validate("command line", path, value)
    if groups is None:
        group_values = [resolved]
    else:
        # [[cells]]: groups of cells, each group the base settings with its own keys (lists swept).
        if not isinstance(groups, list) or not groups or not all(isinstance(g, dict) for g in groups):
            raise ConfigError(f"{source}: cells: must be one or more [[cells]] tables")
        group_values = []
        for i, group in enumerate(groups, start=1):
            where = f"{source}: cells[{i}]"
            own = {p: _validate(where, p, v) for p, v in _flatten(group, where).items() if p not in (overrides or {})}
            if any(p in ("name", "description") or p.startswith("target.") for p in own):
                raise ConfigError(f"{where}: only run settings may vary between cells")
            group_values.append({**resolved, **own})
    swept: list[str] = []
    for g in group_values:
        swept += [p for p, v in g.items() if isinstance(v, list) and p not in swept]
    if groups is not None:
        # A key that differs between groups is part of every cell's label too.
        for p in _BY_PATH:
            if p not in swept and len({repr(g.get(p)) for g in group_values}) > 1:
                swept.append(p)
        order = list(_BY_PATH)
        swept.sort(key=order.index)
    total = sum(math.prod(len(g[p]) for p in swept if isinstance(g.get(p), list)) for g in group_values)
    if total > MAX_CELLS:
        raise ConfigError(f"{source}: the lists make {total:,} cells; a sweep may have at most {MAX_CELLS:,}")
    fixed = {p: v for p, v in resolved.items() if not isinstance(v, list)}
    name = str(fixed.get("name") or Path(source.split(" ")[0]).stem)
    cells: list[Cell] = []
    for g in group_values:
        g_swept = [p for p in swept if isinstance(g.get(p), list)]
        for combo in itertools.product(*(g[p] for p in g_swept)):
            values_ = {**{p: v for p, v in g.items() if not isinstance(v, list)}, **dict(zip(g_swept, combo))}
            settings = {p: values_.get(p, _default(p)) for p in swept}
            label = Cell(len(cells), settings, Scenario()).label if swept else None
            scenario = _build(source, label, name, values_)
            cells.append(Cell(len(cells), settings, scenario))
    swept_t = tuple(swept)
    return ScenarioFile(
        name=name,
        description=str(fixed.get("description", "")),
        source=source,
        cells=tuple(cells),
        sweep_keys=swept_t,
        target_kind=fixed.get("target.kind"),
        dsn=fixed.get("target.dsn"),
        dsql={k[7:]: v for k, v in fixed.items() if k in ("target.endpoint", "target.region", "target.db_user", "target.profile")},
    )


def _default(path: str) -> Any:
    """What a cell gets for a key its group leaves out (shown in labels)."""
    target = _FIELD.get(path)
    if target is None:
        return None
    if target.startswith("retry."):
        return getattr(RetryPolicy(), target[6:])
    return getattr(Scenario(), target)


def _flatten(doc: dict[str, Any], source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in _TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {key}: must be a table ([{key}]), got {_type(value)}")
            for sub, v in value.items():
                path = f"{key}.{sub}"
                if path not in _BY_PATH:
                    raise ConfigError(f"{source}: {_shown(path)}: unknown key{_suggest(path)}")
                out[path] = v
        elif key in _BY_PATH:
            out[key] = value
        else:
            raise ConfigError(f"{source}: {_shown(key)}: unknown key{_suggest(key)}")
    return out


def _shown(key: str) -> str:
    """A key as an error message shows it: quoted when it holds anything unprintable."""
    return key if key.isprintable() and key.strip() == key and key else repr(key)


def _suggest(path: str) -> str:
    import difflib

    close = difflib.get_close_matches(path, [k.path for k in KNOBS] + _TABLES, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _type(value: Any) -> str:
    return {bool: "a boolean", int: "a whole number", float: "a number", str: "text", list: "a list", dict: "a table"}.get(
        type(value), type(value).__name__
    )


def _validate(source: str, path: str, value: Any) -> Any:
    knob = _BY_PATH.get(path)
    if knob is None:
        raise ConfigError(f"{source}: {_shown(path)}: unknown key")
    if isinstance(value, list):
        if not knob.sweep:
            raise ConfigError(f"{source}: {path}: must be a single value, not a list")
        if not value:
            raise ConfigError(f"{source}: {path}: an empty list sweeps nothing; give at least one value")
        checked = [_one(source, path, knob, v) for v in value]
        if len(set(map(repr, checked))) != len(checked):
            raise ConfigError(f"{source}: {path}: the list repeats a value")
        return checked if len(checked) > 1 else checked[0]
    return _one(source, path, knob, value)


def _one(source: str, path: str, knob: Knob, value: Any) -> Any:
    def bad(what: str) -> ConfigError:
        return ConfigError(f"{source}: {path}: {what}")

    if knob.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad(f"must be a whole number, got {_type(value)} {value!r}")
    elif knob.kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad(f"must be a number, got {_type(value)} {value!r}")
        value = float(value)
    elif knob.kind in ("duration", "duration0"):
        if knob.kind == "duration0" and not isinstance(value, bool) and value in (0, "0"):
            return 0.0
        if not isinstance(value, (int, float, str)) or isinstance(value, bool):
            raise bad(f'must be seconds or text like "30s", "2m", "50ms", got {_type(value)}')
        try:
            value = parse_duration(value)
        except ConfigError as e:
            raise bad(str(e)) from None
    elif knob.kind == "choice":
        if not isinstance(value, str):
            raise bad(f"must be one of {', '.join(knob.choices)}, got {_type(value)} {value!r}")
        if value not in knob.choices:
            raise bad(f"must be one of {', '.join(knob.choices)}, got {value!r}")
    elif knob.kind == "text":
        if not isinstance(value, str):
            raise bad(f"must be text, got {_type(value)}")
    if knob.check is not None:
        problem = knob.check(value)
        if problem:
            raise bad(problem)
    return value


def _build(source: str, cell_label: str | None, name: str, values: dict[str, Any]) -> Scenario:
    """One cell's Scenario; cross-key rules (e.g. hot set smaller than the bank) checked here."""
    changes: dict[str, Any] = {"name": name}
    retry: dict[str, Any] = {}
    for path, value in values.items():
        target = _FIELD.get(path)
        if target is None:
            continue
        if path == "postgres.lock_timeout_ms":
            value = None if value == 0 else value  # 0 is PostgreSQL's "wait forever"
        elif path == "load.think_time":
            value = value * 1000.0
        if target.startswith("retry."):
            retry[target[6:]] = value
        else:
            changes[target] = value
    changes.setdefault("spawn_rate", float(changes.get("users", Scenario.users)))
    where = f"{source}: {cell_label}" if cell_label else source
    try:
        if retry:
            changes["retry"] = RetryPolicy(**retry)
        return replace(Scenario(), **changes)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
