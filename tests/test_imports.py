"""The package's import graph has no cycle, and no module imports another's private name.

The graph is read from the source with `ast` (nothing is imported): every `import` and
`from ... import` of `app.py` and the `cagul`, `jobs`, `storage` and `webui` packages, at
module level, inside functions and under `TYPE_CHECKING` alike, since each is a dependency a
reader must follow. A cycle is a strongly connected group of two or more modules. The
private-name rule covers every Python file of the repository (benchmarks and tests included):
a helper another module needs is public, under a name that says what it does.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.workerproc import REPO

PACKAGES = ("cagul", "jobs", "storage", "webui")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    files = [REPO / "app.py"] + [p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))]
    return {_module_name(p): p for p in files}


def _imports(module: str, path: Path, known: dict[str, Path]):
    """(imported module, imported name or None) for every import statement of `module`."""

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if target := resolve(alias.name):
                    yield target, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package[: len(package) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            for alias in node.names:
                sub = resolve(f"{base}.{alias.name}")
                if sub and sub != module and sub == f"{base}.{alias.name}":
                    yield sub, None  # a submodule imported from its package
                elif target := resolve(base):
                    yield target, alias.name


def import_graph() -> dict[str, set[str]]:
    """Each module of the project and the project modules it imports."""
    known = _modules()
    return {m: {t for t, _ in _imports(m, p, known) if t != m} for m, p in sorted(known.items())}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of two or more modules (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert import_cycles(import_graph()) == []


def private_imports(source: str) -> list[str]:
    """The `_name`s (not dunders) a `from x import ...` of `source` takes from another module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{'.' * node.level}{node.module or ''}:{alias.name}")
    return found


def test_the_private_import_finder_finds_one():
    source = "from a.b import _x, y\nfrom . import _z\nfrom c import __version__\n"
    assert private_imports(source) == ["a.b:_x", ".:_z"]


def test_no_private_name_imported_across_modules():
    files = [
        p
        for p in REPO.rglob("*.py")
        if not any(part.startswith(".") for part in p.relative_to(REPO).parts)
    ]
    found = {
        str(p.relative_to(REPO)): names
        for p in sorted(files)
        if (names := private_imports(p.read_text(encoding="utf-8")))
    }
    assert found == {}
