"""Small modules with one job: a module of edgemtl/ over 300 lines says why in its docstring.

The reason is one sentence starting "Why this size:" in the module docstring;
without one, split the module where it does two jobs (docs/architecture.md).
"""

from __future__ import annotations

import ast

from tests.helpers.cli import REPO

MAX_LINES = 300
REASON = "Why this size:"


def oversized_without_reason(files: dict[str, str]) -> list[str]:
    """`path: N lines` per source (path -> text) over MAX_LINES whose docstring lacks REASON."""
    out = []
    for path, text in sorted(files.items()):
        lines = len(text.splitlines())
        if lines > MAX_LINES and REASON not in (ast.get_docstring(ast.parse(text)) or ""):
            out.append(f"{path}: {lines} lines")
    return out


def test_every_long_module_states_why() -> None:
    files = {
        str(p.relative_to(REPO)): p.read_text(encoding="utf-8")
        for p in (REPO / "edgemtl").rglob("*.py")
    }
    problems = oversized_without_reason(files)
    assert problems == [], (
        f'modules over {MAX_LINES} lines with no "{REASON} ..." sentence in their docstring '
        "(split them, or say why they are one job):\n" + "\n".join(problems)
    )


def test_the_rule_counts_lines_and_reads_only_the_docstring() -> None:
    body = "x = 1\n" * MAX_LINES
    files = {
        "short.py": '"""Short."""\n' + "x = 1\n" * (MAX_LINES - 1),
        "long.py": '"""Long."""\n' + body,
        "long_comment.py": '"""Long."""\n# Why this size: a comment is not the docstring.\n' + body,
        "long_reason.py": '"""Long.\n\nWhy this size: one job.\n"""\n' + body,
    }
    assert oversized_without_reason(files) == [
        f"long.py: {MAX_LINES + 1} lines",
        f"long_comment.py: {MAX_LINES + 2} lines",
    ]
