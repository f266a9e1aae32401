"""Opening connections to a target, honouring the capabilities it declares (loadgen.targets.base.Target).

- ``connect_kwargs``: extra keyword arguments for *each new* connection, called
  once per connection (DSQL: ``{"password": <fresh IAM token>}``, so the secret is
  never part of a connection string);
- ``connection_class``: the psycopg ``Connection`` class to use (the dialect
  checker's traced connection);
- ``max_lifetime_s``: how long a connection may be kept (DSQL ends them at
  60 minutes).

``kwargs`` may be a callable, called for every connection opened (as psycopg_pool
>= 3.3 also accepts it): that is how a fresh token reaches every connection.
Users hold their own connections (:class:`UserConnections`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import gevent
import psycopg
import psycopg.errors as pg_errors
from gevent.pool import Pool
from psycopg.pq import TransactionStatus

from loadgen.db.cc import with_session_settings
from loadgen.db.classify import connect_sqlstate
from loadgen.errors import TargetError, first_line
from loadgen.targets.base import Target, redact_conninfo

#: The warm-up's tries of one connection refused for the connection rate (53400).
RATE_LIMIT_RETRIES = 8

__all__ = ["open_connection", "connect", "pool_options", "UserConnections", "UserConnection", "with_connect_sqlstate"]


def open_connection(target: Target, **kwargs: Any) -> psycopg.Connection[Any]:
    """One connection to ``target`` (for set-up and checks), built like the pool's."""
    cls = target.connection_class or psycopg.Connection
    extra = target.connect_kwargs() if target.connect_kwargs is not None else {}
    return cls.connect(target.conninfo(), **kwargs, **extra)


def connect(target: Target) -> psycopg.Connection[Any]:
    """loadgen's own autocommit connection (set-up, checks), or a one-line TargetError saying why not."""
    try:
        return open_connection(target, autocommit=True, connect_timeout=10)
    except psycopg.Error as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TargetError(f"cannot connect to {redact_conninfo(target.conninfo())}: {msg}") from None


