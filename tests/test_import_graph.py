"""The project's import graph: no cycles, and the base package stays below its components.

Every import counts: module level, inside functions, and under `if TYPE_CHECKING:` (a cycle
that only type checking sees is still two modules that each need the other to be described).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("driftline", "serving", "operators", "training", "benchmarks")
# The base package's CLI composes the components; nothing else in it may reach up into them.
COMPONENTS = ("serving", "operators", "training")
BASE = "driftline"
BASE_ALLOWED = "driftline.cli"

Graph = dict[str, set[str]]


def module_name(root: Path, path: Path) -> str:
    """`pkg.sub.mod` for `root/pkg/sub/mod.py`; a package is named by its `__init__.py`."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of `packages` under `root`, by dotted name."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            found[module_name(root, path)] = path
    return found


def _imported(name: str, path: Path, tree: ast.AST) -> Iterator[str]:
    """Dotted names `tree` imports, relative ones made absolute.

    `from a import b` depends on `a` (it reads a's namespace) and on the submodule a.b if there
    is one. The parent packages that `import a.b.c` runs first are not counted: every module
    would depend on them, while a module that names its own package means its `__init__`.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{a.name}" for a in node.names if a.name != "*")


def _resolve(imported: str, known: dict[str, Path]) -> str | None:
    # `import a.b.c` and `from a.b import name` depend on the longest known module prefix.
    parts = imported.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def import_graph(root: Path, packages: Iterable[str]) -> Graph:
    """Module -> the project modules it imports anywhere in its body."""
    known = modules(root, packages)
    graph: Graph = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = {_resolve(i, known) for i in _imported(name, path, tree)}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def upward_imports(graph: Graph) -> list[str]:
    """`module -> component` for each base module outside the CLI that imports a component."""

    def within(module: str, package: str) -> bool:
        return module == package or module.startswith(package + ".")

    return sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if within(module, BASE) and not within(module, BASE_ALLOWED)
        for target in targets
        if any(within(target, c) for c in COMPONENTS)
    )


def _describe(component: list[str], graph: Graph) -> str:
    members = set(component)
    edges = [f"{m} -> {t}" for m in component for t in sorted(graph[m] & members)]
    return "cycle: " + "; ".join(edges)


# --- the project ------------------------------------------------------------------------------
def test_project_has_no_import_cycles() -> None:
    graph = import_graph(ROOT, PACKAGES)
    found = cycles(graph)
    assert not found, "\n".join(_describe(c, graph) for c in found)


def test_base_package_does_not_import_components() -> None:
    assert not upward_imports(import_graph(ROOT, PACKAGES))


# --- the graph functions, on packages made for the purpose ----------------------------------
def _package(root: Path, files: dict[str, str]) -> None:
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)


def test_finds_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import thing\n",
            "pkg/b.py": "def thing():\n    from pkg import a\n    return a\n",
            "pkg/c.py": "import pkg.a\n",
        },
    )
    assert cycles(import_graph(tmp_path, ["pkg"])) == [["pkg.a", "pkg.b"]]


def test_finds_a_cycle_through_a_package_reexport_and_relative_imports(tmp_path: Path) -> None:
    _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/store/__init__.py": "from .repo import Store\n",
            "pkg/store/repo.py": "from pkg.store import records\nfrom .tables import rows\n",
            "pkg/store/tables.py": "",
            "pkg/store/records.py": "",
        },
    )
    graph = import_graph(tmp_path, ["pkg"])
    assert graph["pkg.store.repo"] == {"pkg.store", "pkg.store.tables", "pkg.store.records"}
    assert cycles(graph) == [["pkg.store", "pkg.store.repo"]]


def test_counts_type_checking_imports(tmp_path: Path) -> None:
    _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "import typing\nif typing.TYPE_CHECKING:\n    from pkg.b import B\n",
            "pkg/b.py": "from pkg.a import A\n",
        },
    )
    assert cycles(import_graph(tmp_path, ["pkg"])) == [["pkg.a", "pkg.b"]]


def test_a_layered_package_has_no_cycles(tmp_path: Path) -> None:
    _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low.py": "import json\n",
            "pkg/mid.py": "from pkg import low\n",
            "pkg/high.py": "from pkg.mid import x\nfrom pkg.low import y\n",
        },
    )
    assert cycles(import_graph(tmp_path, ["pkg"])) == []


@pytest.mark.parametrize(
    ("source", "upward"),
    [
        ("def f():\n    import serving.app\n", ["driftline.x -> serving.app"]),
        (
            "from operators import decide\n",
            ["driftline.x -> operators", "driftline.x -> operators.decide"],
        ),
        ("import driftline.y\n", []),
    ],
)
def test_flags_base_modules_that_import_components(
    tmp_path: Path, source: str, upward: list[str]
) -> None:
    _package(
        tmp_path,
        {
            "driftline/__init__.py": "",
            "driftline/x.py": source,
            "driftline/y.py": "",
            "driftline/cli/__init__.py": "import serving.app\n",
            "serving/__init__.py": "",
            "serving/app.py": "",
            "operators/__init__.py": "",
            "operators/decide.py": "",
        },
    )
    assert upward_imports(import_graph(tmp_path, PACKAGES)) == upward
