"""Docstrings and docs cite the project's docs (docs/*.md) or the papers, never files outside it.

The interface, reference and design notes (`GONE`) were planning files that
never shipped with the repository: a citation of them points nowhere.
"""

from __future__ import annotations

from tests.helpers.cli import REPO

#: Spelt in pieces so this file does not cite them itself.
GONE = tuple(name + ".md" for name in ("INTERFACES", "REFERENCE", "DESIGN"))


def test_no_citation_of_files_outside_the_repository() -> None:
    files = [REPO / "README.md", *(REPO / "docs").rglob("*.md")]
    for folder in ("edgemtl", "tests", "benchmarks"):
        files += (REPO / folder).rglob("*.py")
    problems = [
        f"{path.relative_to(REPO)}:{n}: {name}"
        for path in sorted(files)
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for name in GONE
        if name in line
    ]
    assert problems == [], "cite docs/*.md or the paper instead:\n" + "\n".join(problems)
