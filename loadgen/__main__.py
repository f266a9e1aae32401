"""``python -m loadgen``: the same as the ``loadgen`` command."""

from loadgen.cli.main import entry

entry()
