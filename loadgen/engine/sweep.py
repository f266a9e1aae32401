"""Sweeps: run every cell of a scenario file, each on a freshly reset bank, into one directory.

A sweep directory holds a sub-directory per cell (the run contract: attempts.parquet
with a ``cell`` column, run.json with a ``cell`` field) and ``sweep.json``, an index
of every cell's settings, status and summary. ``sweep.json`` is rewritten after
every cell, so an interrupted sweep keeps its finished cells; the rest say
``not run``, and ``loadgen run --resume SWEEP_DIR`` (:func:`resume`) runs them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadgen.engine import runner
from loadgen.engine.load import workload_for
from loadgen.engine.master import run_distributed
from loadgen.engine.options import RunOptions
from loadgen.engine.progress import ProgressView
from loadgen.engine.session import RunResult, prepare_out_dir, write_report_or_warn
from loadgen.errors import ConfigError, LoadgenError
from loadgen.model.baseline import TALK_RETRY_CONFLICT_RATE, axis, load_label
from loadgen.model.knobs import scenario_from_dict
from loadgen.model.scenariofile import Cell, ScenarioFile
from loadgen.results.metrics import CONFLICT_RATE, KIND_LABELS, breakdown
from loadgen.results.records import SWEEP_FILE, RecordError, SweepRecord
from loadgen.results.rundir import read_run
from loadgen.results.warnings import workload_warnings
from loadgen.targets.base import Target, check_cells

__all__ = ["SweepResult", "run_file", "run_cell", "resume", "format_sweep", "CUT_OFF_DIR"]

#: Cell status in sweep.json.
DONE, INTERRUPTED, ABORTED, FAILED, NOT_RUN = "done", "interrupted", "aborted", "failed", "not run"
#: Where ``--resume`` moves a cell's directory cut off mid-way, before running the cell again.
CUT_OFF_DIR = ".cut-off"


@dataclass
class SweepResult:
    """What a scenario file's run produced: one run directory, or a sweep directory of cells."""

    out_dir: Path
    is_sweep: bool
    results: list[RunResult] = field(default_factory=list)
    cells: list[dict[str, Any]] = field(default_factory=list)
    completed: bool = True
    report: Path | None = None  # report.html of the run or the sweep

    @property
    def invariants_hold(self) -> bool:
        return all(r.invariants_hold for r in self.results)


def run_cell(
    cell: Cell,
    target: Target,
    out: Path,
    *,
    run_id: str | None = None,
    on_progress: Callable[[float, Any], None] | None = None,
    command_line: list[str] | None = None,
    sweep: dict[str, Any] | None = None,
    run_options: dict[str, Any] | None = None,
) -> RunResult:
    """One cell as a run: reset, run its load model, check, write; its results tagged with the cell."""
    user_class, extra = workload_for(cell.scenario)
    options = dict(run_options or {})
    fleet = options.pop("fleet", None)  # worker processes (--processes), or None: users run here
    workload: dict[str, Any] = {}

    def annotations() -> dict[str, Any]:
        # Called once the users have stopped: the load model's own figures are final.
        workload.update(extra())
        return {"cell": cell.to_dict() if sweep else None, "sweep": sweep, **workload}

    run_as = RunOptions(
        user_class=user_class,
        on_progress=on_progress,
        command_line=command_line,
        run_id=run_id,
        cell=cell.slug if sweep else None,
        annotations=annotations,
        **options,
    )
    if fleet is not None:
        result = run_distributed(cell.scenario, target, out, fleet, run_as)
    else:
        result = runner.run(cell.scenario, target, out, run_as)
    result.notes = workload_warnings(workload)
    return result


def _cell_line(s: dict[str, Any]) -> str:
    rate = s.get("conflict_rate")
    tput = s.get("throughput_commits_per_s")
    p50 = (s.get("transaction_latency_ms") or {}).get("p50")
    kinds = breakdown(s.get("conflicts_by_kind") or {}, KIND_LABELS)
    return (
        f"{CONFLICT_RATE} {'-' if rate is None else format(rate, '.2%')}  commits {s['commits']:,}"
        f"  {'-' if tput is None else format(tput, '.0f')}/s"
        f"  txn p50 {'-' if p50 is None else format(p50, '.1f')} ms" + (f"  (conflicts: {kinds})" if kinds else "")
    )


