"""`data check` passes good fixtures of every format and names the file for each corruption;
`data show` writes a PNG of the promised size."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgemtl.core.errors import UserError
from edgemtl.data.check import check_dataset
from edgemtl.data.show import figure_pixels
from tests.helpers.cli import run_cli
from tests.helpers.data_fixtures import write_cityscapes, write_folder, write_nyuv2, write_taskonomy


def test_good_nyuv2_report(tmp_path: Path) -> None:
    written = write_nyuv2(tmp_path)
    report = check_dataset(tmp_path, "nyuv2")
    assert report["ok"] and report["tasks"] == ["seg", "depth", "normal"]
    train = report["splits"]["train"]
    assert (train["count"], report["splits"]["val"]["count"]) == (4, 2)
    assert train["image"]["shapes"] == ["32x48"] and train["image"]["format"] == "float32 .npy"
    seg = train["tasks"]["seg"]
    # 15 of 32x48 pixels per image are ignore (the 3x5 corner).
    assert seg["invalid_fraction"] == pytest.approx(15 / (32 * 48))
    labels = np.concatenate([s["label"].ravel() for s in written["train"]])
    counts = np.bincount(labels[labels >= 0].astype(int), minlength=13)
    assert (
        list(seg["histogram"].values()) == counts.tolist() and next(iter(seg["histogram"])) == "bed"
    )
    depth = train["tasks"]["depth"]
    assert depth["invalid_fraction"] == pytest.approx(24 / (32 * 48))
    valid = np.concatenate([s["depth"].ravel() for s in written["train"]])
    assert depth["min"] == pytest.approx(valid[valid > 0].min()) and depth["max"] == pytest.approx(
        valid.max()
    )
    assert report["splits"]["train"]["tasks"]["normal"]["invalid_fraction"] == pytest.approx(
        12 / (32 * 48)
    )
    assert report["warnings"] == []
    assert train["example_files"] == {
        "image": "train/image/0.npy",
        "seg": "train/label/0.npy",
        "depth": "train/depth/0.npy",
        "normal": "train/normal/0.npy",
    }


def _synthetic(root: Path) -> None:
    from edgemtl.data.synthetic import SynthParams, write_dataset

    write_dataset(root, SynthParams(n_train=2, n_val=1, height=32, width=64, seed=1))


@pytest.mark.parametrize("kind", ["cityscapes", "taskonomy", "folder", "synthetic"])
def test_good_fixtures_pass(tmp_path: Path, kind: str) -> None:
    writers = {
        "cityscapes": write_cityscapes,
        "taskonomy": write_taskonomy,
        "folder": write_folder,
        "synthetic": _synthetic,
    }
    writers[kind](tmp_path / "d")
    tmp_path = tmp_path / "d"
    report = check_dataset(tmp_path)  # kind detected
    assert report["ok"] and report["dataset"] == kind
    if kind == "taskonomy":
        train = report["splits"]["train"]
        assert train["count"] == 4 and train["layout"] == "building_domain"
        assert train["tasks"]["depth"]["format"] == "PNG I;16"
        assert len(train["tasks"]["seg"]["histogram"]) == 17


def _nyu(root: Path) -> Path:
    write_nyuv2(root)
    return root


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


CORRUPTIONS: list[tuple[str, Callable[[Path], None], str]] = [
    (
        "missing folder",
        lambda r: (
            [p.unlink() for p in (r / "train" / "depth").iterdir()]
            and (r / "train" / "depth").rmdir()
        ),
        "train/depth: folder 'depth' for task 'depth' not found",
    ),
    (
        "count mismatch",
        lambda r: (r / "val" / "normal" / "1.npy").unlink(),
        "val/normal: holds 1 files",
    ),
    (
        "wrong shape",
        lambda r: np.save(r / "train" / "depth" / "2.npy", np.ones((32, 47), np.float32)),
        "train/depth/2.npy: shape (32, 47) does not match",
    ),
    (
        "wrong dtype",
        lambda r: np.save(r / "train" / "image" / "1.npy", np.ones((32, 48, 3), np.int64)),
        "train/image/1.npy: dtype int64; expected floating point",
    ),
    (
        "NaN",
        lambda r: np.save(r / "val" / "depth" / "0.npy", np.full((32, 48, 1), np.nan, np.float32)),
        "val/depth/0.npy: 1536 NaN/Inf values",
    ),
    (
        "label out of range",
        lambda r: np.save(r / "train" / "label" / "3.npy", np.full((32, 48), 13.0, np.float32)),
        "train/label/3.npy: label 13 out of range; expected -1 (ignore) or 0..12",
    ),
    (
        "truncated file",
        lambda r: _truncate(r / "train" / "normal" / "0.npy"),
        "train/normal/0.npy: cannot read",
    ),
    (
        "empty split",
        lambda r: [p.unlink() for p in (r / "val" / "image").iterdir()],
        "val/image: no <i>.npy files found",
    ),
    (
        "image out of [0,1]",
        lambda r: np.save(r / "train" / "image" / "0.npy", np.full((32, 48, 3), 255.0, np.float32)),
        "train/image/0.npy: image values span [255, 255]; expected [0, 1]",
    ),
]


@pytest.mark.parametrize(
    ("name", "corrupt", "fragment"), CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS]
)
def test_corruptions_name_the_file(
    tmp_path: Path, name: str, corrupt: Callable[[Path], None], fragment: str
) -> None:
    root = _nyu(tmp_path / "nyu")
    corrupt(root)
    with pytest.raises(UserError) as info:
        check_dataset(root, "nyuv2")
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_png_corruptions_name_the_file(tmp_path: Path) -> None:
    write_taskonomy(tmp_path / "t")
    rgb = tmp_path / "t" / "gamma" / "rgb" / "point_1_view_2_domain_rgb.png"
    _truncate(rgb)
    with pytest.raises(UserError, match=r"view_2_domain_rgb.png: cannot decode as an image"):
        check_dataset(tmp_path / "t", "taskonomy")
    write_taskonomy(tmp_path / "u")
    depth = tmp_path / "u" / "alpha" / "depth_zbuffer" / "point_0_view_0_domain_depth_zbuffer.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(depth)  # 8-bit where 16-bit is the format
    with pytest.raises(
        UserError, match=r"point_0_view_0_domain_depth_zbuffer.png: depth_zbuffer must be a 16-bit"
    ):
        check_dataset(tmp_path / "u", "taskonomy")
    write_folder(tmp_path / "f")
    Image.fromarray(np.full((32, 48), 7, np.uint8)).save(
        tmp_path / "f" / "val" / "labels" / "frame_001.png"
    )
    with pytest.raises(
        UserError,
        match=r"labels/frame_001.png: label 7 out of range; expected -1 \(ignore\) or 0..2",
    ):
        check_dataset(tmp_path / "f")


def test_cli_check_json_and_one_line_error(tmp_path: Path) -> None:
    root = _nyu(tmp_path / "nyu")
    proc = run_cli(
        "data", "check", str(root), "--dataset", "nyuv2", "--json", str(tmp_path / "r.json"), "-q"
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ok"] and report["splits"]["val"]["count"] == 2
    proc = run_cli("data", "check", str(root), "--dataset", "nyuv2")
    assert "ok: nyuv2" in proc.stdout and "bed" in proc.stdout
    # --limit: the table says how many of how many were read.
    proc = run_cli("data", "check", str(root), "--dataset", "nyuv2", "--limit", "3")
    assert proc.returncode == 0, proc.stderr
    assert "3 of 4" in proc.stdout  # train: 3 of its 4 images read
    assert "(train 4, 3 checked, val 2;" in proc.stdout
    np.save(root / "val" / "depth" / "1.npy", np.full((32, 48, 1), np.inf, np.float32))
    proc = run_cli("data", "check", str(root), "--dataset", "nyuv2", "-q")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("error: ")
        and "val/depth/1.npy: 1536 NaN/Inf values" in lines[0]
    )
    proc = run_cli("data", "check", str(tmp_path / "absent"), "--dataset", "cityscapes")
    assert (
        proc.returncode == 1
        and proc.stderr.strip() == f"error: {tmp_path / 'absent'}: dataset folder not found"
    )


def test_show_writes_png_of_expected_size(tmp_path: Path) -> None:
    write_folder(tmp_path / "f")
    out = tmp_path / "show.png"
    proc = run_cli(
        "data", "show", str(tmp_path / "f"), "--index", "1", "--out", str(out), "--split", "val"
    )
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as img:
        assert img.format == "PNG"
        # image + seg + depth + normal = 4 panels of 320 px; 32x48 -> 213 px tall
        # + titles 60 + colour bar strip 40 + 1 legend row.
        assert img.size == figure_pixels(4, 32, 48, 3) == (1280, 213 + 60 + 40 + 24 + 8)
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.std() > 10  # something was drawn
    # The depth panel (third) has a colour bar under it: a strip of non-white, varied pixels.
    strip = pixels[60 + 213 : 60 + 213 + 40, 2 * 320 : 3 * 320]
    assert (strip.min(axis=2) < 200).sum() > 1000 and strip.reshape(-1, 3).std(axis=0).min() > 20
    # The image panel (first) has none.
    assert (pixels[60 + 213 : 60 + 213 + 40, :320] > 250).all()
    proc = run_cli("data", "show", str(tmp_path / "f"), "--index", "9", "--out", str(out))
    assert (
        proc.returncode == 1
        and "--index 9: split 'train' of" in proc.stderr
        and "has 4 samples" in proc.stderr
    )


def test_show_panels_say_units_range_and_invalid_share() -> None:
    from edgemtl.data.sample import Sample
    from edgemtl.data.show import panels

    depth = np.linspace(1.0, 5.0, 32 * 48, dtype=np.float32).reshape(32, 48)
    depth[:8] = 0.0  # invalid rows
    normal = np.zeros((32, 48, 3), np.float32)
    normal[..., 2] = 1.0
    sample = Sample(np.zeros((32, 48, 3), np.float32), {"depth": depth, "normal": normal})
    image, d, n = panels(sample, (), units={"depth": "m"})
    assert d.title == "depth [m]" and d.invalid == pytest.approx(0.25)
    assert d.key is not None and d.key[0] == "turbo" and 1.0 <= d.key[1] < d.key[2] <= 5.0
    assert (d.rgb[:8] == 0).all()  # invalid pixels drawn black
    assert n.key is None and "RGB" in n.caption and n.invalid == 0.0
