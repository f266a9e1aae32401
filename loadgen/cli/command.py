"""The ``loadgen`` command as a process: its modules loaded with the garbage collector paused, and its exit.

Apart from ``main`` so that nothing is imported before the collector is paused.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from typing import NoReturn

__all__ = ["entry"]


def entry() -> NoReturn:
    """The ``loadgen`` command: its modules loaded and frozen first (the command's own too), then run; then leave without tearing down.

    Locust, pandas, psycopg and their kin make about 200,000 objects the collector
    tracks, which live as long as the process. The collector's passes over them while
    they load were a tenth of the start-up's CPU, and every later full collection walked
    them again (two fifths of a run report's CPU). So the collector pauses while they load, and ``gc.freeze``
    keeps them out of every later collection, during the run too.

    When ``main`` returns everything is written and closed; what remains is Python
    freeing every module (pandas, matplotlib, Locust), which took 0.3-1.3 s: a second
    of every run's fixed cost (BENCHMARKS.md). Output and log handlers are flushed first.
    """
    gc.disable()
    from loadgen.cli.main import prepare  # lazy: after the collector is paused, a measured start-up cost (docstring)

    command = prepare()  # the command line parsed and its command's modules loaded (Locust, pandas...)
    gc.freeze()
    gc.enable()
    code = command()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
