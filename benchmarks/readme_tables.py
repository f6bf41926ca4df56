"""Render the README's benchmark tables from committed JSON (never typed by hand).

Each table in README.md, benchmarks/README.md and docs/*.md sits between `<!-- bench:NAME -->` (or
`<!-- bench:SCRIPT:RESULT -->`) and `<!-- /bench -->` and is produced by
`markdown(result)` in benchmarks/NAME.py from benchmarks/results/NAME.json.
A `<!-- bench-pending:NAME -->` marker holds the place of a table whose JSON is
not committed yet; it becomes such a block once the JSON exists.
`--check` exits 1 when the README is stale (tests/repo/test_readme_tables.py
runs it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- bench:(?P<name>[\w:-]+) -->\n)(?P<body>.*?)(<!-- /bench -->)", re.S)
PENDING = re.compile(r"<!-- bench-pending:(?P<name>[\w:-]+) -->")


def result_path(name: str) -> Path:
    """benchmarks/results/RESULT.json of a block name `SCRIPT` or `SCRIPT:RESULT`."""
    script, _, result_name = name.partition(":")
    return ROOT / "benchmarks" / "results" / f"{result_name or script}.json"


def render(name: str) -> str:
    """`NAME` renders results/NAME.json with NAME.py; `SCRIPT:RESULT` results/RESULT.json with
    SCRIPT.py."""
    script = name.partition(":")[0]
    spec = importlib.util.spec_from_file_location(
        f"bench_{script}", ROOT / "benchmarks" / f"{script}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in the script look their module up
    spec.loader.exec_module(module)
    result = json.loads(result_path(name).read_text())
    return module.markdown(result)


def updated(text: str) -> str:
    """`text` with every table re-rendered (and pending markers whose JSON exists filled)."""

    def fill(match: re.Match[str]) -> str:
        name = match.group("name")
        if not result_path(name).is_file():
            return match.group(0)
        return f"<!-- bench:{name} -->\n<!-- /bench -->"

    text = PENDING.sub(fill, text)
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("name")) + m.group(4), text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if any table differs from its JSON"
    )
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args()
    args.files = args.files or [
        ROOT / "README.md",
        ROOT / "benchmarks" / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
    ]
    stale = []
    for path in args.files:
        if not path.is_file():
            continue
        text = path.read_text()
        new = updated(text)
        if new != text:
            stale.append(path)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(
            f"stale benchmark tables in: {', '.join(map(str, stale))} (run python "
            "benchmarks/readme_tables.py)"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
