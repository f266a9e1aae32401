"""Concurrency control: a PostgreSQL session set up to decide conflicts as DSQL does, or as PostgreSQL does.

DSQL takes no locks: two transactions may write the same row, the first to COMMIT
wins and the other gets 40001 at its COMMIT. PostgreSQL at REPEATABLE READ also
raises 40001 on a write-write conflict, but at the *statement*, after waiting on the
other writer's row lock, and two such waits can deadlock (40P01). A local run that
waits measures PostgreSQL's lock queue, not what an OCC engine would do.

- ``occ`` (the default): first committer wins, as on DSQL (loadgen.db.occ): reads at a
  snapshot taken at BEGIN, writes kept and applied with COMMIT in one pipeline, the
  later committer failing there with 40001. ``lock_timeout`` is only a safety net
  (``OCC_COMMIT_LOCK_TIMEOUT_MS``) for a COMMIT meeting another still in progress.
- ``nowait``: PostgreSQL's own statements with ``lock_timeout`` at its smallest, 1 ms,
  so the second *writer* of a row fails at once with 55P03 instead of queueing (no
  deadlock can form: detection starts only after ``deadlock_timeout``, 10 ms on the
  embedded server). The conflict *rate* is close to DSQL's; who fails, where and when
  is not: the loser fails at its statement, early and cheap, and an immediate retry
  meets the winner's lock again. loadgen's occ mode before first-committer-wins.
- ``locking``: PostgreSQL's own waits (and deadlocks), optionally bounded by a
  ``lock_timeout`` of the user's choosing; for comparison (``lock-mode-compare``).

Settings travel as startup parameters (libpq ``options``), so setting a session up
costs no round trip and sends no statement (the DSQL dialect checker audits
statements; DSQL refuses ``SET lock_timeout``).
"""

from __future__ import annotations

import math
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from loadgen.model.scenario import NOWAIT_LOCK_TIMEOUT_MS, OCC_COMMIT_LOCK_TIMEOUT_MS, Scenario

__all__ = ["session_settings", "with_session_settings", "describe_cc", "first_committer_wins", "CC_MEANING"]

_ISOLATION = {"repeatable-read": "repeatable read", "read-committed": "read committed", "serializable": "serializable"}


def session_settings(scenario: Scenario, *, sets_isolation: bool, takes_row_locks: bool, dialect: str = "postgresql") -> dict[str, str]:
    """The server settings a run's sessions start with: isolation level and lock timeout.

    ``sets_isolation``: the target accepts an isolation level (DSQL has one and refuses it).
    ``takes_row_locks``: the engine underneath is PostgreSQL (DSQL takes none).
    """
    settings: dict[str, str] = {}
    if sets_isolation:
        settings["default_transaction_isolation"] = _ISOLATION[scenario.isolation]
    if takes_row_locks:
        timeout = lock_timeout_ms(scenario, first_committer_wins(scenario, takes_row_locks=True, dialect=dialect))
        if timeout:
            settings["lock_timeout"] = f"{timeout}ms"
    return settings


def lock_timeout_ms(scenario: Scenario, fcw: bool = True) -> int:
    """The lock_timeout a PostgreSQL session gets, in whole ms (0: wait forever); ``fcw``: occ runs first-committer-wins."""
    if scenario.cc == "occ" and fcw:
        return OCC_COMMIT_LOCK_TIMEOUT_MS
    if scenario.cc in ("occ", "nowait"):
        return NOWAIT_LOCK_TIMEOUT_MS
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


#: What each mode means, in one line (run.json, the summary, the report).
CC_MEANING = {
    "occ": "first committer wins, as on DSQL: reads at the snapshot taken at BEGIN, writes applied with COMMIT, "
    "the later committer fails at COMMIT (40001)",
    "nowait": "the later writer fails at its statement at once (55P03, no lock wait): PostgreSQL's row locks without waiting",
    "locking": "PostgreSQL's row-lock waits; deadlocks possible",
}


def first_committer_wins(scenario: Scenario, *, takes_row_locks: bool, dialect: str = "postgresql") -> bool:
    """Whether a run's transfers take loadgen.db.occ's form: cc occ on PostgreSQL driven as PostgreSQL.

    DSQL is its own OCC engine. PostgreSQL rehearsing DSQL's dialect (``--dialect dsql``)
    sends the shapes' own statements, which are what its audit checks, without lock waits (as nowait).
    """
    return scenario.cc == "occ" and takes_row_locks and dialect == "postgresql"


def describe_cc(scenario: Scenario, takes_row_locks: bool, dialect: str = "postgresql") -> dict[str, Any]:
    """What run.json records about the mode: its name and what it meant on this target."""
    if not takes_row_locks:
        return {"mode": "occ", "snapshot": "begin", "how": "the engine's own optimistic concurrency control (no row locks)"}
    fcw = first_committer_wins(scenario, takes_row_locks=takes_row_locks, dialect=dialect)
    timeout = lock_timeout_ms(scenario, fcw)
    if fcw:
        how = (
            f"{CC_MEANING['occ']}, on PostgreSQL repeatable-read (loadgen.db.occ); "
            f"a COMMIT waits at most {timeout} ms for a row another COMMIT holds (55P03 then: the server stalled)"
        )
        return {"mode": "occ", "lock_timeout_ms": timeout, "isolation": scenario.isolation, "snapshot": "begin", "how": how}
    if scenario.cc in ("occ", "nowait"):
        how = f"PostgreSQL {scenario.isolation}, lock_timeout {timeout} ms: {CC_MEANING['nowait']}"
    else:
        wait = f"for at most {timeout} ms (lock_timeout)" if timeout else "as long as it takes (no lock_timeout)"
        how = f"PostgreSQL {scenario.isolation} with row-lock waits {wait}; deadlocks possible"
    return {
        "mode": scenario.cc,
        "lock_timeout_ms": timeout or None,
        "isolation": scenario.isolation,
        "snapshot": "first statement",
        "how": how,
    }
