"""The command's exit codes: what a script can tell apart (a breached gate's 3 is loadgen.results.gates.EXIT_GATE)."""

from __future__ import annotations

__all__ = ["EXIT_OK", "EXIT_INVARIANT", "EXIT_USAGE", "EXIT_INTERRUPTED"]

EXIT_OK = 0
#: A broken invariant, a run ended early, a statement DSQL would refuse.
EXIT_INVARIANT = 1
#: Anything the user can fix: one line on stderr.
EXIT_USAGE = 2
#: Ctrl-C or SIGTERM (as a shell reports a process killed by SIGINT).
EXIT_INTERRUPTED = 130
