"""The package's import graph, read from source (AST), for the layer and cycle tests.

Every import counts wherever it sits (module level, inside a function, under
`if TYPE_CHECKING`), because a lazy import is still a dependency: it only moves
the failure from import time to run time. `importlib.import_module("a.b")` and
`__import__("a.b")` with a literal name count too. Relative imports are
resolved; `from pkg import name` is read as `pkg.name`, an edge to that module
when it is one, else to `pkg`. A package's `__init__.py` is the module `pkg`. Importing
`pkg.mod` also runs `pkg/__init__.py`, but that implicit edge is not added:
like import-linter and pydeps, the graph holds only the imports written.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Import:
    """One imported name as written, made absolute: `torch.nn`, `edgemtl.training.checkpoint`."""

    name: str
    line: int


def module_files(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under `package_dir` (a package folder)."""
    root = package_dir.parent
    out: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _string_import(node: ast.Call) -> str | None:
    func = node.func
    named = (
        isinstance(func, ast.Attribute)
        and func.attr == "import_module"
        and isinstance(func.value, ast.Name)
        and func.value.id == "importlib"
    )
    named = named or (isinstance(func, ast.Name) and func.id in ("import_module", "__import__"))
    first = node.args[0] if node.args else None
    if named and isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


def imports_of(module: str, path: Path) -> Iterator[Import]:
    """Every name `module` (at `path`) imports, absolute; `from a import b` yields `a.b`."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                yield Import(f"{target}.{alias.name}", node.lineno)
        elif isinstance(node, ast.Call):
            name = _string_import(node)
            if name is not None:
                yield Import(name, node.lineno)


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (the most specific module each name names)."""
    files = module_files(package_dir)

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = {resolve(imp.name) for imp in imports_of(module, path)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
    return sorted(found)


def describe(component: list[str], graph: dict[str, set[str]]) -> str:
    """`a -> b, c` lines for the edges inside one cycle."""
    inside = set(component)
    return "\n".join(f"  {m} -> {', '.join(sorted(graph[m] & inside))}" for m in component)
