"""Every output path, checked before the work (issue 13, class 8).

`--out`, `--json`, `--markdown`, `--plot`, `data synth OUT`, the default run and
export folders and `EDGEMTL_CACHE`: an existing file where a folder is expected
and the reverse, a path under a file, a read-only filesystem or a folder that
cannot be written, and a suffix the writer does not know are one line from the
shared check (`edgemtl.core.paths`), before anything is read or computed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FAST_PROFILE = ("-n", "1", "--warmup", "0", "--warmup-s", "0", "--rounds", "1", "--no-power")
FAST_PROFILE += ("--idle", "0")


def _read_only_folder() -> str:
    """An existing folder nothing can be created in: /proc/sys (read-only in containers,
    root-owned elsewhere); skipped where this process could write there."""
    if os.access("/proc/sys", os.W_OK):
        pytest.skip("/proc/sys is writable here")
    return "/proc/sys"


@pytest.fixture
def afile(hostile) -> Path:
    """`f`: an existing file where outputs will be pointed."""
    Path("f").write_text("a file\n")
    return Path("f")


@pytest.fixture
def afolder(hostile) -> Path:
    """`d/` and `d.json/`, `d.png/`: existing folders where files will be pointed."""
    for name in ("d", "d.json", "d.png", "d.md"):
        Path(name).mkdir()
        (Path(name) / "keep.txt").write_text("keep\n")
    return Path("d")


ROFS = "<read-only>"


def _args(args: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(a.replace(ROFS, _read_only_folder()) if ROFS in a else a for a in args)


# (args, fragment) for each command and each kind of bad output path.
TRAIN = {
    "out-is-file": (("--out", "f"), "--out f: is a file"),
    "out-under-file": (("--out", "f/run"), "f is a file, not a folder"),
    "out-read-only": (("--out", f"{ROFS}/run"), "cannot write there"),
}


@pytest.mark.parametrize("case", sorted(TRAIN))
def test_train(hostile, recipe: Path, afile: Path, case: str) -> None:
    extra, fragment = TRAIN[case]
    hostile.refuses("train", "r.yaml", *_args(extra), says=(fragment,), unchanged=["f", "r.yaml"])
    assert not Path("runs").exists()


def test_train_runs_folder_is_a_file(hostile, recipe: Path) -> None:
    Path("runs").write_text("not a folder\n")
    hostile.refuses("train", "r.yaml", says=("runs: is a file",), unchanged=["runs"])


def test_train_cache_is_a_file(hostile, recipe: Path, afile: Path) -> None:
    hostile.refuses(
        "train", "r.yaml", "--out", "o", says=("EDGEMTL_CACHE",), env={"EDGEMTL_CACHE": "f"}
    )


EVAL = {
    "json-is-folder": (("--json", "d.json"), "--json d.json: is a folder"),
    "json-under-file": (("--json", "f/x.json"), "f is a file, not a folder"),
    "json-read-only": (("--json", f"{ROFS}/x.json"), "cannot write there"),
}


@pytest.mark.parametrize("case", sorted(EVAL))
def test_eval(hostile, run: Path, afile: Path, afolder: Path, case: str) -> None:
    extra, fragment = EVAL[case]
    args = ("eval", "run/best.pt", *_args(extra))
    hostile.refuses(*args, says=(fragment,), unchanged=["f", "d.json"])


def test_eval_cache_is_a_file(hostile, run: Path, afile: Path) -> None:
    """A synthetic run whose dataset is not cached under EDGEMTL_CACHE: the cache is checked
    before it is built."""
    hostile.refuses(
        "eval", "run/best.pt", "--limit", "2", says=("EDGEMTL_CACHE",), env={"EDGEMTL_CACHE": "f"}
    )


EXPORT = {
    "out-is-file": (("--out", "f"), "--out f: is a file"),
    "out-under-file": (("--out", "f/b"), "f is a file, not a folder"),
    "out-read-only": (("--out", f"{ROFS}/b"), "cannot write there"),
}


@pytest.mark.parametrize("case", sorted(EXPORT))
def test_export(hostile, run: Path, afile: Path, case: str) -> None:
    extra, fragment = EXPORT[case]
    args = ("export", "run/best.pt", "--head", "student", *_args(extra))
    hostile.refuses(*args, says=(fragment,), unchanged=["f"])


def test_export_default_folder_is_a_file(hostile, run: Path) -> None:
    Path("export").write_text("not a folder\n")
    hostile.refuses("export", "run/best.pt", says=("export: is a file",), unchanged=["export"])
    assert [p.name for p in Path(".").iterdir() if p.name.startswith(".")] == []


PROFILE = {
    "json-is-folder": (("--json", "d.json"), "--json d.json: is a folder"),
    "json-read-only": (("--json", f"{ROFS}/x.json"), "cannot write there"),
    "markdown-under-file": (("--markdown", "f/x.md"), "f is a file, not a folder"),
    "markdown-is-folder": (("--markdown", "d.md"), "--markdown d.md: is a folder"),
    "plot-txt": (("--plot", "p.txt"), "unsupported suffix '.txt'"),
    "plot-no-suffix": (("--plot", "p"), "unsupported suffix '(none)'"),
    "plot-read-only": (("--plot", f"{ROFS}/p.png"), "cannot write there"),
    "plot-is-folder": (("--plot", "d.png"), "--plot d.png: is a folder"),
}


@pytest.mark.parametrize("case", sorted(PROFILE))
def test_profile(hostile, bundle: Path, afile: Path, afolder: Path, case: str) -> None:
    extra, fragment = PROFILE[case]
    args = ("profile", "b", *FAST_PROFILE, *_args(extra))
    hostile.refuses(*args, says=(fragment,), unchanged=["f", "d.json", "d.md", "d.png"])


PREDICT = {
    "out-is-file": (("--out", "f"), "--out f: is a file"),
    "out-under-file": (("--out", "f/o"), "f is a file, not a folder"),
    "out-read-only": (("--out", f"{ROFS}/o"), "cannot write there"),
}


@pytest.mark.parametrize("case", sorted(PREDICT))
def test_predict(hostile, bundle: Path, image: Path, afile: Path, case: str) -> None:
    extra, fragment = PREDICT[case]
    hostile.refuses("predict", "b", "img.png", *_args(extra), says=(fragment,), unchanged=["f"])


def test_predict_default_out_is_a_file(hostile, bundle: Path, image: Path) -> None:
    Path("preds").write_text("not a folder\n")
    hostile.refuses(
        "predict", "b", "img.png", says=("--out preds: is a file",), unchanged=["preds"]
    )


SYNTH = {
    "out-is-file": ("f", "OUT f: is a file"),
    "out-under-file": ("f/data", "f is a file, not a folder"),
    "out-read-only": (f"{ROFS}/data", "cannot write there"),
    "out-not-empty": ("d", "d exists and is not empty"),
}


@pytest.mark.parametrize("case", sorted(SYNTH))
def test_data_synth(hostile, afile: Path, afolder: Path, case: str) -> None:
    out, fragment = SYNTH[case]
    args = ("data", "synth", *_args((out,)), "--n-train", "1", "--n-val", "1", "--size", "16x16")
    hostile.refuses(*args, says=(fragment,), unchanged=["f", "d"])


@pytest.fixture
def nyu(hostile) -> Path:
    """`nyu/`: a small NYUv2-layout dataset."""
    from tests.helpers.data_fixtures import write_nyuv2

    write_nyuv2(hostile.folder / "nyu")
    return Path("nyu")


CHECK = {
    "json-is-folder": (("--json", "d.json"), "--json d.json: is a folder"),
    "json-under-file": (("--json", "f/x.json"), "f is a file, not a folder"),
    "json-read-only": (("--json", f"{ROFS}/x.json"), "cannot write there"),
}


@pytest.mark.parametrize("case", sorted(CHECK))
def test_data_check(hostile, nyu: Path, afile: Path, afolder: Path, case: str) -> None:
    extra, fragment = CHECK[case]
    args = ("data", "check", "nyu", "--dataset", "nyuv2", *_args(extra))
    hostile.refuses(*args, says=(fragment,), unchanged=["f", "d.json", "nyu"])


SHOW = {
    "out-txt": (("--out", "x.txt"), "unsupported suffix '.txt'"),
    "out-is-folder": (("--out", "d.png"), "--out d.png: is a folder"),
    "out-under-file": (("--out", "f/x.png"), "f is a file, not a folder"),
    "out-read-only": (("--out", f"{ROFS}/x.png"), "cannot write there"),
}


@pytest.mark.parametrize("case", sorted(SHOW))
def test_data_show(hostile, nyu: Path, afile: Path, afolder: Path, case: str) -> None:
    extra, fragment = SHOW[case]
    args = ("data", "show", "nyu", "--dataset", "nyuv2", *_args(extra))
    hostile.refuses(*args, says=(fragment,), unchanged=["f", "d.png", "nyu"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder whatever its mode")
def test_a_folder_without_write_permission(hostile, bundle: Path, image: Path) -> None:
    Path("locked").mkdir()
    os.chmod("locked", 0o555)
    try:
        hostile.refuses("predict", "b", "img.png", "--out", "locked/o", says=("not writable",))
        hostile.refuses("profile", "b", *FAST_PROFILE, "--json", "locked/x.json")
    finally:
        os.chmod("locked", 0o755)


# ---- an output that would replace an input ------------------------------------------------


@pytest.mark.parametrize("target", ["run/best.pt", "run/summary.json", "run/recipe.yaml"])
def test_eval_never_writes_over_the_run(hostile, run: Path, target: str) -> None:
    hostile.refuses(
        "eval", "run/best.pt", "--json", target, says=("is an input",), unchanged=[target]
    )


@pytest.mark.parametrize(
    "extra",
    [
        ("--json", "b/manifest.json"),
        ("--markdown", "b/student.fp32.onnx"),
        ("--json", "b/student.fp32.onnx"),
    ],
)
def test_profile_never_writes_over_the_bundle(hostile, bundle: Path, extra: tuple[str, ...]):
    hostile.refuses("profile", "b", *FAST_PROFILE, *extra, says=("is an input",), unchanged=["b"])


def test_predict_never_writes_over_an_input(hostile, bundle: Path, image: Path) -> None:
    """`a.png`'s seg overlay would be `a.seg.png`, which is itself an input here."""
    Path("img.seg.png").write_bytes(image.read_bytes())
    hostile.refuses(
        "predict",
        "b",
        "img.png",
        "img.seg.png",
        "--out",
        ".",
        says=("--out img.seg.png: is an input",),
        unchanged=["img.png", "img.seg.png"],
    )
    assert not Path("img.npz").exists()


def test_data_commands_never_write_over_the_dataset(hostile, nyu: Path) -> None:
    target = "nyu/train/image/0.npy"
    hostile.refuses(
        "data", "check", "nyu", "--dataset", "nyuv2", "--json", target, unchanged=["nyu"]
    )
    Path("nyu/preview.png").write_bytes(b"a dataset file")
    hostile.refuses(
        "data",
        "show",
        "nyu",
        "--dataset",
        "nyuv2",
        "--out",
        "nyu/preview.png",
        says=("would replace a file of nyu",),
        unchanged=["nyu"],
    )
