"""Where the repository's own files are, for the tests that read them (the package's source,
scenario files, notebooks, pyproject.toml), wherever under tests/ the test sits."""

from __future__ import annotations

from pathlib import Path

__all__ = ["PACKAGE", "REPO"]

#: The repository's top directory (the one holding pyproject.toml).
REPO = Path(__file__).resolve().parent.parent
#: The ``loadgen`` package's sources.
PACKAGE = REPO / "loadgen"
