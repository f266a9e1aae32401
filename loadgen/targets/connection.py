"""Opening connections to a target, honouring the target's optional hooks.

A target always gives ``conninfo()``. It may also give:

- ``connect_kwargs()``: extra keyword arguments for *each new* connection, called
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

__all__ = ["open_connection", "pool_options"]


def open_connection(target: Any, **kwargs: Any) -> psycopg.Connection[Any]:
    """One connection to ``target`` (for set-up and checks), built like the pool's."""
    cls = getattr(target, "connection_class", None) or psycopg.Connection
    extra = target.connect_kwargs() if hasattr(target, "connect_kwargs") else {}
    return cls.connect(target.conninfo(), **kwargs, **extra)  # type: ignore[no-any-return]


def pool_options(target: Any, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """``ConnectionPool`` arguments for ``target``: ``kwargs`` for every connection, plus the target's hooks."""
    base = dict(kwargs or {})
    options: dict[str, Any] = {"kwargs": base}
    hook = getattr(target, "connect_kwargs", None)
    if hook is not None:
        # Called by the pool for each new connection.
        options["kwargs"] = lambda: {**base, **hook()}
    cls = getattr(target, "connection_class", None)
    if cls is not None:
        options["connection_class"] = cls
    lifetime = getattr(target, "max_lifetime_s", None)
    if lifetime is not None:
        options["max_lifetime"] = float(lifetime)
    return options
