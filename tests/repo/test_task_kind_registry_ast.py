"""No module outside the task-kind registries compares against a task-kind name.

Why an AST walk and not grep: `"seg"` is also a loss-term name and a dict key,
and those are fine; only a *comparison* (`==`, `!=`, `in`, `not in`, or a
`match` case) with a task-kind name literal means a module decides something
per kind that the registry should answer: `edgemtl/core/tasks/` (numpy side) or
`edgemtl/training/task_ops.py` (torch side), the one place docs/datasets.md
"Adding a new task kind" names.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.ast_scan import offences
from tests.helpers.cli import REPO

PACKAGE = REPO / "edgemtl"
ALLOWED = (PACKAGE / "core" / "tasks", PACKAGE / "training" / "task_ops.py")


def _allowed(path: Path) -> bool:
    return any(path == allowed or allowed in path.parents for allowed in ALLOWED)


def test_scanner_sees_the_forms_it_forbids() -> None:
    """Each forbidden form is caught; dict keys, subscripts and other strings are not."""
    source = """
a = k == 'seg'
b = 'depth' != k
c = k in ('normal', 'x')
d = 'edges' not in ks
e = k in {'keypoints'}
f = {'seg': 1}
g = terms['seg']
h = k == 'sky'
match k:
    case 'seg':
        pass
i = get_kind('depth')
"""
    lines = [hit.split(":")[1] for hit in offences(source, "probe.py")]
    assert lines == ["2", "3", "4", "5", "6", "11"]


def test_no_task_kind_comparisons_outside_the_registries() -> None:
    modules = sorted(p for p in PACKAGE.rglob("*.py") if not _allowed(p))
    assert len(modules) > 50  # the walk really covers the package
    hits = [
        hit
        for path in modules
        for hit in offences(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    ]
    assert not hits, (
        "ask the task kind (edgemtl.core.tasks.get_kind, "
        "edgemtl.training.task_ops.get_ops) instead of comparing names:\n" + "\n".join(hits)
    )
