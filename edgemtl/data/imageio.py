"""The one image decoder: PNG/JPG/BMP/WebP (Pillow) and .npy files into numpy arrays.

Why one place: `predict`, every dataset reader (Folder, Taskonomy, the .npy
layouts) and `data check` read images, and each must refuse the same things
with one line naming the file: a file larger than the pixel limit (checked
from the header, before anything is decoded: decompression bombs), a mode or
dtype it cannot scale, NaN/Inf in a float frame, a truncated file. Two reading
modes:

- `read_rgb` (`predict`): H x W x 3 float32 in [0, 1] from any bit depth
  (8-bit / 255, 16-bit / 65535), grey replicated, alpha dropped, palettes
  expanded, and the EXIF orientation applied (a phone photo comes upright).
- `read_png` / `read_npy` (dataset readers): the stored values as they are
  (16-bit stays uint16, palette images keep their indices, since label maps
  are often stored that way). A non-identity EXIF orientation is refused: the
  label maps beside the image carry none, so turning one would misalign them.

The pixel limit (`DEFAULT_MAX_MPX` megapixels) is raised with `--max-image-mpx`
(predict, data check, data show) or `EDGEMTL_MAX_IMAGE_MPX`; docs/formats.md
"Limits and checks". Pillow and numpy only, no torch.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.core.errors import UserError

#: Largest image read, in megapixels (10^6 pixels): above 48-Mpx phone photos, far below
#: the sizes that take minutes and gigabytes to decode and resize.
DEFAULT_MAX_MPX = 50.0
#: Environment variable that sets the limit (megapixels) where no flag does.
MAX_MPX_ENV = "EDGEMTL_MAX_IMAGE_MPX"
#: EXIF tag 0x0112: 1 = stored upright; 2..8 = mirrored and/or turned.
ORIENTATION_TAG = 0x0112
#: Float frames may leave [0, 1] by this much (float16 copies) before it is an error.
FLOAT_TOLERANCE = 1e-3

#: Pillow mode -> (numpy dtype, channels) of the raw values `read_png` returns.
_RAW_MODES: dict[str, tuple[type, int]] = {
    "L": (np.uint8, 1),
    "P": (np.uint8, 1),
    "RGB": (np.uint8, 3),
    "RGBA": (np.uint8, 4),
    "LA": (np.uint8, 2),
    "I;16": (np.uint16, 1),
    "I;16B": (np.uint16, 1),
    "I;16L": (np.uint16, 1),
    "I": (np.uint16, 1),  # Pillow may open 16-bit greyscale as 32-bit "I"
}
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
#: Modes `read_rgb` converts through Pillow (8 bits per channel after conversion).
_EIGHT_BIT = ("1", "L", "P", "RGB", "RGBA", "LA", "PA", "RGBX", "RGBa", "La", "CMYK", "YCbCr")

_override_mpx: float | None = None


def set_max_mpx(mpx: float | None) -> None:
    """Set the pixel limit in megapixels for this process (the `--max-image-mpx` flag);
    None returns to `EDGEMTL_MAX_IMAGE_MPX` or DEFAULT_MAX_MPX."""
    global _override_mpx
    if mpx is not None and not (math.isfinite(mpx) and mpx > 0):
        raise UserError(f"--max-image-mpx {mpx}: expected a positive number of megapixels")
    _override_mpx = mpx


def max_pixels() -> int:
    """The pixel limit now in force (`set_max_mpx`, else the environment, else the default)."""
    mpx = _override_mpx
    if mpx is None:
        text = os.environ.get(MAX_MPX_ENV, "").strip()
        if text:
            try:
                mpx = float(text)
            except ValueError:
                mpx = -1.0
            if not (math.isfinite(mpx) and mpx > 0):
                raise UserError(
                    f"{MAX_MPX_ENV}={text[:40]!r}: expected a positive number of megapixels"
                )
        else:
            mpx = DEFAULT_MAX_MPX
    return int(mpx * 1e6)


def check_pixels(path: Any, height: int, width: int) -> None:
    """UserError when an H x W image (from its header) is above the pixel limit."""
    limit = max_pixels()
    if height * width > limit:
        raise UserError(
            f"{path}: {width}x{height} pixels ({height * width / 1e6:.1f} Mpx) is above the "
            f"{limit / 1e6:g} Mpx limit (a guard against decompression bombs): raise it with "
            f"--max-image-mpx or {MAX_MPX_ENV}"
        )


@contextmanager
def _opened(path: Path) -> Iterator[Any]:
    """The Pillow image of `path`, its size checked from the header before decoding."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise UserError(f"{path}: no such image file")
    limit = max_pixels()
    try:
        with warnings.catch_warnings():
            # Opening reads the header only; ours is the one guard (Pillow's own would stop
            # at its own limit with another message), checked before anything is decoded.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                img = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = pillow_limit
            with img:
                width, height = img.size
                check_pixels(path, height, width)
                Image.MAX_IMAGE_PIXELS = max(limit, 1)  # decoders that check again agree
                try:
                    yield img
                finally:
                    Image.MAX_IMAGE_PIXELS = pillow_limit
    except UserError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UserError(
            f"{path}: cannot decode as an image ({type(exc).__name__}); the file may be "
            "truncated or not a PNG/JPG"
        ) from None


