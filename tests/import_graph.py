"""The import graph of hub/ and connectors/, read from the source (nothing is imported).

A module-level import is an edge; an import inside a function, or under ``if
TYPE_CHECKING:``, is not (it cannot make a circle when the module is first imported), but
``every_import=True`` counts those too, for "does X ever reach Y".
"""

from __future__ import annotations

import ast
from pathlib import Path

from hub.settings import PROJECT_ROOT

PACKAGES = ("hub", "connectors")


def modules(root: Path = PROJECT_ROOT) -> dict[str, Path]:
    """Module name -> file, for every module of the packages."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _statements(tree: ast.Module, every_import: bool) -> list[ast.stmt]:
    if every_import:
        return [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    return [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]


def import_graph(*, every_import: bool = False, root: Path = PROJECT_ROOT) -> dict[str, set[str]]:
    """Module -> the modules of the packages it imports."""
    known = modules(root)

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in _statements(ast.parse(path.read_text(encoding="utf-8")), every_import):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            edges.update(t for t in map(resolve, targets) if t is not None and t != name)
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected sets of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module that importing ``start`` can import, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen
