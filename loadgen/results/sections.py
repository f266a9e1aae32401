"""run.json's sections as typed, frozen records: what a reader of a run gets back.

:class:`~loadgen.results.records.RunRecord` keeps each section as the dict it writes (the
writers fill them as the run goes); these are the same sections read back, each field
named and typed, so a reader writes ``run.summary.conflict_rate`` rather than digging
through nested dicts with ``.get``. A field a section does not know (written by a newer
loadgen of the same format, or added by another part of the run) is kept in ``extra``;
a field the file leaves out is None. ``to_dict`` gives back the section as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

__all__ = [
    "Latency",
    "Summary",
    "ClientLoad",
    "Connections",
    "Machine",
    "Concurrency",
    "Warmup",
    "Invariant",
    "CutOff",
    "Keys",
    "ConcurrencyControl",
    "LockWaits",
    "ClusterMetric",
    "ClusterMetrics",
    "RunSections",
]


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _count(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    return int(v) if isinstance(v, float) and v.is_integer() else None


def _counts(v: Any) -> dict[str, int]:
    return {str(k): c for k, n in v.items() if (c := _count(n)) is not None} if isinstance(v, Mapping) else {}


class _Section:
    """A section read from a dict: known fields by name (coerced by ``_COERCE``), the rest in ``extra``."""

    #: How each field is read from JSON (a field not named here is kept as written).
    _COERCE: ClassVar[Mapping[str, Any]] = {}
    #: Fields the section does not name, as written.
    extra: Mapping[str, Any]

    @classmethod
    def from_dict(cls, doc: Any) -> Self:
        doc = doc if isinstance(doc, Mapping) else {}
        names = {f.name for f in fields(cls) if f.name != "extra"}  # type: ignore[arg-type]
        known = {k: cls._COERCE.get(k, _keep)(doc.get(k)) for k in names}
        known["extra"] = {k: v for k, v in doc.items() if k not in names}
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name == "extra":
                continue
            doc[f.name] = value.to_dict() if isinstance(value, _Section) else value
        return {**doc, **self.extra}


def _keep(v: Any) -> Any:
    return v


@dataclass(frozen=True)
class Latency(_Section):
    """Percentiles in milliseconds (loadgen.results.metrics.percentiles); None where nothing was measured."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    p99_9: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, doc: Any) -> Latency:
        doc = dict(doc) if isinstance(doc, Mapping) else {}
        if "p99.9" in doc:
            doc["p99_9"] = doc.pop("p99.9")
        return super().from_dict(doc)

    def to_dict(self) -> dict[str, Any]:
        doc = super().to_dict()
        doc["p99.9"] = doc.pop("p99_9")
        return doc

    _COERCE: ClassVar[Mapping[str, Any]] = {"p50": _number, "p95": _number, "p99": _number, "p99_9": _number}


@dataclass(frozen=True)
class Summary(_Section):
    """``summary``: the run's headline figures, as loadgen.results.metrics.summarize defines them."""

    attempts: int | None = None
    transactions: int | None = None
    commits: int | None = None
    #: Attempts that failed on contention: the one conflict rate's numerator (format 2; format 1 called it contention).
    conflicts: int | None = None
    failed_attempts: int | None = None
    retries: int | None = None
    max_attempts: int | None = None
    failed_transactions: int | None = None
    conflict_rate: float | None = None
    failed_attempt_rate: float | None = None
    retries_per_commit: float | None = None
    retried_share: float | None = None
    attempts_per_commit: float | None = None
    throughput_commits_per_s: float | None = None
    attempts_per_s: float | None = None
    elapsed_s: float | None = None
    outcomes: Mapping[str, int] = field(default_factory=dict)
    sqlstates: Mapping[str, int] = field(default_factory=dict)
    conflicts_by_kind: Mapping[str, int] = field(default_factory=dict)
    conflicts_by_sqlstate: Mapping[str, int] = field(default_factory=dict)
    attempt_latency_ms: Latency = field(default_factory=Latency)
    transaction_latency_ms: Latency = field(default_factory=Latency)
    extra: Mapping[str, Any] = field(default_factory=dict)

    _COERCE: ClassVar[Mapping[str, Any]] = {
        **dict.fromkeys(("attempts", "transactions", "commits", "conflicts", "failed_attempts", "retries", "max_attempts"), _count),
        "failed_transactions": _count,
        **dict.fromkeys(
            (
                "conflict_rate",
                "failed_attempt_rate",
                "retries_per_commit",
                "retried_share",
                "attempts_per_commit",
                "throughput_commits_per_s",
                "attempts_per_s",
                "elapsed_s",
            ),
            _number,
        ),
        **dict.fromkeys(("outcomes", "sqlstates", "conflicts_by_kind", "conflicts_by_sqlstate"), _counts),
        "attempt_latency_ms": Latency.from_dict,
        "transaction_latency_ms": Latency.from_dict,
    }