def run_file(
    sf: ScenarioFile,
    target: Target,
    out: Path,
    *,
    progress: ProgressView | None = None,
    command_line: list[str] | None = None,
    run_options: dict[str, Any] | None = None,
) -> SweepResult:
    """Run a scenario file: a single cell writes one run directory; a sweep writes a sweep directory.

    ``progress`` hears every cell start, a tick a second and every cell's end (None: quiet).
    ``run_options`` go to every cell's ``runner.run`` (fault injection, watchdog limit).
    """
    check_cells(target.dialect, sf.cells)  # every cell, before any work
    on_progress = progress.tick if progress is not None else None

    if not sf.is_sweep:
        (cell,) = sf.cells
        if progress is not None:
            progress.cell_started(0, 1, cell.label, cell.scenario.duration_s)
        run = run_cell(cell, target, out, on_progress=on_progress, command_line=command_line, run_options=run_options)
        if progress is not None:
            progress.cell_done(0, 1, cell.label, _cell_line(run.summary))
        for note in run.notes:
            print(f"  warning: {note}", flush=True)
        return SweepResult(run.run_dir, False, [run], completed=run.completed, report=run.report)

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    sweep_dir = prepare_out_dir(out, f"sweep-{sf.name}-{stamp}")
    # Each cell's whole scenario is kept, so that --resume runs exactly what was asked.
    entries: list[dict[str, Any]] = [
        {**c.to_dict(), "status": NOT_RUN, "run_dir": None, "summary": None, "scenario": c.scenario.to_dict()} for c in sf.cells
    ]
    index = SweepRecord(
        name=sf.name,
        description=sf.description,
        source=sf.source,
        sweep_keys=list(sf.sweep_keys),
        target=target.describe(),
        command_line=command_line,
        started_at=datetime.now(UTC).isoformat(),
        cells=entries,
    )
    with _sweep_lock(sweep_dir):
        return _run_cells(sweep_dir, index, list(sf.cells), target, progress, command_line, run_options)


def resume(
    sweep_dir: Path,
    target: Target,
    *,
    progress: ProgressView | None = None,
    say: Callable[[str], None] = print,
    command_line: list[str] | None = None,
    run_options: dict[str, Any] | None = None,
) -> SweepResult:
    """Run the cells of ``sweep_dir`` that did not finish (killed, interrupted, failed), into the same directory.

    A cell cut off mid-way is moved aside to ``.cut-off/`` first, so the sweep's report
    covers each cell once; the report is rewritten over all cells. ``say`` hears what is resumed.
    """
    try:
        index = SweepRecord.read(sweep_dir)
    except RecordError:
        raise ConfigError(f"--resume needs a sweep directory (with a readable sweep.json): {sweep_dir}") from None
    entries = index.cells
    try:
        cells = [Cell(int(e["index"]), dict(e["settings"]), scenario_from_dict(e["scenario"])) for e in entries]
    except (KeyError, TypeError, ValueError, LoadgenError):
        raise ConfigError(
            f"{sweep_dir / SWEEP_FILE} does not hold every cell's scenario (written by an older loadgen): cannot resume it"
        ) from None
    kind = index.target.get("kind")
    if kind and kind != target.kind:
        raise ConfigError(f"the sweep ran on target {kind}; resume it there (--target {kind}), not on {target.kind}")
    check_cells(target.dialect, cells)
    for e in entries:  # the sweep's report reads every finished cell: refuse one this loadgen cannot read now, not after the run
        if e.get("status") == DONE and e.get("run_dir"):
            read_run(sweep_dir / str(e["run_dir"]))
    with _sweep_lock(sweep_dir):
        todo = [c for c, e in zip(cells, entries) if e.get("status") != DONE]
        if not todo:
            say(f"nothing to resume: all {len(cells)} cells of {sweep_dir} are done")
            return SweepResult(sweep_dir, True, cells=entries, completed=True)
        say(f"resuming {index.name or sweep_dir.name}: {len(todo)} of {len(cells)} cells to run")
        aside = sweep_dir / CUT_OFF_DIR
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        for cell in todo:
            partial = sweep_dir / cell.slug
            if partial.exists():
                aside.mkdir(exist_ok=True)
                partial.replace(aside / f"{cell.slug}-{stamp}")
            entry = entries[cell.index]
            entry.update(status=NOT_RUN, run_dir=None, summary=None)
            for stale in ("error", "notes", "violated", "invariants_hold", "aborted"):
                entry.pop(stale, None)
        index.extra["resumed_at"] = [*index.extra.get("resumed_at", []), datetime.now(UTC).isoformat()]
        index.ended_at = None
        index.completed = False
        return _run_cells(sweep_dir, index, todo, target, progress, command_line, run_options)


