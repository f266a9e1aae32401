"""``loadgen run``: a scenario file (or one run) headless, ``--resume`` of a sweep cut short, ``--ephemeral`` DSQL.

Loaded only for a run (loadgen.cli.main): Locust first, since gevent must patch the
standard library before anything imports psycopg; then the engine, which brings
pandas and pyarrow (matplotlib comes once the data is on disk, for the report:
loadgen.engine.session.write_report_or_warn).
"""

from __future__ import annotations

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

# isort: split

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from loadgen.cli import dsql as dsql_cli
from loadgen.cli.arguments import options_dialect, safe_argv, scenario_file_from_args, target_spec
from loadgen.cli.display import progress_view
from loadgen.cli.exits import EXIT_INTERRUPTED, EXIT_INVARIANT, EXIT_OK
from loadgen.cli.summary import format_summary
from loadgen.engine import interrupts, sweep
from loadgen.engine.chaos import Chaos
from loadgen.engine.distributed import DEFAULT_MASTER_PORT, Fleet, check_scale_out
from loadgen.engine.session import write_report_or_warn
from loadgen.errors import ConfigError
from loadgen.model import knobs
from loadgen.model.scenario import parse_duration
from loadgen.model.scenariofile import ScenarioFile
from loadgen.results import rundir
from loadgen.results.export import write_csv
from loadgen.results.fixed_cost import fixed_cost, process_start_time, record_fixed_cost
from loadgen.results.gates import EXIT_GATE, breach_lines
from loadgen.results.records import SweepRecord
from loadgen.targets.base import Target, check_cells
from loadgen.targets.spec import make_target

__all__ = ["cmd_run", "plan_run"]


def cmd_run(args: argparse.Namespace) -> int:
    """``loadgen run``; with ``--ephemeral``, inside a DSQL cluster of its own, every option checked before it is created."""
    if args.ephemeral:
        return dsql_cli.run_ephemeral(args, lambda: _run_or_resume(args), check=lambda: plan_run(args))
    return _run_or_resume(args)


def _run_or_resume(args: argparse.Namespace) -> int:
    interrupts.install()  # Ctrl-C and SIGTERM from here on, also in a process started in the background
    if args.resume is not None:
        return _resume(args)
    return _run(args)


def _chaos_from_args(args: argparse.Namespace) -> Chaos:
    return Chaos(
        kill_every_s=parse_duration(args.chaos_kill_every) if args.chaos_kill_every else None,
        kill_fraction=args.chaos_kill_fraction if args.chaos_kill_fraction is not None else 0.2,
        restart_at_s=parse_duration(args.chaos_restart_at) if args.chaos_restart_at else None,
    )


def _fleet_from_args(args: argparse.Namespace) -> Fleet | None:
    """The scale-out settings, or None for a single-process run."""
    if not (args.processes or args.master):
        if args.expect_workers or args.master_bind_host:
            raise ConfigError("--expect-workers and --master-bind-host are for --master")
        return None
    port = args.master_port or (0 if not args.master else DEFAULT_MASTER_PORT)
    expect = args.expect_workers or (1 if args.master and not args.processes else 0)
    return Fleet(
        processes=args.processes or 0,
        expect_workers=expect,
        bind_host=args.master_bind_host or "127.0.0.1",
        bind_port=port,
    )


def plan_run(args: argparse.Namespace) -> tuple[ScenarioFile, Target, Chaos, Fleet | None]:
    """What ``loadgen run`` will do, every option checked, before any database work (and, with
    ``--ephemeral``, before a cluster is created): (scenario file, target, chaos, fleet)."""
    # The command line's settings against its own target first: one DSQL refuses is named for DSQL.
    problem = knobs.options_problem(options_dialect(args), knobs.overrides_from_args(args))
    if problem:
        raise ConfigError(problem)
    sf = scenario_file_from_args(args)  # validate before any database work
    chaos = _chaos_from_args(args)
    parse_duration(args.unreachable_limit)
    fleet = _fleet_from_args(args)
    spec = target_spec(args, sf)  # the command line's target options over the file's [target]
    check_cells(spec.sql_dialect, sf.cells)  # every cell against the target, before any work
    target = make_target(spec)
    if chaos.active and target.kind == "dsql":
        raise ConfigError("fault injection (--chaos-*) is for PostgreSQL targets, not DSQL")
    if fleet is not None:
        check_scale_out(target, [c.scenario for c in sf.cells])  # before any database work
    return sf, target, chaos, fleet


def _run_options(args: argparse.Namespace, chaos: Chaos, fleet: Fleet | None) -> dict[str, Any]:
    return {
        "chaos": chaos,
        "unreachable_limit_s": parse_duration(args.unreachable_limit),
        "keep_db": args.keep_db,
        **({"fleet": fleet} if fleet else {}),
    }


