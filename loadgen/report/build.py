"""The report's library API: paths in, one self-contained HTML file out."""

from __future__ import annotations

from pathlib import Path

from loadgen.report.cells import Cell, analyse_runs
from loadgen.report.compare import compare_page
from loadgen.report.data import ReportInputError, Study, load_study
from loadgen.report.html import esc
from loadgen.report.page import render_page
from loadgen.report.sections import study_nav, study_sections
from loadgen.report.whatif import whatif_for
from loadgen.results.client import collector_paused

__all__ = ["build_report", "write_report", "write_run_report", "REPORT_FILE"]

REPORT_FILE = "report.html"


def _subtitle(studies: list[Study], cells: list[Cell]) -> str:
    kinds = ", ".join(f"{'sweep' if s.is_sweep else 'run'} {esc(s.path)}" for s in studies)
    return f"{len(cells)} cell{'s' if len(cells) != 1 else ''} from {kinds}"


def build_report(paths: list[Path | str], compare: bool = False) -> str:
    """The report's HTML for any mix of run and sweep directories (two of them with ``compare``)."""
    if not paths:
        raise ReportInputError("give at least one run or sweep directory")
    with collector_paused():  # a bounded burst of objects (frames, figures): the collector's passes cost two fifths
        return _build_report(paths, compare)


def _build_report(paths: list[Path | str], compare: bool) -> str:
    studies = [load_study(p) for p in paths]
    if compare:
        if len(studies) != 2:
            raise ReportInputError(f"--compare takes exactly two runs or sweeps, got {len(studies)}")
        return compare_page(studies[0], studies[1])
    runs = [r for s in studies for r in s.runs]
    cells = analyse_runs(runs)
    body = study_sections(cells, whatif=whatif_for(cells))
    title = "loadgen contention report: " + (studies[0].label if len(studies) == 1 else f"{len(studies)} sources")
    return render_page(title, _subtitle(studies, cells), body, study_nav(body))


def write_report(paths: list[Path | str], out: Path | str | None = None, compare: bool = False) -> Path:
    """Write the report; by default ``report.html`` (or ``compare.html``) inside the first path."""
    html = build_report(paths, compare=compare)
    if out is None:
        first = Path(paths[0])
        base = first.parent if first.is_file() else first
        out = base / ("compare.html" if compare else REPORT_FILE)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(out)
    except OSError as e:
        raise ReportInputError(f"cannot write the report to {out}: {e.strerror or e}") from None
    return out


def write_run_report(run_dir: Path | str) -> Path:
    """``report.html`` inside one run directory (what ``loadgen run`` calls at its end)."""
    return write_report([Path(run_dir)], Path(run_dir) / REPORT_FILE)