@dataclass(frozen=True)
class ClientLoad(_Section):
    """``client``: the load generator's own CPU use (loadgen.results.client_cpu.client_load) and its fixed cost."""

    wall_s: float | None = None
    cpu_s: float | None = None
    cpu_utilization: float | None = None
    cpu_per_attempt_us: float | None = None
    busiest_process_share: float | None = None
    saturated: bool | None = None
    processes: int | None = None
    master_cpu_s: float | None = None
    #: startup_s, teardown_s, total_s: known only once the report is written.
    fixed_cost_s: Mapping[str, float] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _COERCE: ClassVar[Mapping[str, Any]] = {
        **dict.fromkeys(("wall_s", "cpu_s", "cpu_utilization", "cpu_per_attempt_us", "busiest_process_share", "master_cpu_s"), _number),
        "processes": _count,
        "saturated": lambda v: v if isinstance(v, bool) else None,
        "fixed_cost_s": lambda v: dict(v) if isinstance(v, Mapping) else None,
    }


@dataclass(frozen=True)
class Connections(_Section):
    """``connections``: the pool's connection counters; ``left_open`` None when not asked."""

    opened: int | None = None
    connect_errors: int | None = None
    lost: int | None = None
    returned_broken: int | None = None
    peak_open: int | None = None
    left_open: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _COERCE: ClassVar[Mapping[str, Any]] = dict.fromkeys(
        ("opened", "connect_errors", "lost", "returned_broken", "peak_open", "left_open"), _count
    )


@dataclass(frozen=True)
class Machine(_Section):
    """``machine``: where the load generator ran (``pid`` while the run goes)."""

    cpus: int | None = None
    hostname: str | None = None
    pid: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _COERCE: ClassVar[Mapping[str, Any]] = {"cpus": _count, "pid": _count, "hostname": lambda v: v if isinstance(v, str) else None}


@dataclass(frozen=True)
class Concurrency(_Section):
    """``concurrency``: transactions in flight against the users asked for (loadgen.results.metrics.concurrency)."""

    users: int | None = None
    in_flight_mean: float | None = None
    in_flight_share: float | None = None
    warning: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _COERCE: ClassVar[Mapping[str, Any]] = {
        "users": _count,
        "in_flight_mean": _number,
        "in_flight_share": _number,
        "warning": lambda v: v if isinstance(v, str) else None,
    }


@dataclass(frozen=True)
class Warmup(_Section):
    """``warmup``: connections opened before the measured period, and how long that took."""

    connections: int | None = None
    seconds: float | None = None
    ended_at: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _COERCE: ClassVar[Mapping[str, Any]] = {"connections": _count, "seconds": _number}


@dataclass(frozen=True)
class Invariant(_Section):
    """One entry of ``invariants``: a property of the bank checked after the run."""

    name: str | None = None
    ok: bool = False
    detail: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _COERCE: ClassVar[Mapping[str, Any]] = {"ok": lambda v: v is True}


@dataclass(frozen=True)
class CutOff(_Section):
    """``cut_off``: what a run that never finished left on disk (loadgen.results.stream.recover)."""

    #: When its last attempts reached disk (UTC, ISO 8601); None if none did.
    last_write: str | None = None
    attempts_on_disk: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _COERCE: ClassVar[Mapping[str, Any]] = {"attempts_on_disk": _count}


@dataclass(frozen=True)
class Keys(_Section):
    """``keys``: the key distribution (its name and parameters in ``extra``) and sum(p_i^2), the conflict model's input."""

    name: str | None = None
    accounts: int | None = None
    collision_probability: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _COERCE: ClassVar[Mapping[str, Any]] = {"accounts": _count, "collision_probability": _number}


@dataclass(frozen=True)
class ConcurrencyControl(_Section):
    """``cc``: the concurrency-control mode and what it meant on this target (loadgen.db.cc.describe_cc)."""

    mode: str | None = None
    isolation: str | None = None
    lock_timeout_ms: int | None = None
    #: When a transaction takes its snapshot: ``begin`` (DSQL, cc occ) or ``first statement`` (PostgreSQL's own).
    snapshot: str | None = None
    how: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _COERCE: ClassVar[Mapping[str, Any]] = {"lock_timeout_ms": _count}


