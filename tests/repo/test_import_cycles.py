"""No import cycles in edgemtl/, lazy (function-level) imports included.

A cycle hidden behind a lazy import still ties two modules into one unit that
cannot be understood, tested or moved alone; this test reads every import from
the source (tests/import_graph.py) and lists each cycle it finds.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.cli import REPO
from tests.helpers.import_graph import cycles, describe, import_graph


def test_no_import_cycles() -> None:
    graph = import_graph(REPO / "edgemtl")
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(describe(c, graph) for c in found)


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_the_graph_sees_lazy_relative_and_string_imports(tmp_path: Path) -> None:
    pkg = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "def f():\n    from . import b\n",  # lazy, relative, from-pkg-import-module
            "pkg/b.py": "import importlib\nimportlib.import_module('pkg.sub.c')\n",
            "pkg/sub/__init__.py": "from pkg.sub.c import THING\n",
            "pkg/sub/c.py": "THING = 1\ndef g():\n    from ..a import f\n",  # two levels up
            "pkg/d.py": "import numpy\nfrom pkg import sub\n",  # outside names ignored
        },
    )
    graph = import_graph(pkg)
    assert graph == {
        "pkg": set(),
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.sub.c"},
        "pkg.sub": {"pkg.sub.c"},
        "pkg.sub.c": {"pkg.a"},
        "pkg.d": {"pkg.sub"},
    }
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    assert "pkg.sub.c -> pkg.a" in describe(cycles(graph)[0], graph)
