"""Targets as data: a frozen :class:`TargetSpec` says where a run goes, :func:`make_target` makes it.

A spec is built the same way wherever a target is chosen (a scenario file's ``[target]``
table, ``loadgen run``'s options, the web UI's form, a notebook): :meth:`TargetSpec.from_options`
takes the spec's field names, leaves out what is not given, and validates eagerly.
Each kind of target is one row of :data:`KINDS`: the options it takes (any other one
given is refused here, once, with the flag's name), the dialect it always speaks, and
how it is made. A notebook builds any target in a line (README.md, "From a notebook")::

    target = make_target(TargetSpec("postgres", dsn="postgresql://app@db.example.com/postgres"))
    target = make_target(TargetSpec("dsql", endpoint="ID.dsql.us-east-1.on.aws", db_user="app"))

Adding a kind of target: its module (a :class:`~loadgen.targets.base.Target` subclass
and a function making it from a spec), a row in :data:`KINDS` (the web form offers it
when the form can ask for what it requires), and, if it takes options
no kind takes yet, their fields here (and their flags in loadgen.cli).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from loadgen.errors import ConfigError
from loadgen.targets import dsql
from loadgen.targets.base import DEFAULT_SCHEMA, EmbeddedTarget, PostgresTarget, Target, redact_conninfo
from loadgen.targets.embedded import EmbeddedPostgres

__all__ = ["TargetSpec", "TargetKind", "KINDS", "DIALECTS", "make_target", "worker_spec"]

#: The SQL a run may send: PostgreSQL's, or DSQL's rules (rehearsed on any target with every statement audited).
DIALECTS = ("postgresql", "dsql")


@dataclass(frozen=True)
class TargetSpec:
    """Where a run goes, as plain data: no connection made, no secret shown (``dsn`` has ``repr=False``)."""

    #: embedded, postgres or dsql (:data:`KINDS`).
    kind: str = "embedded"
    #: postgres: a libpq connection string or URL (may hold a password).
    dsn: str | None = field(default=None, repr=False)
    #: postgres: the schema holding the tables (default loadgen).
    schema: str | None = None
    #: dsql: the cluster's endpoint (ID.dsql.REGION.on.aws, or a cluster id with ``region``).
    endpoint: str | None = None
    region: str | None = None
    #: dsql: the database role (default admin).
    db_user: str | None = None
    #: dsql: the AWS profile signing the IAM tokens.
    profile: str | None = None
    token_expiry_s: int | None = None
    #: dsql: verify-full (default) or require.
    sslmode: str | None = None
    #: dsql: the CA bundle verify-full checks against, or "system".
    sslrootcert: str | None = None
    #: dsql: new connections per second.
    connect_rate: float | None = None
    #: dsql: the cluster's connection quota.
    max_connections: int | None = None
    #: dsql: new connections at once before ``connect_rate`` holds them back (default 100).
    connect_burst: int | None = None
    #: dsql: the CA roots' content instead of a file (how a worker gets its master's bundle).
    sslrootcert_pem: str | None = field(default=None, repr=False)
    #: ``dsql``: follow DSQL's rules on any target and audit every statement; None: the target's own.
    dialect: str | None = None

    def __post_init__(self) -> None:
        kind = KINDS.get(self.kind)
        if kind is None:
            raise ConfigError(f"unknown target {self.kind!r}: choose one of {', '.join(KINDS)}")
        if self.dialect is not None and self.dialect not in DIALECTS:
            raise ConfigError(f"--dialect must be one of {', '.join(DIALECTS)}, got {self.dialect!r}")
        if kind.dialect is not None and self.dialect not in (None, kind.dialect):
            raise ConfigError(f"--target {self.kind} always uses the {kind.dialect} dialect")
        foreign = [name for name in OPTIONS if getattr(self, name) is not None and name not in kind.options]
        if foreign:
            flags = ", ".join(_flag(name) for name in foreign)
            owners = sorted({k.name for k in KINDS.values() for name in foreign if name in k.options})
            verb = "is" if len(foreign) == 1 else "are"
            raise ConfigError(f"{flags} {verb} only for --target {' or '.join(owners)}")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TargetSpec:
        """A spec from options by field name (``kind``, ``dsn``, ...); None and "" mean not given."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise ConfigError(f"target: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
        return cls(**{k: v for k, v in options.items() if v is not None and v != ""})

    @property
    def sql_dialect(self) -> str:
        """The SQL the run will send: DSQL's on DSQL or when rehearsed, else PostgreSQL's."""
        return self.dialect or KINDS[self.kind].dialect or "postgresql"

    def to_options(self) -> dict[str, Any]:
        """The options given (:meth:`from_options` makes the same spec from them), secrets included: never log them."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def describe(self) -> dict[str, Any]:
        """The spec without secrets: the options given, the DSN's password masked."""
        out = self.to_options()
        if self.dsn is not None:
            out["dsn"] = redact_conninfo(self.dsn)
        return out


