"""The ``loadgen`` command line: thin commands over the library, a module each (``command.entry`` is the entry point,
``main.load_command`` the one place a command's modules are loaded).

Anything the user can fix ends as one line on stderr and exit code 2.
"""
