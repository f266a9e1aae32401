"""run.json and sweep.json: one class writes and reads each file, with a format version.

A run directory's ``run.json`` says what ran (scenario, target, versions, machine),
when, how it ended and what it measured; ``sweep.json`` indexes a sweep's cells.
Both are written atomically (temporary file, then rename). A reader gets the named
fields back and keeps any field it does not know in ``extra``. ``format`` says which
layout a file has and is checked on every read: an older layout is read (and upgraded
to this one's when written back), a newer or unknown one is refused by name
(:class:`FormatError`) rather than misread. loadgen.results.rundir is how the rest of
loadgen finds and reads a run directory; its typed sections are loadgen.results.sections.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Self

from loadgen.errors import LoadgenError
from loadgen.results.metrics import upgrade_summary
from loadgen.results.sections import RunSections

__all__ = [
    "RUN_FILE",
    "SWEEP_FILE",
    "RUN_FORMAT",
    "SWEEP_FORMAT",
    "RunRecord",
    "SweepRecord",
    "RecordError",
    "FormatError",
    "check_format",
    "write_json",
]

RUN_FILE = "run.json"
SWEEP_FILE = "sweep.json"
#: run.json's layout version: 1 is the data contract of DESIGN.md; 2 has one conflict rate
#: (``summary.conflict_rate`` counts every contention failure; format 1's 40001-only figure is
#: gone and its ``contention_rate`` renamed), read from a format-1 file by upgrade_summary.
RUN_FORMAT = 2
#: sweep.json's: 2 holds format-2 summaries in its cells.
SWEEP_FORMAT = 2


class RecordError(LoadgenError):
    """A run.json or sweep.json that cannot be read."""


class FormatError(LoadgenError):
    """A run directory's file in a newer or unknown layout: refused, never guessed at.

    Not a :class:`RecordError`: code that replaces an unreadable record (a killed run's
    recovery) must not overwrite a file a newer loadgen wrote."""


def check_format(path: Path, found: Any, known: int) -> int:
    """The layout version ``found`` in ``path``, if this loadgen reads it (``known`` or older;
    missing: written before the field existed, the first layout)."""
    if found is None:
        return 1
    if isinstance(found, bool) or not isinstance(found, int) or found < 1:
        raise FormatError(f"{path}: unknown format {found!r} (this loadgen reads format {known} and older)")
    if found > known:
        raise FormatError(f"{path}: format {found} is newer than this loadgen reads ({known}): upgrade loadgen to read it")
    return found


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, default=str) + "\n"


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` atomically: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(to_json(doc))
    tmp.replace(path)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RecordError(f"cannot read {path}: {e}") from None
    if not isinstance(doc, dict):
        raise RecordError(f"cannot read {path}: not a JSON object")
    return doc


def _split(cls: type, doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``doc``'s known fields (as constructor arguments) and the rest."""
    names = {f.name for f in fields(cls) if f.name != "extra"}
    return {k: v for k, v in doc.items() if k in names}, {k: v for k, v in doc.items() if k not in names}


class _RecordFile:
    """A record kept as one JSON file in its directory: written atomically, read back whole."""

    FILE: ClassVar[str]
    #: The layout this version writes and the newest it reads.
    FORMAT: ClassVar[int]

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Self:
        raise NotImplementedError

    def write(self, directory: Path) -> Path:
        path = directory / self.FILE
        write_json(path, self.to_dict())
        return path

    @classmethod
    def exists(cls, directory: Path) -> bool:
        return (directory / cls.FILE).is_file()

    @classmethod
    def read(cls, directory: Path) -> Self:
        """The record in ``directory`` (or at a path to the file itself)."""
        path = directory if directory.name == cls.FILE else directory / cls.FILE
        doc = _read_json(path)
        found = check_format(path, doc.get("format"), cls.FORMAT)
        # An older layout is read as it is (every field added since has a default), upgraded where a
        # layout changed a field's meaning, and is this one from here on.
        return cls.from_dict({**cls.upgrade(doc, found), "format": cls.FORMAT})

    @classmethod
    def upgrade(cls, doc: dict[str, Any], found: int) -> dict[str, Any]:
        """``doc`` of layout ``found`` under this layout's field meanings (nothing changed: as it is)."""
        return doc


