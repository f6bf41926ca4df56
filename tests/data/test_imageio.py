"""The one image decoder (`edgemtl.data.imageio`): scaling, channels, orientation, limits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgemtl.core.errors import UserError
from edgemtl.data.imageio import (
    describe,
    max_pixels,
    read_npy,
    read_png,
    read_rgb,
    set_max_mpx,
    to_rgb01,
)


def _orient(path: Path, pixels: np.ndarray, orientation: int, **kw: object) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.ascontiguousarray(pixels)).save(path, exif=exif.tobytes(), **kw)


def test_bit_depths_and_channels(tmp_path: Path) -> None:
    grey16 = np.array([[0, 32768, 65535]], np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    np.testing.assert_allclose(read_rgb(tmp_path / "g16.png")[0, :, 1], grey16[0] / 65535)
    assert read_png(tmp_path / "g16.png").dtype == np.uint16  # the dataset path keeps codes
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 7
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert read_rgb(tmp_path / "rgba.png").shape == (2, 3, 3)
    assert (read_rgb(tmp_path / "rgba.png")[..., 0] == 1).all()  # alpha dropped, not blended
    palette = Image.fromarray(np.array([[0, 1]], np.uint8), mode="P")
    palette.putpalette([10, 20, 30, 200, 100, 0] + [0] * 762)
    palette.save(tmp_path / "p.png")
    assert read_png(tmp_path / "p.png").tolist() == [[0, 1]]  # label maps keep indices
    np.testing.assert_allclose(read_rgb(tmp_path / "p.png")[0, 1] * 255, [200, 100, 0])
    cmyk = Image.new("CMYK", (4, 2), (0, 255, 255, 0))  # red
    cmyk.save(tmp_path / "cmyk.jpg", quality=100)
    assert read_rgb(tmp_path / "cmyk.jpg")[..., 0].min() > 0.9
    assert describe(tmp_path / "g16.png").startswith("PNG I")


def test_arrays(tmp_path: Path) -> None:
    assert to_rgb01(np.full((2, 2), 65535, np.uint16), "a").tolist() == [[[1.0] * 3] * 2] * 2
    assert to_rgb01(np.ones((2, 2, 1), bool), "a").shape == (2, 2, 3)
    np.testing.assert_array_equal(to_rgb01(np.full((1, 1, 3), 1.0005, np.float32), "a"), 1.0)
    for bad in (np.full((2, 2, 3), np.nan), np.ones((2, 2, 3), np.int32), np.ones((2, 2, 2))):
        with pytest.raises(UserError):
            to_rgb01(bad, "a")
    np.save(tmp_path / "f.npy", np.full((3, 3, 3), 0.25, np.float32))
    assert read_rgb(tmp_path / "f.npy").mean() == pytest.approx(0.25)


@pytest.mark.parametrize(("orientation", "turn"), [(3, 2), (6, 1), (8, 3)])
def test_orientation_applied_for_predict_refused_for_datasets(
    tmp_path: Path, orientation: int, turn: int
) -> None:
    upright = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    path = tmp_path / "turned.png"
    _orient(path, np.rot90(upright, k=turn), orientation)
    np.testing.assert_array_equal(read_rgb(path) * 255, upright)
    np.testing.assert_array_equal(read_rgb(path, orient=False) * 255, np.rot90(upright, k=turn))
    with pytest.raises(UserError, match=f"EXIF orientation {orientation}"):
        read_png(path)
    _orient(tmp_path / "straight.png", upright, 1)
    assert read_png(tmp_path / "straight.png").shape == (4, 6, 3)  # orientation 1 is upright


def test_pixel_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "x.png")
    np.save(tmp_path / "x.npy", np.zeros((40, 40, 3), np.float32))
    assert max_pixels() == 50_000_000
    monkeypatch.setenv("EDGEMTL_MAX_IMAGE_MPX", "0.001")
    assert max_pixels() == 1000
    for name in ("x.png", "x.npy"):
        with pytest.raises(UserError, match=r"40x40 pixels \(0.0 Mpx\) is above the 0.001 Mpx"):
            read_rgb(tmp_path / name)
    with pytest.raises(UserError, match="above"):
        read_npy(tmp_path / "x.npy")
    set_max_mpx(0.002)  # the flag wins over the environment
    try:
        assert read_rgb(tmp_path / "x.png").shape == (40, 40, 3)
    finally:
        set_max_mpx(None)
    assert max_pixels() == 1000
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's own guard is left as it was
