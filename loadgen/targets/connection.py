"""Opening connections to a target, honouring the capabilities it declares (loadgen.targets.base.Target).

- ``connect_kwargs``: extra keyword arguments for *each new* connection, called
  once per connection (DSQL: ``{"password": <fresh IAM token>}``, so the secret is
  never part of a connection string);
- ``connection_class``: the psycopg ``Connection`` class to use (the dialect
  checker's traced connection);
- ``max_lifetime_s``: how long the pool may keep a connection (DSQL ends them at
  60 minutes).

The pool (``psycopg_pool`` >= 3.3) accepts ``kwargs`` as a callable and calls it for
every connection it opens; that is how a fresh token reaches every connection.
"""

from __future__ import annotations

from typing import Any

import psycopg

from loadgen.errors import TargetError
from loadgen.targets.base import Target, redact_conninfo

__all__ = ["open_connection", "connect", "pool_options"]


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
