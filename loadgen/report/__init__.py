"""The contention report: attempt tables -> metrics -> charts -> one self-contained HTML file.

Library API (the CLI and the notebook use the same):

- :func:`load_study` / :func:`load_run` read run and sweep directories;
- :func:`analyse_runs` reduces runs to :class:`Cell` metrics (pure functions in ``analysis``);
- :func:`build_report` / :func:`write_report` render the HTML page (``loadgen report`` calls
  :func:`write_report`, and so does ``loadgen run`` through loadgen.engine.session.write_report_or_warn;
  :func:`write_run_report` writes one run's ``report.html``).

The page is put together from ``html`` (primitives), ``page`` (the shell), ``sections``
(one module per section, named as its id) and ``compare`` (the ``--compare`` page).
"""

from loadgen.report.build import REPORT_FILE, build_report, write_report, write_run_report
from loadgen.report.cells import Cell, analyse_run, analyse_runs, cells_frame, find_baseline, warnings_for
from loadgen.report.data import ReportInputError, Run, Study, load_run, load_study, report_frame

__all__ = [
    "REPORT_FILE",
    "build_report",
    "write_report",
    "write_run_report",
    "Cell",
    "analyse_run",
    "analyse_runs",
    "cells_frame",
    "find_baseline",
    "warnings_for",
    "ReportInputError",
    "Run",
    "Study",
    "report_frame",
    "load_run",
    "load_study",
]
