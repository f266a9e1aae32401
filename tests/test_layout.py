"""The package's layout holds: dependencies point one way, no import cycle exists (not even
one for type checkers only), and only ``loadgen.results`` opens a run directory's files.

Reads every module's imports (function-level ones included) with ``ast``; needs no
database. A new import that points the wrong way, or closes a cycle, fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "loadgen"

#: Each subpackage's layer: a module may import only from its own layer or lower ones.
#: model -> db, targets -> results -> engine -> ui -> cli; report reads results and model.
LAYERS = {
    "errors": 0,
    "gcpause": 0,
    "model": 1,
    "db": 2,
    "targets": 2,
    "results": 3,
    "report": 4,
    "engine": 4,
    "ui": 5,
    "cli": 6,
    "__main__": 6,
}
#: Layers a subpackage must not import even though they are lower (report is a pure reader).
FORBIDDEN = {"report": {"db", "targets", "engine"}}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, type_level: bool = False) -> set[str]:
    """Every ``loadgen`` module ``path`` imports, at any depth of the file; with ``type_level``,
    also those imported for type checkers only (under ``if TYPE_CHECKING:``)."""
    return _imports_in(ast.parse(path.read_text(), str(path)), type_level)


def _imports_in(tree: ast.AST, type_level: bool = False) -> set[str]:
    for node in ast.walk(tree):  # imports for type checkers only are no run-time dependency
        if not type_level and isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("loadgen"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("loadgen") and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(
                    sub
                    if (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").exists()
                    or (PACKAGE.parent / sub.replace(".", "/") / "__init__.py").exists()
                    else node.module
                )
    return found


def _graph(type_level: bool = False) -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path, type_level) if m in modules and m != name} for name, path in modules.items()}


def _area(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_belongs_to_a_layer() -> None:
    unplaced = sorted(m for m in _graph() if m != "loadgen" and _area(m) not in LAYERS)
    assert not unplaced, f"modules outside the layout (add them to a subpackage): {unplaced}"


def test_dependencies_point_one_way() -> None:
    wrong = []
    for module, deps in _graph().items():
        area = _area(module)
        if area is None:
            continue
        for dep in deps:
            dep_area = _area(dep)
            if dep_area is None or dep_area == area:
                continue
            if LAYERS[dep_area] > LAYERS[area] or dep_area in FORBIDDEN.get(area, set()):
                wrong.append(f"{module} -> {dep}")
    assert not wrong, "imports that point the wrong way: " + ", ".join(sorted(wrong))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("type_level", [False, True], ids=["run-time", "type-level"])
def test_no_import_cycle(type_level: bool) -> None:
    """Not even for type checkers: a cycle under TYPE_CHECKING is still two modules that
    cannot be read apart (break it with a Protocol, as psycopg_pool's abc.py does)."""
    graph = _graph(type_level)
    # A package's __init__ re-exporting its own modules is not a cycle between concepts.
    graph = {m: {d for d in deps if not (m.startswith(d + ".") or d.startswith(m + "."))} for m, deps in graph.items()}
    assert _cycles(graph) == []


def test_type_level_imports_count_as_edges() -> None:
    routes = PACKAGE / "ui" / "routes.py"
    assert _imports(routes) <= _imports(routes, type_level=True)
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from loadgen.errors import LoadgenError\n"
    assert _imports_in(ast.parse(source), type_level=False) == set()
    assert _imports_in(ast.parse(source), type_level=True) == {"loadgen.errors"}


#: A run directory's files: only loadgen.results reads or writes them (loadgen.results.rundir).
RUN_DIR_FILES = ("run.json", "sweep.json", "attempts.parquet")


def _opens_run_dir_file(tree: ast.AST) -> list[int]:
    """Lines where a module builds a path to a run directory's file, or reads Parquet or JSON files itself."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            right = node.right
            if isinstance(right, ast.Constant) and isinstance(right.value, str) and right.value.endswith(RUN_DIR_FILES):
                lines.append(node.lineno)  # run_dir / "run.json"
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and node.value.value in RUN_DIR_FILES:
            lines.append(node.lineno)  # a constant of its own: RUN_FILE = "run.json"
        elif isinstance(node, ast.Call):
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.endswith(RUN_DIR_FILES):
                    lines.append(node.lineno)  # open("run.json"), glob("*/run.json"), Path("attempts.parquet")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [f"{node.module}.{a.name}" for a in node.names]
            if any(n.startswith("pyarrow.parquet") for n in names):
                lines.append(node.lineno)  # Parquet reading and writing belongs to results
    return lines


def run_dir_readers() -> list[str]:
    """Modules outside loadgen.results that open a run directory's files themselves (with the lines)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if _area(_module_name(path)) == "results":
            continue
        lines = _opens_run_dir_file(ast.parse(path.read_text(), str(path)))
        if lines:
            found.append(f"{_module_name(path)}:{','.join(map(str, sorted(set(lines))))}")
    return found


def test_only_results_opens_a_run_directory() -> None:
    assert run_dir_readers() == [], "read and write run directories through loadgen.results.rundir"


def test_the_checker_sees_a_module_opening_run_json() -> None:
    assert _opens_run_dir_file(ast.parse('json.loads((d / "run.json").read_text())')) == [1]
    assert _opens_run_dir_file(ast.parse('for p in path.glob("*/run.json"): pass')) == [1]
    assert _opens_run_dir_file(ast.parse("import pyarrow.parquet as pq")) == [1]
    assert _opens_run_dir_file(ast.parse('RUN_FILE = "run.json"')) == [1]
    assert _opens_run_dir_file(ast.parse('d / RUN_FILE; help = "attempts.parquet and run.json"')) == []


def test_the_checker_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    with pytest.raises(AssertionError):
        assert _cycles({"a": {"b"}, "b": {"a"}}) == []


def _same_bodies(modules: dict[str, str]) -> list[list[str]]:
    """Module-level functions that are the same code (their parameters' names aside), grouped. Code
    calling its own module's names (``_joint_withdrawal`` in db/occ.py and db/shapes.py) means
    something else in each module: not the same."""
    seen: dict[str, list[str]] = {}
    for module, source in modules.items():
        tree = ast.parse(source)
        own_names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        own_names |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef):
                continue
            params = {a.arg: f"arg{i}" for i, a in enumerate(node.args.args)}
            body = [s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]  # docstring
            local = False
            for n in ast.walk(ast.Module(body=body, type_ignores=[])):
                if isinstance(n, ast.Name):
                    local |= n.id in own_names
                    n.id = params.get(n.id, n.id)
            if body:
                key = ast.dump(ast.Module(body=body, type_ignores=[])) + (module if local else "")
                seen.setdefault(key, []).append(f"{module}.{node.name}")
    return sorted(names for names in seen.values() if len(names) > 1)


