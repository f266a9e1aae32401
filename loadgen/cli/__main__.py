"""``python -m loadgen.cli``: the same as the ``loadgen`` command."""

from loadgen.cli.command import entry

entry()
