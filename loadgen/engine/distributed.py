"""Scale-out: a Locust master in the loadgen process, Locust workers in other processes or machines;
the protocol between them (the master side: loadgen.engine.master, the worker side: loadgen.engine.worker).

``loadgen run --processes N`` starts N worker processes on this machine (any target:
PostgreSQL, DSQL, ``--dialect dsql``);
``loadgen run --master`` waits for workers started elsewhere with
``loadgen run --worker --master-host H``. It is Locust's own distributed mode:
the master spreads the users over the workers and adds up their statistics.

What loadgen adds, over Locust custom messages:

- ``loadgen_hello`` (worker -> master, once the worker listens for loadgen's
  messages) and the master's answer ``loadgen_setup``: the scenario, the
  run id, and the target as data (:func:`target_setup`: the spec the worker makes it
  from, as the master made its own, and the run's corner of the server), without secrets. A password reaches a
  worker through its environment (``PGPASSWORD``, or a whole ``LOADGEN_DSN``),
  never through a command line or a message.
- ``loadgen_ready`` (worker -> master, once it has opened its share of the
  connections, paced by its share of the target's connection budget, or failed
  to): the master starts the users, and the measured period, only when every
  worker is ready, so the period starts at full concurrency as a local run's does.
- ``loadgen_attempts`` (worker -> master, about once a second): the attempt rows
  recorded since the last batch. The worker keeps none of them afterwards.
- ``loadgen_next`` (master -> remote worker, before the master's quit, when a sweep has
  cells left): stay; the worker then joins the next cell's master at the same address,
  so every cell of a sweep runs on the same worker processes.
- ``loadgen_done`` (worker -> master, at the worker's test stop, after its last
  batch and its last statistics report): how many rows it sent, its CPU time and
  its connection counters. One ZeroMQ connection keeps a worker's messages in
  order, so when every worker's ``done`` has arrived, every row and every Locust
  count has too; the row count is then checked against what each worker announced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadgen.errors import ConfigError
from loadgen.model.scenario import Scenario
from loadgen.targets.base import Target
from loadgen.targets.scope import RunScope
from loadgen.targets.spec import KINDS, TargetSpec, make_target, worker_spec

__all__ = ["Fleet", "check_scale_out", "target_setup", "worker_target", "DEFAULT_MASTER_PORT"]

MSG_HELLO = "loadgen_hello"
MSG_SETUP = "loadgen_setup"
MSG_ATTEMPTS = "loadgen_attempts"
MSG_DONE = "loadgen_done"
MSG_NEXT = "loadgen_next"
MSG_READY = "loadgen_ready"
#: How often a worker ships its attempt rows to the master.
SHIP_INTERVAL_S = 1.0
#: User ids on worker k start at k * USER_ID_STRIDE + 1: unique across workers, and
#: so are the per-user random streams of a seeded run.
USER_ID_STRIDE = 100_000
DEFAULT_MASTER_PORT = 5557
#: A worker kept for a sweep's next cell waits this long after the quit before joining again
#: (Locust's master answers for 0.5 s after sending its quit).
REJOIN_AFTER_S = 2.0


@dataclass(frozen=True)
class Fleet:
    """How a run scales out: worker processes started here, and workers expected from elsewhere."""

    processes: int = 0
    #: Workers to wait for before starting (at least ``processes``).
    expect_workers: int = 0
    bind_host: str = "127.0.0.1"
    #: 0: any free port (only sensible when every worker is started here).
    bind_port: int = 0
    connect_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.processes < 0 or self.expect_workers < 0:
            raise ConfigError("the number of worker processes must not be negative")
        if self.workers < 1:
            raise ConfigError("a distributed run needs at least one worker (--processes N or --expect-workers N)")

    @property
    def workers(self) -> int:
        return max(self.processes, self.expect_workers)


def check_scale_out(target: Target, scenarios: list[Scenario]) -> None:
    """Refuse, with one clear line, what worker processes cannot run yet."""
    check_target(target)
    for scenario in scenarios:
        check_scenario(scenario)


def check_scenario(scenario: Scenario) -> None:
    """What workers can do: the closed loop, and the open loop (each worker takes its share of the arrivals).
    Batches pace all users together across one barrier."""
    if scenario.load == "batches" or scenario.read_mix > 0:
        raise ConfigError(
            "--processes/--master run the closed and open load models without a read mix; batches and read mixes are single-process for now"
        )


def check_target(target: Target) -> None:
    """Workers make the target from its spec, as the master did (:func:`target_setup`): only a kind of
    target the spec knows, reached by its address (each DSQL worker signs its own tokens)."""
    if worker_spec(target, 1) is None:
        inner = target.underlying  # --dialect dsql wraps the real target
        raise ConfigError(
            f"--processes/--master/--worker cannot make this {inner.kind} target in a worker: workers make theirs "
            f"from a target spec ({', '.join(KINDS)}, reached by name)"
        )


def target_setup(target: Target, workers: int) -> dict[str, Any]:
    """The target as the master sends it to a worker: the spec the worker makes it from, and the run's
    corner of the server (its database or schema) it joins. No secret."""
    spec = worker_spec(target, workers)
    assert spec is not None, "check_target refuses a target no worker can make"
    return {"spec": spec.to_options(), "scope": target.scope.to_dict() if target.scope is not None else None}


def worker_target(setup: dict[str, Any], dsn: str | None = None) -> Target:
    """The master's target, made in a worker from :func:`target_setup` as the master made its own
    (:func:`~loadgen.targets.spec.make_target`), in the master's run. ``dsn``: a PostgreSQL
    target's connection string here (LOADGEN_DSN: a worker on another machine may need another
    address or a password), the run's schema kept."""
    options = dict(setup["spec"])
    if dsn and options.get("kind") == "postgres":
        options["dsn"] = dsn
    target = make_target(TargetSpec.from_options(options))
    if setup.get("scope") is not None:
        target.join_run(RunScope.from_dict(setup["scope"]))
    return target
