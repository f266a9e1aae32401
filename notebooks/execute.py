"""Execute a notebook and write it with its outputs: ``python notebooks/execute.py [SRC [DST]]``.

With no arguments it re-executes notebooks/contention.ipynb in place against the sample
run shipped beside it (notebooks/sample-quickstart), which is how the committed copy is
made. ``LOADGEN_RUN`` names another run or sweep directory. The kernel runs in the
notebook's own directory, with this checkout's loadgen first on its path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbclient
import nbformat

HERE = Path(__file__).resolve().parent


def execute(src: Path, dst: Path, timeout: int = 300) -> nbformat.NotebookNode:
    """Run every cell of ``src`` (in its directory) and write the result to ``dst``, even if a cell fails."""
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
    nb = nbformat.read(src, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", record_timing=False, resources={"metadata": {"path": str(src.parent)}}
    )
    try:
        client.execute()
    finally:
        nbformat.write(nb, dst)
    return nb


if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "contention.ipynb"
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else src
    execute(src, dst)
    print(f"executed {src} -> {dst}")
