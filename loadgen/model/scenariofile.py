"""Scenario files: TOML in, a validated list of cells out, before any database work.

A file sets any knob of a run. A numeric or choice knob given as a list makes the
scenario a sweep over the cartesian product of the lists, one *cell* per
combination, in the order the keys appear in the file. Every value is checked
here, eagerly, and a mistake reads ``file: key: what is wrong``.

Layout (every key optional; the tables group knobs, declared in loadgen.model.knobs)::

    name = "hotspot-sweep"
    description = "..."
    accounts = [10, 100, 1000]      # a list: swept
    users = 50
    duration = "20s"
    [keys]        distribution, zipf_s, hot_ops, hot_keys, hotset_p, hotset_k
    [transaction] shape, legs, read_mix, read_kind
    [retry]       max_attempts, deadline, backoff, base_ms, cap_ms
    [load]        model, think_time, batches, arrival_rate
    cc = "occ"                      # or "locking" (loadgen.db.cc); DSQL is always occ
    rtt_ms, rtt_jitter_ms, commit_ms  # emulated latency per round trip (loadgen.model.latency)
    [postgres]    lock_timeout_ms  (cc = "locking" only; 0: wait, PostgreSQL's own default), isolation
    [target]      kind, dsn, schema; for DSQL: endpoint, region, db_user, profile

Built-in scenarios ship inside the package (``loadgen/scenarios/*.toml``), so a
bare name such as ``quickstart`` works from an installed wheel too.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from loadgen.errors import ConfigError
from loadgen.model.knobs import BY_KEY, KNOBS, Knob, build_scenario, type_name
from loadgen.model.scenario import Scenario

__all__ = ["Knob", "KNOBS", "Cell", "ScenarioFile", "load", "load_text", "builtin_names", "builtin_path"]

#: A sweep larger than this is a typo, not a plan (each cell is a whole run).
MAX_CELLS = 10_000

_BY_PATH = BY_KEY
_TABLES = sorted({k.key.split(".")[0] for k in KNOBS if "." in k.key})


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
    return BY_KEY[path].name


@dataclass(frozen=True)
class ScenarioFile:
    """A loaded scenario file: its cells, in sweep order, and where to run them."""

    name: str
    description: str
    source: str
    cells: tuple[Cell, ...]
    sweep_keys: tuple[str, ...] = ()
    #: The ``[target]`` table by key (kind, dsn, schema; DSQL's endpoint, region, db_user, profile):
    #: loadgen.targets.spec.TargetSpec's fields, the command line's options winning. ``dsn`` may
    #: hold a password: never log it.
    target: dict[str, str] = field(default_factory=dict, repr=False)

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
        target={k.removeprefix("target."): v for k, v in fixed.items() if k.startswith("target.")},
    )


def _default(path: str) -> Any:
    """What a cell gets for a key its group leaves out (shown in labels)."""
    return BY_KEY[path].default


def _flatten(doc: dict[str, Any], source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in _TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {key}: must be a table ([{key}]), got {type_name(value)}")
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
    close = difflib.get_close_matches(path, [k.key for k in KNOBS] + _TABLES, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _validate(source: str, path: str, value: Any) -> Any:
    knob = _BY_PATH.get(path)
    if knob is None:
        raise ConfigError(f"{source}: {_shown(path)}: unknown key")
    if isinstance(value, list):
        if not knob.sweep:
            raise ConfigError(f"{source}: {path}: must be a single value, not a list")
        if not value:
            raise ConfigError(f"{source}: {path}: an empty list sweeps nothing; give at least one value")
        checked = [knob.parse(v, source) for v in value]
        if len(set(map(repr, checked))) != len(checked):
            raise ConfigError(f"{source}: {path}: the list repeats a value")
        return checked if len(checked) > 1 else checked[0]
    return knob.parse(value, source)


def _build(source: str, cell_label: str | None, name: str, values: dict[str, Any]) -> Scenario:
    """One cell's Scenario; cross-key rules (e.g. hot set smaller than the bank) checked here."""
    where = f"{source}: {cell_label}" if cell_label else source
    try:
        return build_scenario({**values, "name": name})
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