def _orientation(img: Any) -> int:
    try:
        return int(img.getexif().get(ORIENTATION_TAG, 1) or 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block is no orientation
        return 1


def read_png(path: str | Path) -> np.ndarray:
    """Decode a dataset PNG to H x W (grey, palette indices) or H x W x C, uint8/uint16.

    Refuses images above the pixel limit, unsupported modes, and a non-identity
    EXIF orientation (the targets beside it carry none).
    """
    path = Path(path)
    with _opened(path) as img:
        img.load()
        mode = img.mode
        if mode not in _RAW_MODES:
            raise UserError(
                f"{path}: PNG mode {mode!r} is not supported (expected 8-bit grey/RGB "
                "or 16-bit grey)"
            )
        orientation = _orientation(img)
        if orientation != 1:
            raise UserError(
                f"{path}: EXIF orientation {orientation} (stored turned or mirrored); its "
                "targets carry no orientation, so image and labels would not line up: "
                "save the image upright without the tag"
            )
        arr = np.asarray(img)
    dtype, _ = _RAW_MODES[mode]
    if mode == "I" and arr.size and (arr.min() < 0 or arr.max() > 65535):
        raise UserError(f"{path}: 32-bit PNG values outside 0..65535 (expected 16-bit)")
    return arr.astype(dtype, copy=False)


def png_bit_depth(arr: np.ndarray) -> int:
    return 16 if arr.dtype == np.uint16 else 8


def read_npy(path: str | Path, mmap: bool = True) -> np.ndarray:
    """Open a .npy (memory-mapped where possible) after checking its header's H x W against
    the pixel limit; a bad or truncated file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        with open(path, "rb") as handle:  # the header first: no data is mapped before the check
            major, _ = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0
                if major == 1
                else np.lib.format.read_array_header_2_0
            )
            shape = read_header(handle)[0]
        if len(shape) >= 2:
            check_pixels(path, int(shape[0]), int(shape[1]))
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except UserError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(
            f"{path}: cannot read as a .npy array ({str(exc)[:120]}); the file may be truncated"
        ) from None
    if not mmap:
        try:
            arr = np.array(arr)
        except (OSError, ValueError) as exc:  # a memory map cut short surfaces here
            raise UserError(f"{path}: cannot read its data ({exc}); truncated?") from None
    return arr


def npy_header(path: str | Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header without reading the data."""
    arr = read_npy(path, mmap=True)
    return tuple(arr.shape), arr.dtype


def describe(path: str | Path) -> str:
    """The on-disk type from the header only: 'float32 .npy', 'PNG I;16', ..."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return f"{read_npy(path).dtype} .npy"
    with _opened(path) as img:
        return f"{img.format or 'image'} {img.mode}"


def to_rgb01(arr: Any, origin: Any) -> np.ndarray:
    """An image array -> H x W x 3 float32 in [0, 1].

    Accepts H x W, H x W x 1 (grey), H x W x 3, H x W x 4 (alpha dropped) of
    uint8 (/ 255), uint16 (/ 65535), bool, or finite floats in [0, 1]. Anything
    else (other integer types, NaN/Inf, values outside [0, 1]) is a UserError
    naming `origin`.
    """
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        arr = arr[..., :3] if arr.shape[2] != 1 else arr[..., 0]
    rgb_or_grey = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)
    if not rgb_or_grey or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UserError(
            f"{origin}: expected an H x W x 3 RGB (or H x W grey) image, got shape "
            f"{tuple(arr.shape)}"
        )
    check_pixels(origin, int(arr.shape[0]), int(arr.shape[1]))
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / np.float32(255)
    elif arr.dtype == np.uint16:
        out = arr.astype(np.float32) / np.float32(65535)
    elif arr.dtype == np.bool_:
        out = arr.astype(np.float32)
    elif arr.dtype.kind == "f":
        out = arr.astype(np.float32)
        finite = np.isfinite(out)
        if not finite.all():
            raise UserError(
                f"{origin}: {int((~finite).sum())} NaN/Inf values; expected a finite image"
            )
        lo, hi = float(out.min()), float(out.max())
        if lo < -FLOAT_TOLERANCE or hi > 1 + FLOAT_TOLERANCE:
            raise UserError(f"{origin}: float images must be in [0, 1] (got {lo:.3g}..{hi:.3g})")
        out = np.clip(out, 0.0, 1.0)
    else:
        raise UserError(
            f"{origin}: dtype {arr.dtype}; expected uint8, uint16 or float values in [0, 1]"
        )
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    return np.ascontiguousarray(out, dtype=np.float32)


def read_rgb(path: str | Path, orient: bool = True) -> np.ndarray:
    """An image file (PNG/JPG/BMP/WebP or .npy) as H x W x 3 float32 RGB in [0, 1].

    Any bit depth is scaled (8-bit / 255, 16-bit / 65535), grey replicated,
    alpha dropped; with `orient` the EXIF orientation is applied, so the array
    is the picture as a viewer shows it. Refuses what it cannot scale.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return to_rgb01(read_npy(path, mmap=False), path)
    from PIL import ImageOps

    with _opened(path) as img:
        img.load()
        if orient and _orientation(img) != 1:
            img = ImageOps.exif_transpose(img)
        mode = img.mode
        if mode in _SIXTEEN_BIT:
            arr = np.asarray(img)
            if arr.size and (arr.min() < 0 or arr.max() > 65535):
                raise UserError(f"{path}: {mode} values outside 0..65535 (expected 16-bit)")
            return to_rgb01(arr.astype(np.uint16), path)
        if mode == "F":
            return to_rgb01(np.asarray(img, dtype=np.float32), path)
        if mode not in _EIGHT_BIT:
            raise UserError(
                f"{path}: image mode {mode!r} is not supported (expected grey, palette, RGB(A), "
                "CMYK or 16-bit grey)"
            )
        return to_rgb01(np.asarray(img.convert("RGB")), path)
