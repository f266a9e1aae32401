"""Concurrency control: a PostgreSQL session set up to act as a lock-free OCC engine, or as itself.

DSQL takes no locks: two transactions may write the same row, the first to COMMIT
wins and the other gets 40001. PostgreSQL at REPEATABLE READ also raises 40001 on a
write-write conflict, but only after waiting on the other writer's row lock, and
two such waits can deadlock (40P01). A local run that waits measures PostgreSQL's
lock queue, not what an OCC engine would do.

- ``occ``: snapshot isolation (REPEATABLE READ) and ``lock_timeout`` at its smallest,
  1 ms, so the second writer of a row fails at once with 55P03 (lock not available)
  instead of queueing. That failure is this mode's conflict: one of two overlapping
  writers fails, as under DSQL (PostgreSQL picks the later writer, DSQL the later
  committer). No deadlock can form: deadlock detection starts only after
  ``deadlock_timeout`` (the embedded server's is 10 ms) of waiting, and no wait
  lasts that long. NOWAIT would be exact but exists only for ``SELECT ... FOR UPDATE``,
  not for the UPDATEs a transfer is made of.
- ``locking``: PostgreSQL's own waits (and deadlocks), optionally bounded by a
  ``lock_timeout`` of the user's choosing; for comparison (``lock-mode-compare``).

Both settings travel as startup parameters (libpq ``options``), so setting a
session up costs no round trip and sends no statement (the DSQL dialect checker
audits statements; DSQL refuses ``SET lock_timeout``).
"""

from __future__ import annotations

import math
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from loadgen.model.scenario import OCC_LOCK_TIMEOUT_MS, Scenario

__all__ = ["session_settings", "with_session_settings", "describe_cc"]

_ISOLATION = {"repeatable-read": "repeatable read", "read-committed": "read committed", "serializable": "serializable"}


def session_settings(scenario: Scenario, *, sets_isolation: bool, takes_row_locks: bool) -> dict[str, str]:
    """The server settings a run's sessions start with: isolation level and lock timeout.

    ``sets_isolation``: the target accepts an isolation level (DSQL has one and refuses it).
    ``takes_row_locks``: the engine underneath is PostgreSQL (DSQL takes none).
    """
    settings: dict[str, str] = {}
    if sets_isolation:
        settings["default_transaction_isolation"] = _ISOLATION[scenario.isolation]
    if takes_row_locks:
        timeout = lock_timeout_ms(scenario)
        if timeout:
            settings["lock_timeout"] = f"{timeout}ms"
    return settings


def lock_timeout_ms(scenario: Scenario) -> int:
    """The lock_timeout a PostgreSQL session gets, in whole ms (0: wait forever)."""
    if scenario.cc == "occ":
        return OCC_LOCK_TIMEOUT_MS
    # PostgreSQL counts whole milliseconds and rounds: 0.4 would become 0, "wait forever".
    return math.ceil(scenario.lock_timeout_ms) if scenario.lock_timeout_ms else 0


def with_session_settings(conninfo: str, settings: dict[str, str]) -> str:
    """``conninfo`` with ``settings`` added to its startup ``options`` (any already there kept)."""
    if not settings:
        return conninfo
    params: dict[str, Any] = conninfo_to_dict(conninfo)
    extra = " ".join(f"-c {name}={_escape(value)}" for name, value in settings.items())
    params["options"] = f"{params.get('options', '')} {extra}".strip()
    return make_conninfo(**params)


def _escape(value: str) -> str:
    # libpq splits options on spaces; a backslash keeps one inside a value.
    return value.replace("\\", "\\\\").replace(" ", "\\ ")


def describe_cc(scenario: Scenario, takes_row_locks: bool) -> dict[str, Any]:
    """What run.json records about the mode: its name and what it meant on this target."""
    if not takes_row_locks:
        return {"mode": "occ", "how": "the engine's own optimistic concurrency control (no row locks)"}
    timeout = lock_timeout_ms(scenario)
    if scenario.cc == "occ":
        how = f"PostgreSQL {scenario.isolation}, lock_timeout {timeout} ms: a writer never waits on a row lock, it fails at once (55P03)"
    else:
        wait = f"for at most {timeout} ms (lock_timeout)" if timeout else "as long as it takes (no lock_timeout)"
        how = f"PostgreSQL {scenario.isolation} with row-lock waits {wait}; deadlocks possible"
    return {"mode": scenario.cc, "lock_timeout_ms": timeout or None, "isolation": scenario.isolation, "how": how}
