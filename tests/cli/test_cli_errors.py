"""Every user error: one line on stderr naming the problem, exit 1, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import REPO, run_cli


def assert_one_line_error(proc, *fragments: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    for fragment in fragments:
        assert fragment in err, err


def test_missing_recipe(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("train", str(tmp_path / "nope.yaml")), "nope.yaml: no such file")


def test_bad_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [seg\n")
    assert_one_line_error(run_cli("train", str(bad)), "bad.yaml: invalid YAML at line")


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("train.epoch=3", "train.epoch: unknown key"),
        ("train.epochs=three", "train.epochs: Input should be a valid integer"),
        ("tasks=[seg, dept]", "unknown task 'dept'"),
        ("method={name: distill}", "unknown method 'distill'"),
    ],
)
def test_recipe_errors_name_the_key(override: str, fragment: str) -> None:
    assert_one_line_error(
        run_cli("train", str(REPO / "recipes" / "synthetic.yaml"), "--set", override), fragment
    )


def test_unreadable_checkpoint(tmp_path: Path) -> None:
    bogus = tmp_path / "best.pt"
    bogus.write_bytes(b"this is not a checkpoint")
    assert_one_line_error(
        run_cli("eval", str(bogus)), f"checkpoint {bogus}: not a readable edgemtl checkpoint"
    )
    assert_one_line_error(run_cli("eval", str(tmp_path / "none.pt")), "none.pt: no such file")


def test_head_the_checkpoint_lacks(tiny_vanilla_checkpoint: Path) -> None:
    proc = run_cli("eval", str(tiny_vanilla_checkpoint), "--head", "student")
    assert_one_line_error(proc, "has no student head: it was trained with method vanilla")


def test_debug_env_shows_the_traceback(tmp_path: Path) -> None:
    proc = run_cli("train", str(tmp_path / "nope.yaml"), env={"EDGEMTL_DEBUG": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_usage_errors_exit_2() -> None:
    assert run_cli("train").returncode == 2
    assert run_cli("eval", "x.pt", "--limit", "0").returncode == 2