@dataclass(frozen=True)
class TargetKind:
    """One kind of target: what it takes from a spec and how it is made."""

    name: str
    #: What it is, in a few words (the web form's help on its target field).
    summary: str
    #: The spec's options it takes; any other one given is refused (TargetSpec's check).
    options: tuple[str, ...]
    #: Makes the target from a spec already checked against ``options``.
    make: Callable[[TargetSpec], Target]
    #: Those of ``options`` it cannot be made without (make refuses a spec lacking one), so a
    #: front end that cannot ask for them cannot offer the kind (the web form: loadgen.ui.form).
    required: tuple[str, ...] = ()
    #: The dialect it always speaks (None: PostgreSQL's, and DSQL's may be rehearsed on it).
    dialect: str | None = None


def _embedded(spec: TargetSpec) -> Target:
    return EmbeddedTarget(EmbeddedPostgres())


def _postgres(spec: TargetSpec) -> Target:
    if not spec.dsn:
        raise ConfigError("--target postgres needs --dsn (e.g. postgresql://user@host:5432/db)")
    from psycopg.conninfo import conninfo_to_dict  # after gevent's patching: this module may load before Locust

    try:
        conninfo_to_dict(spec.dsn)
    except Exception:
        raise ConfigError("--dsn is not a valid PostgreSQL connection string or URL") from None
    return PostgresTarget(spec.dsn, schema=spec.schema or DEFAULT_SCHEMA, schema_given=spec.schema is not None)


def _dsql(spec: TargetSpec) -> Target:
    return dsql.make_dsql_target(
        spec.endpoint,
        region=spec.region,
        db_user=spec.db_user,
        profile=spec.profile,
        token_expiry_s=spec.token_expiry_s,
        sslrootcert=spec.sslrootcert,
        sslmode=spec.sslmode,
        connect_rate=spec.connect_rate,
        max_connections=spec.max_connections,
        connect_burst=spec.connect_burst,
        sslrootcert_pem=spec.sslrootcert_pem,
    )


_DSQL_OPTIONS = (
    "endpoint",
    "region",
    "db_user",
    "profile",
    "token_expiry_s",
    "sslmode",
    "sslrootcert",
    "connect_rate",
    "max_connections",
    "connect_burst",
    "sslrootcert_pem",
)

#: Every kind of target, by name.
KINDS: dict[str, TargetKind] = {
    k.name: k
    for k in (
        TargetKind("embedded", "loadgen's embedded PostgreSQL", (), _embedded),
        TargetKind("postgres", "any PostgreSQL (its dsn)", ("dsn", "schema"), _postgres, required=("dsn",)),
        TargetKind("dsql", "an Aurora DSQL cluster (its endpoint)", _DSQL_OPTIONS, _dsql, required=("endpoint",), dialect="dsql"),
    )
}

#: The spec's fields that belong to some kinds only.
OPTIONS: tuple[str, ...] = tuple(dict.fromkeys(name for k in KINDS.values() for name in k.options))

#: A field's command-line flag, where it is not ``--`` and the name with dashes.
_FLAGS = {"token_expiry_s": "--token-expiry"}


def _flag(name: str) -> str:
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def worker_spec(target: Target, workers: int) -> TargetSpec | None:
    """The spec a worker process makes ``target`` from with :func:`make_target`, as the master made
    its own, one of ``workers`` sharing the connection budget; None when no other process can make it.
    No secret in it: a password reaches a worker through its environment."""
    options = target.underlying.worker_options(workers)
    if options is None:
        return None
    if target.audit is not None:
        options["dialect"] = "dsql"  # the rehearsal and its audit, in each worker too
    return TargetSpec.from_options(options)


def make_target(spec: TargetSpec) -> Target:
    """The target ``spec`` describes, ready for ``prepare``: embedded, postgres or dsql, and with
    ``dialect = "dsql"`` on a PostgreSQL target, DSQL rehearsed on it (every statement audited)."""
    kind = KINDS[spec.kind]
    target = kind.make(spec)
    if spec.dialect == "dsql" and kind.dialect is None:
        from loadgen.targets.rehearsal import DsqlRehearsalTarget  # lazy: it imports psycopg, which must come after gevent's patching

        target = DsqlRehearsalTarget(target)
    return target
