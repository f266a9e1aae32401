"""Errors loadgen reports to its user as one line and exit code 2."""

from __future__ import annotations

__all__ = ["LoadgenError", "ConfigError", "TargetError", "OutputError", "first_line"]


class LoadgenError(Exception):
    """Something the user can fix; the CLI prints it as one line and exits 2."""


class ConfigError(LoadgenError):
    """A setting is missing, of the wrong type or out of range."""


class TargetError(LoadgenError):
    """The database cannot be reached, started or used as asked."""


class OutputError(LoadgenError):
    """Results cannot be written where the user asked."""


def first_line(e: BaseException) -> str:
    """An exception as one line for the user: its message's first line (drivers add detail lines), or its type's name."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
