"""An AST scan for comparisons against registered names (task kinds, dataset kinds).

Why an AST walk and not grep: a name such as `"seg"` is also a loss-term name and
a dict key, and those are fine; only a *comparison* (`==`, `!=`, `in`, `not in`,
or a `match` case) with a name literal means a module decides something per kind
that a registry should answer.
"""

from __future__ import annotations

import ast

#: The built-in task kinds.
KIND_NAMES = frozenset({"seg", "depth", "normal", "keypoints", "edges"})


def _names(node: ast.AST, names: frozenset[str]) -> set[str]:
    """Which of `names` an operand spells out: a string, or a tuple/list/set of strings."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} & names
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return set().union(set(), *(_names(elt, names) for elt in node.elts))
    return set()


def offences(source: str, label: str, names: frozenset[str] = KIND_NAMES) -> list[str]:
    """'label:line: code' for every comparison or match case against one of `names`
    (task-kind names by default)."""
    found = []
    for node in ast.walk(ast.parse(source, filename=label)):
        if isinstance(node, ast.Compare):
            operands: list[ast.AST] = [node.left, *node.comparators]
        elif isinstance(node, ast.MatchValue):
            operands = [node.value]
        else:
            continue
        if any(_names(side, names) for side in operands):
            found.append((node.lineno, f"{label}:{node.lineno}: {ast.unparse(node)}"))
    return [text for _, text in sorted(found)]
