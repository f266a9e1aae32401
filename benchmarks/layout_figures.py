"""The layout's figures for issue 23's closing note: modules, largest functions, import cycles
(run-time and type-level), function-level imports of loadgen's own modules, and the places
outside loadgen.results that parse run.json or open attempts.parquet themselves.

    python benchmarks/layout_figures.py

(Of the worktree it sits in: the cycles and readers come from tests/test_layout.py's checker.)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_layout import PACKAGE, _cycles, _graph, function_level_imports, run_dir_readers  # noqa: E402


def main() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    sizes = []
    for path in files:
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                sizes.append(((fn.end_lineno or fn.lineno) - fn.lineno + 1, f"{path.relative_to(PACKAGE.parent)}:{fn.name}"))
    sizes.sort(reverse=True)
    print(f"modules: {len(files)}")
    print(f"functions over 90 lines: {sum(1 for n, _ in sizes if n > 90)}")
    print("largest functions: " + ", ".join(f"{name} {n}" for n, name in sizes[:6]))
    for label, type_level in (("run-time", False), ("type-level", True)):
        graph = _graph(type_level=type_level)
        graph = {m: {d for d in ds if not (m.startswith(d + ".") or d.startswith(m + "."))} for m, ds in graph.items()}
        print(f"cycles ({label}): {_cycles(graph)}")
    print(f"function-level imports of loadgen modules: {len(function_level_imports())}")
    readers = run_dir_readers()
    print(f"modules outside results/ reading run directory files themselves: {len(readers)} {readers}")


if __name__ == "__main__":
    main()
