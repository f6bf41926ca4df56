"""No module outside the dataset-kind registry compares against a dataset-kind name.

A dataset kind is one `register_dataset` call (`edgemtl/data/readers.py`,
docs/datasets.md "Adding a new dataset reader"); a comparison such as
`kind == "synthetic"` anywhere else would be a second place to change. The
reader modules themselves may name their own kind in messages, not compare.
"""

from __future__ import annotations

from edgemtl.data.readers import dataset_kinds
from tests.helpers.ast_scan import offences
from tests.helpers.cli import REPO

PACKAGE = REPO / "edgemtl"
REGISTRY = PACKAGE / "data" / "readers.py"


def test_no_dataset_kind_comparisons_outside_the_registry() -> None:
    names = frozenset(dataset_kinds())
    assert {"synthetic", "nyuv2", "cityscapes", "taskonomy", "folder"} <= names
    assert offences("a = kind == 'synthetic'", "probe.py", names)  # the scanner sees it
    modules = sorted(p for p in PACKAGE.rglob("*.py") if p != REGISTRY)
    assert len(modules) > 50
    hits = [
        hit
        for path in modules
        for hit in offences(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)), names)
    ]
    assert not hits, "ask edgemtl.data.readers.dataset_kind instead:\n" + "\n".join(hits)
