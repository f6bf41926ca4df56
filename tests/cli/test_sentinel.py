"""No file outside a command's output folder is ever created, changed or deleted (issue 13).

A sentinel tree surrounds every output (neighbour runs and bundles, a recipe,
notes beside the run folder and the bundle, the dataset a command reads) and
every command runs for real in a subprocess on tiny settings: `data synth`,
`data check`, `data show`, `train`, `train --resume`, `eval`, `export` (from the
checkpoint, then from the bundle), `profile` and `predict`. After each one, the
only paths created, changed or deleted anywhere under the test's folder are in
that command's outputs, or in the places a run may write besides them: the data
cache (`EDGEMTL_CACHE`), `TMPDIR` and the matplotlib / torch caches, all pointed
into the test's folder too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.cli import REPO, run_cli
from tests.helpers.tiny_run import TINY_OVERRIDES

pytestmark = pytest.mark.slow

#: Where a run may write besides its outputs (each pointed into the test folder).
ALLOWED = ("cache", "tmpdir", "mplconfig", "torch_home", "xdg_cache")


def _state(root: Path) -> dict[str, str]:
    """Every path under `root` (allowed places excluded): file sha256, or "dir"."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in ALLOWED:
            continue
        if path.is_symlink():
            out[str(rel)] = "link -> " + str(path.readlink())
        elif path.is_dir():
            out[str(rel)] = "dir"
        else:
            out[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _sentinels(work: Path) -> None:
    """Files around every output: a neighbour run and bundle, notes, hidden files, a link."""
    files = {
        "notes.txt": "beside everything",
        ".hidden": "dot file in the working folder",
        "runs/neighbour/last.pt": "not a checkpoint, and not ours",
        "runs/neighbour/metrics.jsonl": '{"epoch": 0}\n',
        "runs/README": "beside the run folder",
        "export/neighbour-student/manifest.json": "{}",
        "export/.notes": "hidden, beside the bundle",
        "reports/keep.md": "beside the reports",
        "preds/earlier.npz": "a previous prediction, kept",
        "frames/README": "beside the input frames",
    }
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    (work / "export" / "link-to-notes").symlink_to(work / "notes.txt")
    Image.fromarray(np.full((40, 72, 3), 120, np.uint8)).save(work / "frames" / "f0.png")
    (work / "recipe.yaml").write_text((REPO / "recipes" / "synthetic.yaml").read_text())


def test_commands_touch_nothing_outside_their_outputs(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    _sentinels(work)
    env = {
        "EDGEMTL_CACHE": str(tmp_path / "cache"),
        "TMPDIR": str(tmp_path / "tmpdir"),
        "MPLCONFIGDIR": str(tmp_path / "mplconfig"),
        "TORCH_HOME": str(tmp_path / "torch_home"),
        "XDG_CACHE_HOME": str(tmp_path / "xdg_cache"),
    }
    for name in ALLOWED:
        (tmp_path / name).mkdir()
    sets = [x for item in [*TINY_OVERRIDES, "train.epochs=1"] for x in ("--set", item)]
    run, bundle, reports = work / "runs" / "run", work / "export" / "bundle", work / "reports"
    steps: list[tuple[list[str], list[Path]]] = [
        (
            ["data", "synth", "data", "--n-train", "8", "--n-val", "4", "--size", "32x64"],
            [work / "data"],
        ),
        (["data", "check", "data", "--json", "reports/check.json"], [reports / "check.json"]),
        (["data", "show", "data", "--out", "reports/show.png"], [reports / "show.png"]),
        (["train", "recipe.yaml", "--out", "runs/run", *sets], [run]),
        (
            [
                "train",
                "recipe.yaml",
                "--out",
                "runs/run",
                "--resume",
                *sets,
                "--set",
                "train.epochs=2",
            ],
            [run],
        ),
        (
            ["eval", "runs/run/best.pt", "--limit", "2", "--json", "reports/eval.json"],
            [reports / "eval.json"],
        ),
        (
            ["export", "runs/run/best.pt", "--out", "export/bundle", "--no-trt", "--samples", "2"],
            [bundle],
        ),
        (
            ["export", "export/bundle", "--int8", "--calib", "2", "--samples", "2", "--no-trt"],
            [bundle],
        ),
        (
            ["profile", "export/bundle", "runs/run/best.pt", "-n", "2", "--warmup", "1"]
            + ["--warmup-s", "0", "--rounds", "1", "--no-power", "--idle", "0"]
            + ["--json", "reports/p.json", "--markdown", "reports/p.md"],
            [reports / "p.json", reports / "p.md"],
        ),
        (
            ["predict", "export/bundle", "frames", "--out", "preds"],
            [work / "preds" / "f0.npz", work / "preds" / "predictions.json"],  # the run's record
        ),
    ]
    for args, outputs in steps:
        before = _state(tmp_path)
        proc = run_cli(*args, "-q", cwd=work, env=env)
        assert proc.returncode == 0, (args, proc.stderr[-3000:])
        after = _state(tmp_path)
        changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
        allowed = [str(o.relative_to(tmp_path)) for o in outputs]
        stray = sorted(
            p
            for p in changed
            if not any(
                p == a
                or p.startswith(a + "/")
                or (
                    # predict writes <stem>.npz and one PNG per task beside it
                    a.endswith(".npz") and p.startswith(a[: -len(".npz")] + ".")
                )
                for a in allowed
            )
        )
        assert stray == [], f"{args[0]} touched paths outside its outputs: {stray}"
    assert (work / "preds" / "earlier.npz").read_text() == "a previous prediction, kept"