def _run(args: argparse.Namespace) -> int:
    sf, target, chaos, fleet = plan_run(args)
    s0 = sf.cells[0].scenario
    what = (
        f"{len(sf.cells)} cells over {', '.join(sf.sweep_keys)}"
        if sf.is_sweep
        else (f"{s0.accounts} accounts, {s0.users} users, {s0.duration_s:g} s, {s0.distribution} keys")
    )
    name = "" if sf.name == "ad-hoc" else f" {sf.name}"
    modes = sorted({c.scenario.cc for c in sf.cells})
    latency = s0.latency
    rtt = f", rtt +{latency.rtt_ms:g} ms" if latency.active and not sf.is_sweep else ""
    print(f"loadgen run{name}: {what}, target {target.kind}, cc {'/'.join(modes)}{rtt}", flush=True)
    with progress_view(args.quiet, sf.name, sf.is_sweep) as view:
        result = sweep.run_file(
            sf,
            target,
            args.out,
            progress=view,
            command_line=["loadgen", *safe_argv(args.argv)],
            run_options=_run_options(args, chaos, fleet),
        )
    if result.is_sweep:
        print(sweep.format_sweep(result))
    else:
        run = result.results[0]
        # Known only now, the report written: the rest is printing and leaving (entry()).
        first, last = run.attempt_span or (None, None)
        fixed = fixed_cost(process_start_time(), first, last, time.time())
        if fixed is not None:
            record_fixed_cost(run.run_dir, fixed)
            run.client["fixed_cost_s"] = fixed
        print(format_summary(run))
    if result.report is not None:
        print(f"  report            {result.report}")
    _locust_style_outputs(args, result)
    if target.audit is not None and not report_dialect_check(target, result.out_dir):
        return EXIT_INVARIANT
    aborted = [r for r in result.results if r.aborted]
    if aborted:
        print(f"loadgen: run ended early: {aborted[0].aborted}; results so far are in {result.out_dir}", file=sys.stderr)
        return EXIT_INVARIANT
    if not result.invariants_hold:
        return EXIT_INVARIANT
    return _gates_exit(result)


def _resume(args: argparse.Namespace) -> int:
    """``loadgen run --resume SWEEP_DIR``: the sweep's recorded cells; target and run options from this command line."""
    if args.scenario or knobs.overrides_from_args(args):
        raise ConfigError("--resume runs the sweep's own cells as recorded: give no scenario or workload options with it")
    if not SweepRecord.exists(args.resume):
        raise ConfigError(f"--resume needs a sweep directory (with sweep.json): {args.resume}")
    target = make_target(target_spec(args))
    fleet = _fleet_from_args(args)
    with progress_view(args.quiet, args.resume.name, True) as view:
        result = sweep.resume(
            args.resume,
            target,
            progress=view,
            say=lambda line: print(line, flush=True),
            command_line=["loadgen", *safe_argv(args.argv)],
            run_options=_run_options(args, _chaos_from_args(args), fleet),
        )
    if result.results:
        print(sweep.format_sweep(result))
    if result.report is not None:
        print(f"  report            {result.report}")
    if any(r.aborted for r in result.results) or not result.invariants_hold:
        return EXIT_INVARIANT
    return _gates_exit(result)


def _gates_exit(result: Any) -> int:
    """After the invariants (which win): interrupted, else one line per breached gate and exit 3, else 0."""
    if not result.completed:
        return EXIT_INTERRUPTED
    lines = []
    for run in result.results:
        where = "" if len(result.results) == 1 else f" (cell {run.run_dir.name})"
        lines += breach_lines(run.gates, where)
    for line in lines:
        print(f"loadgen: {line}", file=sys.stderr, flush=True)
    return EXIT_GATE if lines else EXIT_OK


def _locust_style_outputs(args: argparse.Namespace, result: Any) -> None:
    """``--csv PREFIX`` and ``--html FILE``, as Locust's headless runs write them (loadgen's numbers)."""
    if args.csv and result.results:
        for path in write_csv([r.run_dir for r in result.results], args.csv):
            print(f"  csv               {path}")
    if args.html and result.results:
        html = write_report_or_warn([result.out_dir], args.html)  # a failure is said in one line: the data is safe
        if html is not None:
            print(f"  html              {html}")


def report_dialect_check(target: Target, run_dir: Path) -> bool:
    """After a ``--dialect dsql`` run: check the audited traffic, write dialect-check.json, say it in
    one line; True when clean (or nothing was audited)."""
    audit = target.audit
    if audit is None:
        return True
    try:
        findings = audit.check()
    finally:
        audit.cleanup()
    rundir.write_dialect_check(run_dir, findings, audit.connections)
    violations = findings.to_dict()["violations"]
    print(
        f"dialect dsql: {findings.statements} statements in {findings.transactions} transactions over "
        f"{audit.connections} connections checked, {len(violations)} breaking DSQL's rules"
    )
    for v in violations[:10]:
        print(f"  {v['rule']}: {v['statement']}")
    return findings.ok
