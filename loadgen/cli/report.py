"""``loadgen report PATH...``: the HTML contention report of runs or sweeps, a killed run recovered first (said so).

Loaded only for this command (loadgen.cli.main): pandas, pyarrow and matplotlib.
"""

from __future__ import annotations

import argparse

from loadgen.cli.exits import EXIT_OK
from loadgen.report import write_report
from loadgen.results.rundir import recover_cut_off

__all__ = ["cmd_report"]


def cmd_report(args: argparse.Namespace) -> int:
    # Recovering a killed run writes (attempts.parquet written from its parts, its run.json marked cut off):
    # a step of its own, said out loud, never a side effect of reading.
    for path in args.paths:
        for recovered in recover_cut_off(path):
            print(recovered.describe())
    out = write_report(args.paths, args.output, compare=args.compare)
    print(f"report: {out}")
    return EXIT_OK