def pool_options(target: Target, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """``ConnectionPool`` arguments for ``target``: ``kwargs`` for every connection, plus what the target declares."""
    base = dict(kwargs or {})
    options: dict[str, Any] = {"kwargs": base}
    hook = target.connect_kwargs
    if hook is not None:
        # Called by the pool for each new connection.
        options["kwargs"] = lambda: {**base, **hook()}
    if target.connection_class is not None:
        options["connection_class"] = target.connection_class
    if target.max_lifetime_s is not None:
        options["max_lifetime"] = float(target.max_lifetime_s)
    return options


class UserConnections:
    """One connection per user, opened on demand in the user's own greenlet; counted.

    Why not a pool (psycopg_pool): its background workers open the connections, so a
    refused connection (DSQL's 53300 too many connections, 53400 rate exceeded, an
    expired credential) never reaches the user's retry loop: users only see a
    PoolTimeout 30 s later. And a pool sized for the test opens that many connections
    in every process, whatever share of the users the process runs. Here a user's
    attempt opens its connection (paced and signed by the target's hooks), so a
    refusal is that attempt's error, with its SQLSTATE; a broken connection is
    replaced at the next attempt; a stopped user closes its own. A process holds as
    many connections as it runs users, growing and shrinking with them.
    """

    def __init__(
        self,
        target: Target,
        kwargs: dict[str, Any] | None = None,
        *,
        connection_class: type[psycopg.Connection[Any]] | None = None,
        configure: Callable[[psycopg.Connection[Any]], None] | None = None,
        connect_timeout_s: float = 10.0,
        server_settings: dict[str, str] | None = None,
    ) -> None:
        options = pool_options(target, {**(kwargs or {}), "connect_timeout": max(1, round(connect_timeout_s))})
        # Settings every session starts with (loadgen.db.cc: isolation, lock timeout), as startup parameters.
        self._conninfo = with_session_settings(target.conninfo(), server_settings or {})
        self._kwargs: Any = options["kwargs"]
        # A class given here wins: the caller derives it from the target's (emulated latency).
        self._class: type[psycopg.Connection[Any]] = connection_class or options.get("connection_class") or psycopg.Connection
        self._lifetime_s: float | None = options.get("max_lifetime")
        self._configure = configure
        self.opened = 0
        self.connect_errors = 0
        self.lost = 0  # found broken when a user came back for it
        self.returned_broken = 0  # broken, or left inside a transaction, when given back
        self.open = 0
        self.peak_open = 0
        #: Why connecting is hopeless (credentials refused or unusable), once it is known.
        self.refused: str | None = None
        self.closed = False
        self._users: set[UserConnection] = set()
        #: Opened before the measured period (prewarm), each handed to the next user without one,
        #: with when it must be replaced (its lifetime counts from its opening, not from its handing over).
        self._spare: list[tuple[psycopg.Connection[Any], float | None]] = []

    def prewarm(self, n: int, concurrency: int = 32) -> None:
        """Open ``n`` connections now, ``concurrency`` at a time; users take them as they start.

        Raises the first refusal (with its SQLSTATE) after closing what was opened.
        """
        needed = max(0, n - len(self._spare))
        group = Pool(max(1, concurrency))
        failures: list[BaseException] = []

        def one() -> None:
            for retry in range(RATE_LIMIT_RETRIES + 1):
                if failures:
                    return
                try:
                    self._spare.append((self.connect(), self.expiry()))
                    return
                except psycopg.Error as e:
                    if e.sqlstate != "53400" or retry == RATE_LIMIT_RETRIES:
                        failures.append(e)
                        return
                    # 53400: DSQL's connection *rate* was exceeded, not its capacity: pause, try again.
                    gevent.sleep(min(2.0, 0.1 * 2**retry) * (0.5 + random.random()))
                except Exception as e:  # noqa: BLE001 - the first failure is reported, the rest stop
                    failures.append(e)
                    return

        for _ in range(needed):
            group.spawn(one)
        group.join()
        if failures:
            self._close_spares()
            raise failures[0]

    def take_spare(self) -> tuple[psycopg.Connection[Any], float | None] | None:
        """A prewarmed connection and when it expires, or None."""
        return self._spare.pop() if self._spare else None

    def _close_spares(self) -> None:
        while self._spare:
            conn, _ = self._spare.pop()
            self.open -= 1
            conn.close()

    def for_user(self) -> UserConnection:
        """A user's own connection slot (nothing opens until its first attempt)."""
        slot = UserConnection(self)
        self._users.add(slot)
        return slot

    def connect(self) -> psycopg.Connection[Any]:
        """A new connection, configured; a refusal raised with the SQLSTATE libpq could not give."""
        if self.closed:
            raise psycopg.OperationalError("loadgen's connections are closed: the run is over")
        try:
            kwargs = self._kwargs() if callable(self._kwargs) else self._kwargs  # DSQL: paced, a fresh token
        except TargetError as e:  # no token can be signed (credentials gone): no connection will open
            self.connect_errors += 1
            self.refused = f"no new connection can open: {e}"
            raise
        try:
            conn = self._class.connect(self._conninfo, **kwargs)
        except psycopg.OperationalError as e:
            self.connect_errors += 1
            refused = with_connect_sqlstate(e)
            if refused.sqlstate is not None and refused.sqlstate.startswith("28"):
                self.refused = (
                    f"the database refused loadgen's credentials on a new connection ({refused.sqlstate}: {first_line(refused)}); "
                    "temporary credentials may have expired"
                )
            raise refused from None
        try:
            if self._configure is not None:
                self._configure(conn)
        except BaseException:
            conn.close()
            raise
        self.opened += 1
        self.open += 1
        self.peak_open = max(self.peak_open, self.open)
        return conn

    def closed_one(self) -> None:
        self.open -= 1

    def expiry(self) -> float | None:
        """When a connection opened now should be replaced (monotonic seconds), if ever."""
        if self._lifetime_s is None:
            return None
        # Up to 5% early, as psycopg_pool does, so connections opened together are not all replaced together.
        return time.monotonic() + self._lifetime_s * (1 - 0.05 * random.random())

    def close(self) -> dict[str, int]:
        """Close every user's connection; the counters run.json reports."""
        self.closed = True
        for slot in list(self._users):
            slot.close()
        self._close_spares()
        return self.stats()

    def stats(self) -> dict[str, int]:
        return {
            "opened": self.opened,
            "connect_errors": self.connect_errors,
            "lost": self.lost,
            "returned_broken": self.returned_broken,
            "peak_open": self.peak_open,
        }


class UserConnection:
    """One user's connection: ``getconn``/``putconn`` for the retry loop, ``close`` when the user stops."""

    __slots__ = ("_owner", "_conn", "_expires")

    def __init__(self, owner: UserConnections) -> None:
        self._owner = owner
        self._conn: psycopg.Connection[Any] | None = None
        self._expires: float | None = None

    def getconn(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None:
            if conn.closed:
                self._owner.lost += 1
                self._drop()
            elif self._expires is not None and time.monotonic() >= self._expires:
                self._drop()  # DSQL ends a connection at 60 minutes: replace it first
            else:
                return conn
        spare = self._owner.take_spare()
        if spare is not None and spare[1] is not None and time.monotonic() >= spare[1]:
            self._owner.closed_one()  # waited too long to be taken: it would outlive DSQL's 60 minutes
            spare[0].close()
            spare = None
        conn, expires = spare if spare is not None else (self._owner.connect(), self._owner.expiry())
        self._conn, self._expires = conn, expires
        return conn

    def putconn(self, conn: psycopg.Connection[Any]) -> None:
        if conn is not self._conn:
            conn.close()
            return
        if conn.closed:
            self._owner.returned_broken += 1
            self._drop()
        elif conn.pgconn.transaction_status != TransactionStatus.IDLE:  # pgconn: conn.info builds an object per call
            self._owner.returned_broken += 1  # the attempt should have ended its transaction
            self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._owner.closed_one()
            if not conn.closed:
                try:
                    conn.close()
                except psycopg.Error:
                    pass

    def close(self) -> None:
        self._drop()
        self._owner._users.discard(self)


def with_connect_sqlstate(e: psycopg.OperationalError) -> psycopg.Error:
    """A failed connect as the error its SQLSTATE names (libpq keeps a startup error's text only)."""
    if e.sqlstate is not None:
        return e
    code = connect_sqlstate(str(e))
    if code is None:
        return e
    return pg_errors.lookup(code)(first_line(e))
