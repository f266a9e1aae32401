"""The ``loadgen`` command line: thin commands over the library (``main.main`` is the entry point).

Anything the user can fix ends as one line on stderr and exit code 2.
"""
