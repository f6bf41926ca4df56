"""The test tree mirrors the package: one folder per layer, shared code in tests/helpers/ only.

A test module never imports another test module or a conftest: what two test
files share lives in `tests.helpers` (plain functions) or a conftest (fixtures).
"""

from __future__ import annotations

import ast

from tests.helpers.cli import REPO

TESTS = REPO / "tests"
#: edgemtl's layers, plus `repo` for whole-repository checks (README, Dockerfile, import graph)
#: and `hostile` for the corpus of hostile and malformed inputs across every command.
FOLDERS = {"core", "data", "evaluation", "deploy", "export", "training", "cli", "repo", "hostile"}


def _imported_modules(tree: ast.Module) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, node.lineno))
    return out


def test_every_test_module_sits_in_a_layer_folder() -> None:
    misplaced = [
        str(p.relative_to(TESTS))
        for p in TESTS.rglob("test_*.py")
        if p.parent.parent != TESTS or p.parent.name not in FOLDERS
    ]
    assert misplaced == [], (
        f"test modules outside tests/<{'|'.join(sorted(FOLDERS))}>/: {misplaced}"
    )
    for folder in FOLDERS:
        assert (TESTS / folder / "__init__.py").is_file(), f"tests/{folder}/ is not a package"


def test_no_test_module_imports_another_test_module() -> None:
    problems = []
    for path in sorted(TESTS.rglob("*.py")):
        if "fixtures" in path.relative_to(TESTS).parts:
            continue
        for name, line in _imported_modules(ast.parse(path.read_text(), str(path))):
            last = name.rsplit(".", 1)[-1]
            if last.startswith("test_") or last == "conftest":
                problems.append(f"{path.relative_to(REPO)}:{line}: imports {name}")
    assert problems == [], "move the shared code to tests/helpers/:\n" + "\n".join(problems)