@dataclass(frozen=True)
class LockWaits(_Section):
    """``lock_waits``: row-lock waits the embedded server logged (longer than ``longer_than_ms``)."""

    count: int | None = None
    longer_than_ms: float | None = None
    source: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _COERCE: ClassVar[Mapping[str, Any]] = {"count": _count, "longer_than_ms": _number}


@dataclass(frozen=True)
class ClusterMetric(_Section):
    """One counter of ``cluster_metrics``: its value over the window (None: no data point) and how it was reduced."""

    value: float | None = None
    unit: str | None = None
    #: CloudWatch's statistic: ``Sum`` over the minutes, or ``Average`` of each minute's.
    stat: str | None = None
    minutes_with_data: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _COERCE: ClassVar[Mapping[str, Any]] = {"value": _number, "minutes_with_data": _count}


@dataclass(frozen=True)
class ClusterMetrics(_Section):
    """``cluster_metrics``: the target's own counters over the measured window (DSQL: CloudWatch,
    loadgen.targets.dsql_cloudwatch), or in ``unavailable`` one line saying why they were not read."""

    source: str | None = None
    #: The whole minutes read: ``start``, ``end`` (ISO 8601), ``period_s``, ``minutes``.
    window: Mapping[str, Any] = field(default_factory=dict)
    #: The measured period they hold: ``start``, ``end``.
    measured: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, ClusterMetric] = field(default_factory=dict)
    #: Some minutes not yet published when read.
    note: str | None = None
    unavailable: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _COERCE: ClassVar[Mapping[str, Any]] = {
        "window": lambda v: dict(v) if isinstance(v, Mapping) else {},
        "measured": lambda v: dict(v) if isinstance(v, Mapping) else {},
        "metrics": lambda v: {str(k): ClusterMetric.from_dict(m) for k, m in v.items()} if isinstance(v, Mapping) else {},
        "note": lambda v: v if isinstance(v, str) else None,
        "unavailable": lambda v: v if isinstance(v, str) else None,
    }

    def value(self, name: str) -> float | None:
        """One counter's value over the window; None when not read or no data."""
        m = self.metrics.get(name)
        return m.value if m is not None else None

    def to_dict(self) -> dict[str, Any]:
        doc = super().to_dict()
        doc["metrics"] = {k: m.to_dict() for k, m in self.metrics.items()}
        for said in ("note", "unavailable"):  # written only when there is something to say
            if doc[said] is None:
                del doc[said]
        return doc


@dataclass(frozen=True)
class RunSections:
    """Every typed section of one run.json (:meth:`RunRecord.sections`)."""

    summary: Summary
    client: ClientLoad
    connections: Connections
    machine: Machine
    concurrency: Concurrency
    warmup: Warmup
    keys: Keys
    cc: ConcurrencyControl
    #: None: not counted (only the embedded server logs them).
    lock_waits: LockWaits | None
    invariants: tuple[Invariant, ...] | None
    #: Set when ``loadgen report`` recovered the run after it was killed.
    cut_off: CutOff | None
    #: A sweep cell's settings (label, slug, ...); None outside a sweep.
    cell: Mapping[str, Any] | None
    #: None: the target has no counters of its own (every target but DSQL).
    cluster_metrics: ClusterMetrics | None = None

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> RunSections:
        invariants = doc.get("invariants")
        cut, cell, waits, cluster = doc.get("cut_off"), doc.get("cell"), doc.get("lock_waits"), doc.get("cluster_metrics")
        return cls(
            summary=Summary.from_dict(doc.get("summary")),
            client=ClientLoad.from_dict(doc.get("client")),
            connections=Connections.from_dict(doc.get("connections")),
            machine=Machine.from_dict(doc.get("machine")),
            concurrency=Concurrency.from_dict(doc.get("concurrency")),
            warmup=Warmup.from_dict(doc.get("warmup")),
            keys=Keys.from_dict(doc.get("keys")),
            cc=ConcurrencyControl.from_dict(doc.get("cc")),
            lock_waits=LockWaits.from_dict(waits) if isinstance(waits, Mapping) else None,
            invariants=tuple(Invariant.from_dict(i) for i in invariants) if isinstance(invariants, list) else None,
            cut_off=CutOff.from_dict(cut) if isinstance(cut, Mapping) else None,
            cell=dict(cell) if isinstance(cell, Mapping) else None,
            cluster_metrics=ClusterMetrics.from_dict(cluster) if isinstance(cluster, Mapping) else None,
        )
