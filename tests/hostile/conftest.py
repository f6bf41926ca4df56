"""The hostile-input corpus (issue 13): the shared runner, its assertions and small artifacts.

Every case runs the real CLI entry point, `edgemtl.cli.main` (which turns a
UserError into one line and exit 1), in-process under typer's CliRunner
isolation (stdin/stdout/stderr and environment), from inside the case's own
folder so that paths, and the messages naming them, stay short. A refused case
asserts exit 1, at most 2 lines and 300 characters on stderr, no traceback, and
that every file it names is unchanged (`Hostile.refuses`); a usage error typer
reports itself (exit 2, its boxed panel) is acceptable as it is
(`Hostile.usage_error`). The trained fixture is the session's `tiny_checkpoint`
(tests/conftest.py), reached through a `run` symlink.

Modules: one per class of input (test_hostile_<class>.py); C1b's classes live in
their own modules and fixtures.
"""

from __future__ import annotations

import hashlib
import os
import sys
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

#: The issue's bound on a refusal: one line (two at most) of at most this many characters.
MAX_LINES = 2
MAX_CHARS = 300


@dataclass(frozen=True)
class Outcome:
    """What one run of the CLI left: exit code ("exception" when something escaped main)."""

    code: int | str
    stdout: str
    stderr: str

    def describe(self) -> str:
        return f"exit {self.code}\n--- stderr ---\n{self.stderr}\n--- stdout ---\n{self.stdout}"


def _digest(path: Path) -> object:
    """A comparable picture of `path`: bytes hash, link target, folder tree, or None."""
    if path.is_symlink():
        return ("link", os.readlink(path))
    if path.is_file():
        return ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    if path.is_dir():
        return ("dir", sorted((str(p.relative_to(path)), _digest(p)) for p in path.rglob("*")))
    return None


def snapshot(paths: Iterable[str | Path]) -> dict[str, object]:
    return {str(p): _digest(Path(p)) for p in paths}


class Hostile:
    """Runs `edgemtl ARGS...` in-process from `folder` and judges the outcome."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def run(self, *args: str, env: dict[str, str | None] | None = None) -> Outcome:
        from edgemtl.cli import main
        from edgemtl.data.imageio import set_max_mpx

        full_env: dict[str, str | None] = {"COLUMNS": "120", "EDGEMTL_DEBUG": None}
        full_env.update(env or {})
        old_argv = sys.argv
        with CliRunner().isolation(env=full_env) as (out, err, _):
            sys.argv = ["edgemtl", *args]
            code: int | str = 0
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:  # noqa: BLE001 - anything escaping main is the failure
                code = "exception"
                traceback.print_exc(file=sys.stderr)
            finally:
                sys.argv = old_argv
                set_max_mpx(None)  # a flag of one case must not leak into the next
                sys.stdout.flush()
                sys.stderr.flush()
            return Outcome(code, out.getvalue().decode(), err.getvalue().decode())

    def refuses(
        self,
        *args: str,
        says: Sequence[str] = (),
        unchanged: Iterable[str | Path] = (),
        env: dict[str, str | None] | None = None,
    ) -> Outcome:
        """Run, and assert a one-line refusal (exit 1) naming `says`, `unchanged` untouched."""
        watched = [self.folder / p for p in unchanged]
        before = snapshot(watched)
        outcome = self.run(*args, env=env)
        assert_refused(outcome, *says)
        assert snapshot(watched) == before, (
            f"files changed by a refused command:\n{outcome.describe()}"
        )
        return outcome

    def usage_error(self, *args: str) -> Outcome:
        """typer's own usage error (exit 2 with its panel): acceptable as it is."""
        outcome = self.run(*args)
        assert outcome.code == 2, outcome.describe()
        assert "Traceback" not in outcome.stderr
        return outcome


def assert_refused(outcome: Outcome, *fragments: str) -> None:
    """Exit 1, at most MAX_LINES lines and MAX_CHARS characters on stderr, no traceback."""
    err = outcome.stderr.strip()
    assert outcome.code == 1, outcome.describe()
    assert "Traceback" not in outcome.stderr, outcome.describe()
    assert err.startswith("error: "), outcome.describe()
    assert len(err.splitlines()) <= MAX_LINES, outcome.describe()
    assert len(err) <= MAX_CHARS, f"{len(err)} characters:\n{outcome.describe()}"
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in:\n{outcome.describe()}"


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Hostile:
    """The runner, working in this case's own folder."""
    monkeypatch.chdir(tmp_path)
    return Hostile(tmp_path)


@pytest.fixture
def bundle(hostile: Hostile) -> Path:
    """`b/`: a torch-free toy Student bundle (16x32 input, seg + depth), relative to the case."""
    from tests.helpers.toy_bundle import make_toy_bundle

    make_toy_bundle(hostile.folder / "b")
    return Path("b")


@pytest.fixture
def image(hostile: Hostile) -> Path:
    """`img.png`: a 24x40 RGB picture."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(
        hostile.folder / "img.png"
    )
    return Path("img.png")


@pytest.fixture
def run(hostile: Hostile, tiny_checkpoint: Path) -> Path:
    """`run/`: a symlink to the session's tiny trained run (best.pt, last.pt, recipe.yaml)."""
    (hostile.folder / "run").symlink_to(tiny_checkpoint.parent, target_is_directory=True)
    return Path("run")


@pytest.fixture
def recipe(hostile: Hostile) -> Path:
    """`r.yaml`: the synthetic recipe at the suite's tiny settings, 1 epoch on 4 images, so a
    case that wrongly trains ends in seconds (and then fails its assertion)."""
    from edgemtl.core.config import dump_yaml, load_recipe
    from tests.helpers.cli import REPO
    from tests.helpers.tiny_run import TINY_OVERRIDES

    tiny = [*TINY_OVERRIDES, "train.epochs=1", "data.synthetic.n_train=4"]
    tiny += ["data.synthetic.n_val=2", "name=r"]
    (hostile.folder / "r.yaml").write_text(
        dump_yaml(load_recipe(REPO / "recipes" / "synthetic.yaml", tiny))
    )
    return Path("r.yaml")


@pytest.fixture
def victim(hostile: Hostile) -> Path:
    """`victim.txt`: a file outside every output folder that no command may touch."""
    (hostile.folder / "victim.txt").write_text("keep me\n")
    return Path("victim.txt")
