"""The help a newcomer reads: `--version`, no Python type labels, every option explained, and
the export default head said the same way in `--help` and docs/export.md."""

from __future__ import annotations

import re

import pytest

from edgemtl import __version__
from tests.helpers.cli import REPO, run_cli

COMMANDS = [
    ("train",),
    ("eval",),
    ("export",),
    ("profile",),
    ("predict",),
    ("data", "synth"),
    ("data", "check"),
    ("data", "show"),
]


def test_version() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"edgemtl {__version__}"


def _options(text: str) -> list[str]:
    """The option rows of a rich help panel: the text between the box rules."""
    rows = []
    for line in text.splitlines():
        inner = line.strip().strip("│").rstrip()
        if inner.lstrip().startswith("--"):
            rows.append(inner.strip())
    return rows


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_shows_no_python_types_and_explains_every_option(command: tuple[str, ...]) -> None:
    proc = run_cli(*command, "--help", env={"COLUMNS": "160"})
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for label in ("<bool>", "<list[str]>", "<str>", "<int>", "<float>", "<path>"):
        assert label not in text, (command, label)
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert re.search(r"\[OPTIONS\]( [A-Z_]+(\.\.\.)?| \[[A-Z_]+\])*\s*$", usage.strip()), usage
    for row in _options(text):
        name, _, rest = row.partition(" ")
        # A flag has only its help text after it; an option with a value names it first.
        assert rest.strip(), f"{command} {name}: no help text"


def test_root_help_and_flags() -> None:
    text = run_cli("--help", env={"COLUMNS": "160"}).stdout
    assert "--version" in text and "<bool>" not in text
    train = run_cli("train", "--help", env={"COLUMNS": "160"}).stdout
    row = next(r for r in _options(train) if r.startswith("--resume"))
    assert row.split()[1] == "Continue", row  # the flag takes no value
    assert "--set KEY=VALUE" in " ".join(" ".join(r.split()[:2]) for r in _options(train))


def test_export_default_head_is_the_same_in_help_and_docs() -> None:
    from edgemtl.cli import DEFAULT_HEAD_RULE, EXPORT_HEAD_HELP

    help_text = " ".join(run_cli("export", "--help", env={"COLUMNS": "400"}).stdout.split())
    docs = " ".join((REPO / "docs" / "export.md").read_text().split())
    default = EXPORT_HEAD_HELP[EXPORT_HEAD_HELP.index("(default: ") :].rstrip(".")
    assert DEFAULT_HEAD_RULE in default
    assert default in help_text
    assert default.removeprefix("(").removesuffix(")") in docs
