"""README benchmark tables are generated from the committed JSON, never typed."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.helpers.cli import REPO


def test_readme_tables_match_benchmark_json() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "readme_tables.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_table_block_has_its_json_and_content() -> None:
    text = (REPO / "README.md").read_text()
    names = re.findall(r"<!-- bench:([\w:-]+) -->", text)
    assert {"quickstart", "train_step", "export", "latency"} <= set(names)
    for name in names:
        script, _, result = name.partition(":")
        assert (REPO / "benchmarks" / f"{script}.py").is_file(), name
        assert (REPO / "benchmarks" / "results" / f"{result or script}.json").is_file(), name
        body = text.split(f"<!-- bench:{name} -->", 1)[1].split("<!-- /bench -->", 1)[0]
        assert "|" in body, f"table {name} is empty"


def test_pending_tables_name_a_benchmark_script() -> None:
    # A pending marker becomes a table once its JSON is committed: its script must exist.
    for path in (REPO / "benchmarks" / "README.md", REPO / "README.md"):
        for name in re.findall(r"<!-- bench-pending:([\w:-]+) -->", path.read_text()):
            script = REPO / "benchmarks" / f"{name.partition(':')[0]}.py"
            assert "def markdown(" in script.read_text(), f"{path}: {name}"
