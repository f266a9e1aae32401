"""A headless run: users in this process for the scenario's duration, through one RunSession.

Locust is used as a library (an Environment and a local runner), so a run needs no
Locust command line and every count stays in this process.
"""

from __future__ import annotations

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

# isort: split

from collections.abc import Callable
from pathlib import Path
from typing import Any

from locust.env import Environment

from loadgen.engine.chaos import Chaos
from loadgen.engine.progress import OutcomeTally
from loadgen.engine.session import RunResult, RunSession
from loadgen.engine.users import Bench, TransferUser, check_client_capacity, set_bench
from loadgen.model.scenario import Scenario
from loadgen.results.recorder import AttemptRecorder
from loadgen.targets.base import Target

__all__ = ["RunResult", "run"]


def run(
    scenario: Scenario,
    target: Target,
    out: Path,
    *,
    user_class: type[TransferUser] = TransferUser,
    on_progress: Callable[[float, Environment], None] | None = None,
    command_line: list[str] | None = None,
    chaos: Chaos | None = None,
    unreachable_limit_s: float = 60.0,
    run_id: str | None = None,
    cell: str | None = None,
    annotations: Callable[[], dict[str, Any]] | None = None,
    keep_db: bool = False,
) -> RunResult:
    """Run one scenario against one target; write ``out/<run id>/`` (a sweep names its cells' ids).

    Users run in this process; loadgen.engine.distributed.run_distributed runs them in workers.
    ``cell`` tags every attempt row with a sweep cell; ``annotations`` adds fields to run.json.
    The run works in its own database (embedded; dropped at the end unless ``keep_db``) or schema.
    """
    session = RunSession(scenario, target, run_id=run_id, command_line=command_line, annotations=annotations, keep_db=keep_db)
    check_client_capacity(scenario.users)  # before the target is resized for them
    session.prepare(out, exclusive=chaos is not None and chaos.restarts_server)
    recorder = AttemptRecorder(session.run_id, cell=cell)
    bench = Bench(scenario, target, recorder)
    try:
        bench.warm_up()  # every connection open before the clock starts
    except BaseException:  # a refusal, or Ctrl-C while the connections open: the run's database goes too
        bench.close()
        session.end_target()
        raise
    env = session.environment(user_class, tally=OutcomeTally(lambda: [recorder.rows]))
    set_bench(env, bench)
    runner = env.create_local_runner()
    with session.signals(stop=runner.quit):
        session.start()
        session.stream(lambda: (recorder,), env)
        try:
            session.run_load(
                runner,
                env,
                stop=runner.quit,
                last_reached=lambda: bench.last_reached,
                refused=lambda: bench.connections.refused,
                chaos=chaos,
                unreachable_limit_s=unreachable_limit_s,
                on_progress=on_progress,
            )
        finally:
            # Whatever happened, close the pool and write what was recorded.
            result = session.finish(recorder, env, bench.close(), warmup=bench.warmup)
    result.report = session.write_report()
    return result
