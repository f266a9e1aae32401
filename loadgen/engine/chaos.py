"""Fault injection on PostgreSQL targets, and the watchdog that ends a run when the database is gone.

A load test is run exactly when systems misbehave. ``Chaos`` terminates a fraction of
loadgen's own backends at an interval (``pg_terminate_backend``) and can restart the
embedded server once, mid-run; every fault is logged with its time so the report can
show it. The run goes on: the attempts hit become ``connection_error`` and are retried
on fresh connections.
"""

from __future__ import annotations

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

# isort: split

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import psycopg

from loadgen.errors import ConfigError

__all__ = ["Chaos", "FaultLog", "inject_faults", "watch_reachability"]


@dataclass(frozen=True)
class Chaos:
    """What faults to inject. All off by default."""

    kill_every_s: float | None = None
    kill_fraction: float = 0.2
    restart_at_s: float | None = None

    def __post_init__(self) -> None:
        if self.kill_every_s is not None and not self.kill_every_s > 0:
            raise ConfigError(f"chaos kill interval must be positive seconds, got {self.kill_every_s}")
        if not 0 < self.kill_fraction <= 1:
            raise ConfigError(f"chaos kill fraction must be in (0, 1], got {self.kill_fraction}")
        if self.restart_at_s is not None and not self.restart_at_s >= 0:
            raise ConfigError(f"chaos restart time must not be negative, got {self.restart_at_s}")

    @property
    def restarts_server(self) -> bool:
        """The run restarts the server: it must then be the only run on it."""
        return self.restart_at_s is not None

    @property
    def active(self) -> bool:
        return self.kill_every_s is not None or self.restart_at_s is not None


@dataclass
class FaultLog:
    """Faults injected during a run, in order."""

    t0: float = field(default_factory=time.time)
    faults: list[dict[str, Any]] = field(default_factory=list)

    def add(self, kind: str, **detail: Any) -> None:
        now = time.time()
        self.faults.append({"kind": kind, "at": now, "at_s": round(now - self.t0, 3), **detail})


def _terminate_some(conninfo: str, application_name: str, fraction: float, rng: random.Random) -> int:

    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        pids = [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()",
                (application_name,),
            )
        ]
        chosen = rng.sample(pids, max(1, round(len(pids) * fraction))) if pids else []
        killed = 0
        for pid in chosen:
            row = conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
            killed += bool(row and row[0])
    return killed


def inject_faults(
    chaos: Chaos,
    conninfo: str,
    application_name: str,
    log: FaultLog,
    restart: Callable[[], None] | None,
    rng: random.Random | None = None,
) -> list[Any]:
    """Start the fault greenlets; kill them when the run ends."""

    rng = rng or random.Random()
    greenlets: list[gevent.Greenlet] = []

    def killer() -> None:
        assert chaos.kill_every_s is not None
        while True:
            gevent.sleep(chaos.kill_every_s)
            try:
                n = _terminate_some(conninfo, application_name, chaos.kill_fraction, rng)
            except psycopg.Error as e:
                log.add("terminate_failed", error=str(e).strip().splitlines()[0] if str(e).strip() else "")
                continue
            log.add("terminate_backends", backends=n)

    def restarter() -> None:
        assert chaos.restart_at_s is not None and restart is not None
        gevent.sleep(chaos.restart_at_s)
        log.add("server_restart_begin")
        restart()
        log.add("server_restart_end")

    if chaos.kill_every_s is not None:
        greenlets.append(gevent.spawn(killer))
    if chaos.restart_at_s is not None:
        if restart is None:
            raise ConfigError("--chaos-restart-at needs the embedded target (loadgen restarts only its own server)")
        greenlets.append(gevent.spawn(restarter))
    return greenlets


def watch_reachability(
    last_ok: Callable[[], float],
    limit_s: float,
    give_up: Callable[[str], None],
    refused: Callable[[], str | None] = lambda: None,
) -> Any:
    """Call ``give_up`` once no attempt has reached the database for ``limit_s`` seconds,
    or at once when ``refused()`` says why no connection can open (credentials refused)."""

    def watch() -> None:
        while True:
            gevent.sleep(min(0.5, limit_s / 4))
            reason = refused()
            if reason:
                give_up(reason)
                return
            silent = time.monotonic() - last_ok()
            if silent > limit_s:
                give_up(f"the database has been unreachable for {silent:.0f} s (limit {limit_s:g} s)")
                return

    return gevent.spawn(watch)
