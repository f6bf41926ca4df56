"""Killed mid-write, cleaned by the next run (issue 13 item 6), with real SIGKILLed processes.

A training killed while writing a checkpoint leaves `.best.pt.tmp-...`; an export
killed after staging its FP32 ONNX leaves `.<bundle>.staging.tmp-...`. The next
`train --resume` / `export` removes them, because no live process owns them
(core/io.py), and finishes normally.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import REPO, run_cli
from tests.helpers.killed import kill, start_hanging, temporaries
from tests.helpers.tiny_run import TINY_OVERRIDES

pytestmark = pytest.mark.slow

RUN = [*TINY_OVERRIDES, "data.synthetic.n_train=8", "data.synthetic.n_val=4", "train.epochs=1"]

#: `edgemtl train` whose 2nd checkpoint write (best.pt after epoch 1; last.pt is whole) hangs
#: half-written.
_HANG_IN_SECOND_SAVE = """
import sys, time, torch
real = torch.save
calls = []
def save(obj, f, *args, **kwargs):
    calls.append(f)
    if len(calls) == 2:
        open(f, "wb").write(b"half a checkpoint")
        print("HANGING", flush=True)
        time.sleep(600)
    return real(obj, f, *args, **kwargs)
torch.save = save
from edgemtl.cli import main
sys.argv = ["edgemtl", *{args!r}]
main()
"""


def _train_args(out: Path, sets: list[str]) -> list[str]:
    args = ["train", str(REPO / "recipes" / "synthetic.yaml"), "--out", str(out), "-q"]
    for item in sets:
        args += ["--set", item]
    return args


def test_resume_sweeps_the_checkpoint_a_killed_training_was_writing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    owner = start_hanging(_HANG_IN_SECOND_SAVE.format(args=_train_args(run, RUN)))
    (left,) = temporaries(run)
    assert left.startswith(".best.pt.tmp-")
    kill(owner)
    assert temporaries(run) == [left] and (run / "last.pt").is_file()
    proc = run_cli(*_train_args(run, [*RUN[:-1], "train.epochs=2"]), "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert temporaries(run) == []
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]


#: `edgemtl export CKPT` killed once the FP32 ONNX is staged (derive() is the next stage).
_HANG_AFTER_STAGING = """
import time
from pathlib import Path
import edgemtl.training.export.command as command
from edgemtl.export.options import ExportOptions
def derive(ctx, fp32_path, *args, **kwargs):
    assert fp32_path.is_file()
    print("HANGING", flush=True)
    time.sleep(600)
command.derive = derive
options = ExportOptions(out=Path({out!r}), trt=False, samples=1, quiet=True)
command.export_command(Path({ckpt!r}), options)
"""


def test_export_sweeps_the_staging_folder_of_a_killed_export(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    bundles = tmp_path / "bundles"
    out = bundles / "tiny-student"
    owner = start_hanging(_HANG_AFTER_STAGING.format(ckpt=str(tiny_checkpoint), out=str(out)))
    (staging,) = temporaries(bundles)
    assert staging.startswith(".tiny-student.staging.tmp-")
    # While its owner lives, another export of the same bundle leaves its staging alone...
    second = run_cli("export", str(tiny_checkpoint), "--out", str(out), "--no-trt", "-q")
    assert second.returncode == 0, second.stderr[-3000:]
    assert temporaries(bundles) == [staging]
    kill(owner)
    # ...and once it is dead, the next export of that bundle clears it.
    proc = run_cli("export", str(tiny_checkpoint), "--out", str(out), "--no-trt", "-q")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert temporaries(bundles) == [] and temporaries(out) == []
    assert sorted(p.name for p in bundles.iterdir()) == ["tiny-student"]