#: Written twice and known (each pair is one helper to keep: left for the lanes that own these files).
KNOWN_TWICE = [
    ["loadgen.cli.dsql._float", "loadgen.cli.main._number"],  # argparse's number type
    ["loadgen.model.scenariofile._fmt", "loadgen.report.cells._fmt_setting"],  # a setting's value as text
    ["loadgen.report.modelfit._number", "loadgen.results.warnings._n"],  # a scenario's number, 0 when missing
]


def test_no_helper_is_written_twice() -> None:
    """One place for each thing: a helper two modules need lives in one and is imported by the other
    (an exception's first line: loadgen.errors.first_line; a share as a percentage: results.metrics.percent)."""
    modules = {_module_name(p): p.read_text() for p in sorted(PACKAGE.rglob("*.py"))}
    assert [names for names in _same_bodies(modules) if names not in KNOWN_TWICE] == []


def test_the_checker_sees_a_helper_written_twice() -> None:
    twice = 'def _pct(v):\n    """Percent."""\n    return "-" if v is None else f"{v:.2%}"\n'
    other = 'def pct(x):\n    return "-" if x is None else f"{x:.2%}"\n'
    assert _same_bodies({"a": twice, "b": other, "c": other.replace("2%", "1%")}) == [["a._pct", "b.pct"]]
    wrapper = "def _f(x):\n    return x + 1\ndef g(v):\n    return _f(v)\n"
    assert _same_bodies({"a": wrapper, "b": wrapper.replace("+", "-")}) == []  # each g calls its own module's _f


#: The one function allowed to run long: the simulator's event loop (its locals are its speed).
LONG_FUNCTIONS = {"loadgen.model.occsim.simulate"}


def test_no_function_is_over_90_lines() -> None:
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                name = f"{_module_name(path)}.{node.name}"
                if lines > 90 and name not in LONG_FUNCTIONS:
                    long.append(f"{name} ({lines} lines)")
    assert not long, "split these into functions a reader can hold in mind: " + ", ".join(long)


#: Imports of loadgen's own modules inside functions: each puts off a start-up cost or forces an
#: import order, and says which with a ``# lazy: <reason>`` comment; more than this hides the layout.
MAX_FUNCTION_LEVEL_IMPORTS = 12


def _function_level_imports_in(source: str) -> list[tuple[int, str | None]]:
    """(line, the ``# lazy:`` reason or None) of each import of a loadgen module inside a function of ``source``."""
    lines = source.splitlines()
    found: set[tuple[int, str | None]] = set()
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):  # a nested function's imports are seen twice: a set
            if (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("loadgen")) or (
                isinstance(node, ast.Import) and any(a.name.startswith("loadgen") for a in node.names)
            ):
                why = re.search(r"#\s*lazy:\s*(\S.*)", " ".join(lines[node.lineno - 1 : node.end_lineno]))
                found.add((node.lineno, why.group(1) if why else None))
    return sorted(found, key=lambda f: f[0])


def function_level_imports() -> list[tuple[str, str | None]]:
    """Every function-level import of a loadgen module in the package: (module:line, its reason or None)."""
    return [
        (f"{_module_name(path)}:{line}", why)
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, why in _function_level_imports_in(path.read_text())
    ]


def test_function_level_imports_are_few_and_say_why() -> None:
    found = function_level_imports()
    unexplained = [where for where, why in found if why is None]
    assert not unexplained, "say why each import sits in a function (# lazy: <reason>), or move it to the top: " + ", ".join(unexplained)
    assert len(found) <= MAX_FUNCTION_LEVEL_IMPORTS, f"{len(found)} function-level imports: " + ", ".join(w for w, _ in found)
    # The command line loads a command's modules in one place (loadgen.cli.main.load_command).
    cli = {w.rsplit(":", 1)[0] for w, _ in found if w.startswith("loadgen.cli.")}
    assert cli <= {"loadgen.cli.main", "loadgen.cli.command"}, f"load commands in loadgen.cli.main.load_command, not in {cli}"


def test_the_checker_sees_a_function_level_import_and_its_reason() -> None:
    source = (
        "from loadgen.errors import ConfigError\n"
        "def f():\n"
        "    import json\n"
        "    from loadgen.report import write_report  # lazy: matplotlib\n"
        "    def g():\n"
        "        import loadgen.engine.sweep\n"
    )
    assert _function_level_imports_in(source) == [(4, "matplotlib"), (6, None)]