def _run_cells(
    sweep_dir: Path,
    index: SweepRecord,
    cells: list[Cell],
    target: Target,
    progress: ProgressView | None,
    command_line: list[str] | None,
    run_options: dict[str, Any] | None,
) -> SweepResult:
    """Run ``cells`` of the sweep in order, rewriting sweep.json around every cell; the sweep's report at the end.

    Ctrl-C or SIGTERM (:mod:`loadgen.engine.interrupts`) during a cell stops that cell
    gracefully; between cells it stops the sweep there. Either way the finished cells are kept
    and the rest say ``not run``, for ``--resume``.
    """
    entries = index.cells
    index.write(sweep_dir)
    result = SweepResult(sweep_dir, True, cells=entries, completed=False)
    n = len(entries)
    sweep_ref = {"name": index.name, "dir": str(sweep_dir), "cells": n}
    on_progress = progress.tick if progress is not None else None
    interrupted = False
    try:
        for position, cell in enumerate(cells):
            entry = entries[cell.index]
            # A distributed sweep keeps its remote workers from one cell to the next (not after the last).
            keep = (run_options or {}).get("fleet") is not None and position < len(cells) - 1
            if progress is not None:
                progress.cell_started(cell.index, n, cell.label, cell.scenario.duration_s)
            entry["status"] = "running"
            index.write(sweep_dir)
            run = run_cell(
                cell,
                target,
                sweep_dir,
                run_id=cell.slug,
                on_progress=on_progress,
                command_line=command_line,
                sweep=sweep_ref,
                run_options={**(run_options or {}), "keep_workers": keep},
            )
            result.results.append(run)
            entry.update(
                status=ABORTED if run.aborted else DONE if run.completed else INTERRUPTED,
                run_dir=run.run_dir.name,
                summary=run.summary,
                invariants_hold=run.invariants_hold,
                aborted=run.aborted,
                scenario=cell.scenario.to_dict(),
                notes=run.notes,
                warnings=run.warnings,
                gates=run.gates,
                violated=[i.name for i in run.invariants if not i.ok],
            )
            index.write(sweep_dir)
            if progress is not None:
                progress.cell_done(cell.index, n, cell.label, _cell_line(run.summary))
            if entry["violated"]:
                print(f"  cell {cell.index + 1}: VIOLATED {', '.join(entry['violated'])}", flush=True)
            for note in run.notes:
                print(f"  warning: cell {cell.index + 1}: {note}", flush=True)
            if run.aborted or not run.completed:
                interrupted = not run.aborted
                break
        else:
            result.completed = all(e["status"] == DONE for e in entries)
    except KeyboardInterrupt:
        # Between cells, or while a cell set up: the cell under way never ran its load.
        interrupted = True
        for entry in entries:
            if entry["status"] == "running":
                entry["status"] = NOT_RUN
    except BaseException as e:
        for entry in entries:
            if entry["status"] == "running":
                entry["status"] = FAILED
                entry["error"] = str(e) or type(e).__name__
        raise
    finally:
        index.ended_at = datetime.now(UTC).isoformat()
        index.completed = result.completed
        index.write(sweep_dir)
    if interrupted:
        # As a single run after Ctrl-C: the data is written, leaving quickly matters more than charts.
        print(f"loadgen: sweep stopped; `loadgen run --resume {sweep_dir}` runs the cells not finished", file=sys.stderr)
    elif result.results:
        result.report = write_report_or_warn([sweep_dir])  # every cell in one report
    return result


@contextlib.contextmanager
def _sweep_lock(sweep_dir: Path) -> Iterator[None]:
    """Held while a process runs the sweep: a second ``--resume`` of it is refused, not run twice."""
    fd = os.open(sweep_dir / ".running", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"{sweep_dir} is being run by another loadgen process right now") from None
        yield
    finally:
        os.close(fd)


def format_sweep(result: SweepResult) -> str:
    """The sweep's closing table: one line per cell, the conflict rate first; the talk's conditions
    (loadgen.model.baseline) marked as the baseline with the published figure beside it, each cell's
    load named so that the hot-spot axis (the talk's load) and the concurrency axis (closed-loop users)
    read apart."""
    head = f"  {'cell':<4} {'axis':<11} {'accounts':>8}  {'load':<24} {CONFLICT_RATE:>13}  {'commits/s':>9}  {'attempt p50':>11}  status"
    lines = ["", head]
    baseline = False
    for i, e in enumerate(result.cells, start=1):
        s = e.get("summary") or {}
        scen = e.get("scenario") or {}
        rate = s.get("conflict_rate")
        tput = s.get("throughput_commits_per_s")
        p50 = (s.get("attempt_latency_ms") or {}).get("p50")
        where = axis(scen)
        baseline = baseline or where == "baseline"
        violated = "  VIOLATED " + ", ".join(e["violated"]) if e.get("violated") else ""
        # Figures the run cannot vouch for are flagged beside them (the warnings, by their first words).
        why = sorted({w.split(": ", 1)[-1].split(":")[0].split(" (")[0] for w in e.get("warnings") or []})
        violated += f"  WARNED: {'; '.join(why)}" if why else ""
        kinds = breakdown(s.get("conflicts_by_kind") or {}, KIND_LABELS)
        lines.append(
            f"  {i:<4} {where:<11} {scen.get('accounts', 0):>8,}  {load_label(scen):<24}"
            f" {'-' if rate is None else format(rate, '.2%'):>13}  {'-' if tput is None else format(tput, ',.0f'):>9}"
            f"  {'-' if p50 is None else format(p50, ',.1f') + ' ms':>11}  {e['status']}{violated}"
        )
        if kinds:
            lines.append(f"  {'':<4} {'':<11} {'':>8}  {'conflicts: ' + kinds}")
    if baseline:
        lines.append(
            f"  published, the talk's immediate-retry row: {CONFLICT_RATE} {TALK_RETRY_CONFLICT_RATE:.2%} "
            "(735 conflicts / 10,735 attempts), the same definition as the baseline's"
        )
    if not result.completed:
        lines.append("  sweep interrupted: finished cells kept, the rest marked not run")
    lines.append(f"  results           {result.out_dir}")
    return "\n".join(lines)
