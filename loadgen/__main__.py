"""``python -m loadgen``: the same as the ``loadgen`` command."""

from loadgen.cli.command import entry

entry()
