"""The private names loadgen's fast paths lean on: fail loudly here when an upgrade moves them.

pyproject.toml bounds psycopg (< 3.4) and Locust (< 3) for these; when a bound is
raised, these tests say whether the assumptions still hold.

- psycopg: ``Connection.wait(gen, interval, timeout)`` is the hook loadgen.db.gwait
  overrides, and psycopg's own callers (``notifies``, cancel, connect) expect it to
  raise ``errors._WaitTimeout`` on timeout.
- Locust: a running user asked to stop gracefully has ``_state`` set to
  ``LOCUST_STATE_STOPPING`` (loadgen.engine.users loops inside its task and checks it,
  so a stop never cuts a transaction off).
"""

from __future__ import annotations

import inspect

import psycopg
import psycopg.errors as pg_errors
from locust import User
from locust.env import Environment
from locust.user.task import LOCUST_STATE_RUNNING, LOCUST_STATE_STOPPING
from repo import REPO

from loadgen.db.gwait import GeventConnection
from loadgen.targets.embedded import EmbeddedPostgres

PYPROJECT = REPO / "pyproject.toml"


def test_psycopg_wait_hook_and_its_timeout_error() -> None:
    assert issubclass(pg_errors._WaitTimeout, psycopg.OperationalError)
    params = list(inspect.signature(psycopg.Connection.wait).parameters)
    assert params == ["self", "gen", "interval", "timeout"], params
    assert callable(pg_errors.error_from_result)  # the fast path's error mapping (public name, not in the docs)


def test_psycopgs_own_callers_get_the_timeout_they_expect(embedded: EmbeddedPostgres) -> None:
    # notifies(timeout=...) ends quietly only if our wait raises psycopg's _WaitTimeout.
    with GeventConnection.connect(embedded.conninfo, autocommit=True) as c:
        c.execute("LISTEN loadgen_nothing")
        assert list(c.notifies(timeout=0.2)) == []


class _Idle(User):
    def idle(self) -> None:  # a user needs no task to be stopped
        pass


def test_locust_marks_a_running_user_stopping() -> None:
    env = Environment(user_classes=[_Idle])
    user = _Idle(env)
    user._state = LOCUST_STATE_RUNNING  # what Locust sets while a task runs
    assert user.stop(force=False) is False
    assert user._state == LOCUST_STATE_STOPPING


def test_the_dependencies_are_bounded_where_private_names_are_used() -> None:
    text = PYPROJECT.read_text()
    assert '"psycopg[binary,pool]>=3.1.14,<3.4"' in text
    assert '"locust>=2.30,<3"' in text
