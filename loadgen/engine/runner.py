"""A headless run: users in this process for the scenario's duration, through one RunSession.

Locust is used as a library (an Environment and a local runner), so a run needs no
Locust command line and every count stays in this process.
"""

from __future__ import annotations

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

# isort: split

from pathlib import Path

from loadgen.engine.options import RunOptions
from loadgen.engine.progress import OutcomeTally
from loadgen.engine.session import RunResult, RunSession
from loadgen.engine.users import SharedUserState, check_client_capacity, share_user_state
from loadgen.model.scenario import Scenario
from loadgen.results.recorder import AttemptRecorder
from loadgen.targets.base import Target

__all__ = ["RunResult", "RunOptions", "run"]


def run(scenario: Scenario, target: Target, out: Path, options: RunOptions = RunOptions()) -> RunResult:
    """Run one scenario against one target; write ``out/<run id>/`` (a sweep names its cells' ids).

    Users run in this process; loadgen.engine.master.run_distributed runs them in workers.
    The run works in its own database (embedded; dropped at the end unless ``options.keep_db``) or schema.
    """
    chaos = options.chaos
    session = RunSession(
        scenario, target, run_id=options.run_id, command_line=options.command_line, annotations=options.annotations, keep_db=options.keep_db
    )
    check_client_capacity(scenario.users)  # before the target is resized for them
    session.prepare(out, exclusive=chaos is not None and chaos.restarts_server)
    recorder = AttemptRecorder(session.run_id, cell=options.cell)
    shared = SharedUserState(scenario, target, recorder)
    try:
        shared.warm_up()  # every connection open before the clock starts
    except BaseException:  # a refusal, or Ctrl-C while the connections open: the run's database goes too
        shared.close()
        session.abandon()
        raise
    env = session.environment(options.user_class, tally=OutcomeTally(lambda: [recorder.rows]))
    share_user_state(env, shared)
    runner = env.create_local_runner()
    with session.signals(stop=runner.quit):
        session.start()
        session.stream(lambda: (recorder,), env)
        try:
            session.run_load(
                runner,
                env,
                stop=runner.quit,
                last_reached=lambda: shared.last_reached,
                refused=lambda: shared.connections.refused,
                chaos=chaos,
                unreachable_limit_s=options.unreachable_limit_s,
                on_progress=options.on_progress,
            )
        finally:
            # Whatever happened, close the pool and write what was recorded.
            result = session.finish(recorder, env, shared.close(), warmup=shared.warmup)
    result.report = session.closing_report()
    return result