@dataclass
class RunRecord(_RecordFile):
    """run.json: the resolved scenario, the target (no secrets), versions, start and end,
    how the run ended, its summary and the invariants checked afterwards."""

    FILE: ClassVar[str] = RUN_FILE
    FORMAT: ClassVar[int] = RUN_FORMAT
    run_id: str
    scenario: dict[str, Any]
    target: dict[str, Any]
    started_at: str | None = None
    ended_at: str | None = None
    #: Whether the run ran its course (not interrupted, not aborted).
    completed: bool = False
    #: running (written at the start), completed, interrupted, aborted; or cut off
    #: (killed: ``loadgen report`` found it never finished, see ``cut_off``).
    status: str | None = None
    #: Why the run ended early on its own (the database unreachable, a worker lost), if it did.
    aborted: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    #: The key distribution and its collision probability sum(p_i^2).
    keys: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    command_line: list[str] | None = None
    faults: list[dict[str, Any]] = field(default_factory=list)
    #: The load generator's CPU use during the run.
    client: dict[str, Any] = field(default_factory=dict)
    #: The concurrency-control mode and what it meant on this target (loadgen.db.cc).
    cc: dict[str, Any] = field(default_factory=dict)
    #: Whether round trips were lengthened by emulated network latency.
    latency_emulated: bool = False
    #: Connections opened before the measured period, and how long that took.
    warmup: dict[str, Any] = field(default_factory=dict)
    #: Row-lock waits the server logged (embedded target only; None: not counted).
    lock_waits: dict[str, Any] | None = None
    #: Transactions in flight against the users asked for.
    concurrency: dict[str, Any] = field(default_factory=dict)
    #: Locust's own counts of attempts and transactions.
    locust: dict[str, int] = field(default_factory=dict)
    #: The pool's connection counters, and ``left_open`` (loadgen's sessions still open afterwards; None: not asked).
    connections: dict[str, int | None] = field(default_factory=dict)
    #: Each invariant as {name, ok, detail}; None while the run is in progress (nothing checked yet).
    invariants: list[dict[str, Any]] | None = None
    #: Distributed runs: each worker process, what it sent and what it cost.
    workers: list[dict[str, Any]] | None = None
    #: The web UI's view of a test still running.
    in_progress: bool = False
    #: Fields added by whoever ran the run (a sweep's ``cell`` and ``sweep``, the load model's
    #: ``load``/``reads``), and fields this version does not know.
    extra: dict[str, Any] = field(default_factory=dict)
    format: int = RUN_FORMAT

    @property
    def sections(self) -> RunSections:
        """The sections read back as typed, frozen records (loadgen.results.sections)."""
        return RunSections.from_dict(self.to_dict())

    @property
    def invariants_hold(self) -> bool | None:
        """Whether every invariant held; None when none was checked yet."""
        return None if self.invariants is None else all(bool(i.get("ok")) for i in self.invariants)

    def to_dict(self) -> dict[str, Any]:
        if self.in_progress:
            doc: dict[str, Any] = {
                "format": self.format,
                "run_id": self.run_id,
                "in_progress": True,
                "status": self.status,
                "scenario": self.scenario,
                "target": self.target,
                "started_at": self.started_at,
                "completed": self.completed,
                "summary": self.summary,
            }
            return {**doc, **self.extra}
        doc = {
            "format": self.format,
            "run_id": self.run_id,
            "scenario": self.scenario,
            "keys": self.keys,
            "target": self.target,
            "versions": self.versions,
            "machine": self.machine,
            "command_line": self.command_line,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "status": self.status,
            "completed": self.completed,
            "aborted": self.aborted,
            "faults": self.faults,
            "client": self.client,
            "cc": self.cc,
            "latency_emulated": self.latency_emulated,
            "warmup": self.warmup,
            "lock_waits": self.lock_waits,
            "concurrency": self.concurrency,
            "summary": self.summary,
            "locust": self.locust,
            "connections": self.connections,
            "invariants": self.invariants if self.invariants is not None else [],
            "invariants_hold": self.invariants_hold,
        }
        if self.workers:
            doc["workers"] = self.workers
        return {**doc, **self.extra}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> RunRecord:
        known, extra = _split(cls, doc)
        extra.pop("invariants_hold", None)  # derived from the invariants
        known.setdefault("run_id", "")
        known.setdefault("scenario", {})
        known.setdefault("target", {})
        return cls(**known, extra=extra)

    @classmethod
    def upgrade(cls, doc: dict[str, Any], found: int) -> dict[str, Any]:
        """Format 1 had two rates; its summary read under format 2's one conflict rate (metrics.upgrade_summary)."""
        if found < 2 and isinstance(doc.get("summary"), dict):
            return {**doc, "summary": upgrade_summary(doc["summary"])}
        return doc

    def to_json(self) -> str:
        return to_json(self.to_dict())


@dataclass
class SweepRecord(_RecordFile):
    """sweep.json: a sweep's settings and an entry per cell (status, run directory, summary),
    rewritten after every cell so that an interrupted sweep keeps its finished cells."""

    FILE: ClassVar[str] = SWEEP_FILE
    FORMAT: ClassVar[int] = SWEEP_FORMAT
    name: str
    description: str = ""
    source: str = ""
    sweep_keys: list[str] = field(default_factory=list)
    target: dict[str, Any] = field(default_factory=dict)
    command_line: list[str] | None = None
    started_at: str | None = None
    ended_at: str | None = None
    completed: bool = False
    #: One dict per cell: its settings (label, slug, ...), status, run_dir, summary, ...
    cells: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    kind: str = "sweep"
    format: int = SWEEP_FORMAT

    def to_dict(self) -> dict[str, Any]:
        doc = {
            "format": self.format,
            "kind": self.kind,
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "sweep_keys": self.sweep_keys,
            "target": self.target,
            "command_line": self.command_line,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "completed": self.completed,
            "cells": self.cells,
        }
        return {**doc, **self.extra}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> SweepRecord:
        known, extra = _split(cls, doc)
        known.setdefault("name", "")
        return cls(**known, extra=extra)

    @classmethod
    def upgrade(cls, doc: dict[str, Any], found: int) -> dict[str, Any]:
        """Format 1's cell summaries read under format 2's one conflict rate."""
        if found < 2 and isinstance(doc.get("cells"), list):
            cells = [
                {**c, "summary": upgrade_summary(c["summary"])} if isinstance(c, dict) and isinstance(c.get("summary"), dict) else c
                for c in doc["cells"]
            ]
            return {**doc, "cells": cells}
        return doc
