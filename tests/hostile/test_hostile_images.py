"""Hostile and real-world images (issue 13, classes 4 and 14) through the one decoder.

Decompression bombs (a header declaring more pixels than the limit, a real image
above it) are refused from the header before decoding, for `predict`, `data check`,
`data show` and `data synth --size`; frames that cannot be scaled (NaN/Inf, other
dtypes, wrong shapes, truncated files) are one line; a dataset image stored turned
(EXIF orientation) is refused since its labels carry no orientation. What the
decoder does with real-world files (16-bit PNGs, phone JPEGs, same stems) is
pinned in tests/data/test_imageio.py and tests/deploy/test_predict.py.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.data_fixtures import write_folder, write_taskonomy


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares `width` x `height` RGB pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def jpeg_declaring(width: int, height: int) -> bytes:
    """A tiny JPEG whose frame header declares `width` x `height` pixels."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3)
    sof += b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    sos = b"\xff\xda" + struct.pack(">H", 12) + b"\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
    return b"\xff\xd8" + sof + sos + b"\x00" * 10 + b"\xff\xd9"


def npy_declaring(shape: tuple[int, ...], path: Path) -> None:
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<f4", "fortran_order": False, "shape": shape}
        )


def with_orientation(path: Path, array: np.ndarray, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(array).save(path, exif=exif.tobytes())


LIMIT = "above the 50 Mpx limit"


def _write_bombs(folder: Path) -> None:
    (folder / "bomb.png").write_bytes(png_declaring(40000, 40000))
    (folder / "bomb.jpg").write_bytes(jpeg_declaring(60000, 60000))
    npy_declaring((100000, 100000, 3), folder / "bomb.npy")
    # A real image, small on disk, above a lowered limit (--max-image-mpx 2).
    Image.fromarray(np.zeros((1500, 1500), np.uint8)).save(folder / "real.png")


@pytest.mark.parametrize(
    ("name", "extra", "fragment"),
    [
        ("bomb.png", (), "40000x40000 pixels (1600.0 Mpx) is " + LIMIT),
        ("bomb.jpg", (), "60000x60000 pixels"),
        ("bomb.npy", (), "100000x100000 pixels"),
        ("real.png", ("--max-image-mpx", "2"), "1500x1500 pixels (2.2 Mpx) is above the 2 Mpx"),
    ],
)
def test_predict_refuses_decompression_bombs(
    hostile, bundle: Path, name: str, extra: tuple[str, ...], fragment: str
) -> None:
    _write_bombs(hostile.folder)
    hostile.refuses("predict", "b", name, "--out", "o", *extra, says=(fragment,), unchanged=[name])
    assert not list(Path(".").glob("o/*"))


def test_the_limit_can_be_raised(hostile, bundle: Path) -> None:
    _write_bombs(hostile.folder)
    outcome = hostile.run("predict", "b", "real.png", "--out", "o", "--max-image-mpx", "3")
    assert outcome.code == 0, outcome.describe()
    assert Path("o/real.npz").is_file()


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf"])
def test_bad_limits(hostile, bundle: Path, image: Path, value: str) -> None:
    hostile.refuses("predict", "b", "img.png", "--max-image-mpx", value, says=("--max-image-mpx",))


def test_bad_limit_from_the_environment(hostile, bundle: Path, image: Path) -> None:
    env = {"EDGEMTL_MAX_IMAGE_MPX": "lots"}
    hostile.refuses("predict", "b", "img.png", says=("EDGEMTL_MAX_IMAGE_MPX",), env=env)


@pytest.fixture
def folder_data(hostile) -> Path:
    """`fd/`: a Folder dataset (PNG images and labels, 16-bit depth, NPY normals)."""
    write_folder(hostile.folder / "fd", {"train": 2, "val": 1}, h=16, w=24)
    return Path("fd")


FOLDER_IMAGE = Path("fd/train/images/frame_000.png")


@pytest.mark.parametrize("command", ["check", "show"])
def test_dataset_readers_refuse_bombs(hostile, folder_data: Path, command: str) -> None:
    FOLDER_IMAGE.write_bytes(png_declaring(40000, 40000))
    args = ("data", command, "fd", "--dataset", "folder")
    hostile.refuses(*args, says=("frame_000.png: 40000x40000", LIMIT), unchanged=["fd"])


def test_data_check_refuses_a_bomb_label_map(hostile, folder_data: Path) -> None:
    Path("fd/val/depth/frame_000.png").write_bytes(png_declaring(30000, 30000))
    hostile.refuses("data", "check", "fd", "--dataset", "folder", says=(LIMIT,))


def test_taskonomy_bomb(hostile) -> None:
    write_taskonomy(hostile.folder / "tk", per_building=1)
    rgb = next(Path("tk").glob("alpha/rgb/*.png"))
    rgb.write_bytes(png_declaring(20000, 20000))
    hostile.refuses("data", "check", "tk", "--dataset", "taskonomy", says=(LIMIT,))


@pytest.mark.parametrize("size", ["16000x16000", "65536x65536"])
def test_synth_size_is_bounded(hostile, size: str) -> None:
    hostile.refuses("data", "synth", "out", "--size", size, says=("--size", "Mpx"))
    assert not Path("out").exists()


# ---- frames the decoder cannot scale ---------------------------------------------------

FRAMES = {
    "nan.npy": (np.full((8, 8, 3), np.nan, np.float32), "NaN/Inf values"),
    "inf.npy": (np.full((8, 8, 3), np.inf, np.float32), "NaN/Inf values"),
    "int64.npy": (np.ones((8, 8, 3), np.int64), "dtype int64"),
    "range.npy": (np.full((8, 8, 3), 7.0, np.float32), "must be in [0, 1]"),
    "empty.npy": (np.zeros((0, 8, 3), np.float32), "expected an H x W x 3"),
    "five.npy": (np.zeros((8, 8, 5), np.float32), "expected an H x W x 3"),
    "flat.npy": (np.zeros(64, np.float32), "expected an H x W x 3"),
    "strings.npy": (np.full((8, 8, 3), "x"), "dtype <U1"),
}


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_predict_refuses_frames_it_cannot_scale(hostile, bundle: Path, name: str) -> None:
    array, fragment = FRAMES[name]
    np.save(name, array)
    hostile.refuses("predict", "b", name, "--out", "o", says=(name, fragment), unchanged=[name])


@pytest.mark.parametrize(
    ("name", "data", "fragment"),
    [
        ("text.png", b"definitely not a picture", "cannot decode as an image"),
        ("object.npy", None, "cannot read as a .npy array"),
        ("zero.npy", b"", "cannot read as a .npy array"),
        ("cut.png", "truncate", "cannot decode as an image"),
    ],
)
def test_predict_refuses_broken_files(
    hostile, bundle: Path, image: Path, name: str, data: bytes | str | None, fragment: str
) -> None:
    if data is None:
        np.save(name, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif data == "truncate":
        Path(name).write_bytes(image.read_bytes()[:120])
    else:
        Path(name).write_bytes(data)  # type: ignore[arg-type]
    hostile.refuses("predict", "b", name, "--out", "o", says=(fragment,), unchanged=[name])


@pytest.mark.parametrize("command", ["check", "show"])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_datasets_refuse_turned_images(
    hostile, folder_data: Path, command: str, orientation: int
) -> None:
    """A PNG stored turned (EXIF orientation) would not line up with its label map."""
    pixels = np.asarray(Image.open(FOLDER_IMAGE))
    with_orientation(FOLDER_IMAGE, pixels, orientation)
    hostile.refuses(
        "data", command, "fd", "--dataset", "folder", says=(f"EXIF orientation {orientation}",)
    )
