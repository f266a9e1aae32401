"""A run's own corner of a server: its database (embedded) or schema (postgres), and its sessions' name.

Runs in parallel must never see each other's bank, and fault injection, connection
counts and ``left_open`` must see only this run's sessions: every session a run
opens carries ``application_name = loadgen/<run id>/<token>``. The token tells apart
two runs with the same id (two sweeps of one scenario file name their cells alike).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["RunScope", "DEFAULT_APPLICATION_NAME", "valid_identifier"]

#: The sessions of loadgen outside any run (set-up before a run began, old versions).
DEFAULT_APPLICATION_NAME = "loadgen"
#: PostgreSQL keeps identifiers and application_name to 63 bytes.
_NAME_MAX = 63
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def valid_identifier(name: str) -> bool:
    """A lower-case SQL identifier that needs no quoting (schema names)."""
    return bool(_IDENT.match(name))


def _safe(run_id: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", run_id.lower())[:44]


@dataclass(frozen=True)
class RunScope:
    """Where one run works; travels to worker processes as a dict."""

    run_id: str
    token: str
    #: The embedded server: the run's own database, created at start and dropped at the end.
    database: str | None = None
    #: --target postgres: the schema holding the tables (an advisory lock keeps it to one run).
    schema: str | None = None

    @classmethod
    def new(cls, run_id: str, *, own_database: bool = False, schema: str | None = None) -> RunScope:
        token = secrets.token_hex(3)
        database = f"lg_{_safe(run_id)}_{token}" if own_database else None
        return cls(run_id, token, database, schema)

    @property
    def application_name(self) -> str:
        """What every session of this run is called in ``pg_stat_activity``."""
        return f"loadgen/{self.run_id[: _NAME_MAX - 16]}/{self.token}"

    @property
    def name(self) -> str:
        """Unique among the runs on one server: the live-run registry's key."""
        return self.database or f"lg_{_safe(self.run_id)}_{self.token}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunScope:
        return cls(str(data["run_id"]), str(data["token"]), data.get("database"), data.get("schema"))
