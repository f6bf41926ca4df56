"""The layers of edgemtl/ import one way: each may import only the layers below it.

core <- data <- evaluation <- deploy <- export <- training <- cli
(docs/architecture.md). Every import counts, lazy ones included
(tests/helpers/import_graph.py); the root package `edgemtl` (its version) is
importable from anywhere.
"""

from __future__ import annotations

from tests.helpers.cli import REPO
from tests.helpers.import_graph import import_graph

#: Bottom to top.
LAYERS = ("core", "data", "evaluation", "deploy", "export", "training", "cli")


def layer_of(module: str) -> str | None:
    """`edgemtl.deploy.predict` -> "deploy"; `edgemtl.__main__` -> "cli"; the root -> None."""
    parts = module.split(".")
    if len(parts) == 1:
        return None
    return "cli" if parts[1] in ("cli", "__main__") else parts[1]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """`a -> b` for each import from a lower layer into a higher one."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    out = []
    for module, targets in sorted(graph.items()):
        here = layer_of(module)
        for target in sorted(targets):
            there = layer_of(target)
            if here is not None and there is not None and rank[there] > rank[here]:
                out.append(f"{module} ({here}) -> {target} ({there})")
    return out


def test_every_module_is_in_a_layer() -> None:
    graph = import_graph(REPO / "edgemtl")
    assert {layer_of(m) for m in graph} - {None} == set(LAYERS)


def test_layers_import_only_downwards() -> None:
    problems = upward_imports(import_graph(REPO / "edgemtl"))
    assert problems == [], "imports against the layer order:\n" + "\n".join(problems)


def test_the_rule_flags_an_upward_import() -> None:
    graph = {
        "edgemtl.data.reader": {"edgemtl.core.errors", "edgemtl"},
        "edgemtl.evaluation.metrics": {"edgemtl.deploy.runtime"},
        "edgemtl.__main__": {"edgemtl.cli"},
    }
    assert upward_imports(graph) == [
        "edgemtl.evaluation.metrics (evaluation) -> edgemtl.deploy.runtime (deploy)"
    ]
