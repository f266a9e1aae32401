"""How one run goes, beyond its scenario and target: the same for a run in this process
(:func:`loadgen.engine.runner.run`) and one on worker processes
(:func:`loadgen.engine.master.run_distributed`)."""

from __future__ import annotations

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

# isort: split

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from locust.env import Environment

from loadgen.engine.chaos import Chaos
from loadgen.engine.users import TransferUser

__all__ = ["RunOptions"]


@dataclass(frozen=True)
class RunOptions:
    """A run's options; every default is a plain headless run."""

    #: The Locust user class: the load model's (loadgen.engine.load.workload_for).
    user_class: type[TransferUser] = TransferUser
    #: Called about once a second with the seconds since the start and Locust's environment.
    on_progress: Callable[[float, Environment], None] | None = None
    #: The command line that started the run, secrets redacted (run.json).
    command_line: list[str] | None = None
    #: Faults injected while the run goes (--chaos-*).
    chaos: Chaos | None = None
    #: The run ends early when the database stays unreachable this long.
    unreachable_limit_s: float = 60.0
    #: The run directory's name (a sweep names its cells'); None: a fresh ``run-<time>-<id>``.
    run_id: str | None = None
    #: Tags every attempt row with a sweep cell.
    cell: str | None = None
    #: Adds fields to run.json, called once the users have stopped.
    annotations: Callable[[], dict[str, Any]] | None = None
    #: Embedded target: keep the run's own database after it ends.
    keep_db: bool = False
    #: A distributed run followed by another (a sweep's cells): the remote workers rejoin the next run's master.
    keep_workers: bool = False
