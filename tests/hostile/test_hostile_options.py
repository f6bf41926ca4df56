"""Option values judged the same way by every command (issue 13, class 11), and the device
install without PyTorch (class 12).

Counts, durations, devices and providers are checked by the options objects
(`edgemtl.core.options`), so `profile --idle -2` and `predict --device tpu` are one
line like every other bad value; usage errors typer reports itself (exit 2) are
acceptable as they are.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgemtl.core.errors import TRAIN_EXTRA

FAST_PROFILE = ("-n", "1", "--warmup", "0", "--warmup-s", "0", "--rounds", "1", "--no-power")
FAST_PROFILE += ("--idle", "0")

PROFILE = {
    "idle-negative": (("--idle", "-2"), "--idle -2.0: expected a number >= 0 of seconds"),
    "idle-nan": (("--idle", "nan"), "--idle nan"),
    "idle-inf": (("--idle", "inf"), "--idle inf"),
    "duration-inf": (("--duration", "inf"), "--duration inf"),
    "duration-zero": (("--duration", "0"), "--duration 0.0: expected a positive number"),
    "duration-negative": (("--duration", "-1"), "--duration -1.0"),
    "warmup-negative": (("--warmup", "-1"), "--warmup -1"),
    "warmup-s-negative": (("--warmup-s", "-1"), "--warmup-s -1.0"),
    "warmup-s-nan": (("--warmup-s", "nan"), "--warmup-s nan"),
    "iterations-zero": (("-n", "0"), "--iterations 0: expected a whole number >= 1"),
    "batch-zero": (("--batch", "0"), "--batch '0'"),
    "batch-word": (("--batch", "x,4"), "--batch 'x,4'"),
    "batch-empty": (("--batch", ","), "--batch ','"),
    "budget-negative": (("--budget-ms", "-1", "--accuracy"), "--budget-ms -1.0"),
    "budget-nan": (("--budget-ms", "nan", "--accuracy"), "--budget-ms nan"),
    "device": (("--device", "tpu"), "--device 'tpu': expected cpu or cuda"),
    "provider": (("--provider", "npu"), "--provider 'npu': expected cpu, cuda or tensorrt"),
    "precision": (("--precision", "fp8"), "--precision 'fp8'"),
    "format": (("--format", "pdf"), "--format 'pdf'"),
    "format-empty": (("--format", ","), "--format ','"),
}


@pytest.mark.parametrize("case", sorted(PROFILE))
def test_profile(hostile, bundle: Path, case: str) -> None:
    extra, fragment = PROFILE[case]
    hostile.refuses("profile", "b", *FAST_PROFILE, *extra, says=(fragment,), unchanged=["b"])


PREDICT = {
    "device": (("--device", "tpu"), "--device 'tpu': expected cpu or cuda"),
    "device-empty": (("--device", ""), "--device ''"),
    "provider": (("--provider", "npu"), "--provider 'npu'"),
    "precision": (("--precision", "fp8"), "no artifact matches"),
}


@pytest.mark.parametrize("case", sorted(PREDICT))
def test_predict(hostile, bundle: Path, image: Path, case: str) -> None:
    extra, fragment = PREDICT[case]
    hostile.refuses("predict", "b", "img.png", *extra, says=(fragment,), unchanged=["b"])
    assert not Path("preds").exists()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (("--device", "tpu"), "--device 'tpu': expected cpu, cuda or auto"),
        (("--head", "teachr"), "teachr"),
        (("--reference", "missing.json"), "missing.json"),
    ],
    ids=["device", "head", "reference"],
)
def test_eval(hostile, run: Path, extra: tuple[str, ...], fragment: str) -> None:
    hostile.refuses("eval", "run/best.pt", *extra, says=(fragment,))


@pytest.mark.parametrize("device", ["tpu", "", "CUDA"])
def test_train_device(hostile, recipe: Path, device: str) -> None:
    hostile.refuses("train", "r.yaml", "--device", device, says=("--device",))
    assert not Path("runs").exists()


EXPORT = {
    "outputs": (("--outputs", "argmax"), "--outputs 'argmax': expected raw or decoded"),
    "tol-negative": (("--tol", "fp32_max_abs=-1"), "--tol fp32_max_abs -1.0"),
    "tol-nan": (("--tol", "fp32_max_abs=nan"), "--tol fp32_max_abs nan"),
    "tol-name": (("--tol", "fp32_maxabs=1"), "unknown tolerance 'fp32_maxabs'"),
    "tol-shape": (("--tol", "fp32_max_abs"), "expected NAME=NUMBER"),
    "head": (("--head", "teachr"), "teachr"),
}


@pytest.mark.parametrize("case", sorted(EXPORT))
@pytest.mark.parametrize("source", ["checkpoint", "bundle"])
def test_export(hostile, run: Path, bundle: Path, source: str, case: str) -> None:
    extra, fragment = EXPORT[case]
    path = "run/best.pt" if source == "checkpoint" else "b"
    hostile.refuses("export", path, *extra, says=(fragment,), unchanged=["b"])
    assert not Path("export").exists()


@pytest.mark.parametrize(
    ("size", "fragment"),
    [("17x32", "multiples of 16"), ("axb", "expected HxW"), ("0x0", "multiples of 16")],
)
def test_data_synth_size(hostile, size: str, fragment: str) -> None:
    hostile.refuses("data", "synth", "out", "--size", size, says=(fragment,))
    assert not Path("out").exists()


@pytest.fixture
def nyu(hostile) -> Path:
    from tests.helpers.data_fixtures import write_nyuv2

    write_nyuv2(hostile.folder / "nyu")
    return Path("nyu")


@pytest.mark.parametrize(
    ("command", "extra", "fragment"),
    [
        ("check", ("--dataset", "imagenet"), "imagenet"),
        ("check", ("--dataset", "nyuv2", "--tasks", "flow"), "flow"),
        ("check", ("--dataset", "cityscapes", "--label-folder", "label_99"), "label_99"),
        ("show", ("--dataset", "nyuv2", "--index", "999"), "--index 999"),
        ("show", ("--dataset", "nyuv2", "--split", "test"), "test"),
        ("show", ("--dataset", "imagenet"), "imagenet"),
    ],
)
def test_data_commands(hostile, nyu: Path, command: str, extra: tuple[str, ...], fragment: str):
    hostile.refuses("data", command, "nyu", *extra, says=(fragment,), unchanged=["nyu"])
    assert not Path("sample.png").exists()


@pytest.mark.parametrize(
    "args",
    [
        ("profile", "b", "--rounds", "0"),
        ("profile", "b", "--threads", "0"),
        ("predict", "b", "img.png", "--threads", "0"),
        ("export", "b", "--calib", "0"),
        ("eval", "x.pt", "--limit", "0"),
        ("data", "synth", "out", "--n-train", "0"),
    ],
)
def test_typer_usage_errors_are_acceptable(hostile, args: tuple[str, ...]) -> None:
    hostile.usage_error(*args)


# ---- the device install: no PyTorch ---------------------------------------------------

NO_TORCH = (
    "import sys; sys.modules['torch'] = None\n"
    "from edgemtl.cli import main\n"
    "sys.argv = ['edgemtl', *sys.argv[1:]]\n"
    "main()\n"
)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("train", "r.yaml"), "edgemtl train needs PyTorch"),
        (("eval", "run/best.pt"), "edgemtl eval needs PyTorch"),
        (("export", "run/best.pt"), "edgemtl export from a checkpoint needs PyTorch"),
        (("export",), "edgemtl export from a checkpoint needs PyTorch"),
        (("profile", "run/best.pt"), "needs PyTorch"),
    ],
    ids=["train", "eval", "export-checkpoint", "export-newest", "profile-checkpoint"],
)
def test_without_pytorch_one_line_names_the_extra(
    hostile, recipe: Path, run: Path, args: tuple[str, ...], fragment: str
) -> None:
    """A real subprocess whose `import torch` fails, as on a device install."""
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH, *args],
        capture_output=True,
        text=True,
        cwd=hostile.folder,
        timeout=120,
        env={k: v for k, v in __import__("os").environ.items() if k != "EDGEMTL_DEBUG"},
    )
    err = proc.stderr.strip()
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and len(err.splitlines()) == 1, proc.stderr
    assert fragment in err and TRAIN_EXTRA in err, err


def test_without_pytorch_bundles_still_work(hostile, bundle: Path, image: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH, "predict", "b", "img.png", "--out", "o", "-q"],
        capture_output=True,
        text=True,
        cwd=hostile.folder,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert Path("o/img.npz").is_file()
