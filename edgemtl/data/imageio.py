"""Reading PNG and .npy files into raw numpy arrays, with errors that name the file.

Why one place: Taskonomy and Folder readers (and `data check`) must tell a
truncated PNG, an 8-bit file where 16-bit was expected, or an unreadable .npy
apart, and say which file it was. Pillow decodes PNG (it is a base dependency;
no torch). 16-bit greyscale PNGs come back as uint16.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgemtl.core.errors import UserError

#: Pillow mode -> (numpy dtype, channels) for the PNG modes we accept.
_MODES: dict[str, tuple[type, int]] = {
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


def read_png(path: Path) -> np.ndarray:
    """Decode a PNG to H x W (greyscale, palette indices) or H x W x C uint8/uint16.

    Palette images keep their indices (label maps are often saved that way).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode not in _MODES:
                raise UserError(
                    f"{path}: PNG mode {mode!r} is not supported (expected 8-bit grey/RGB "
                    "or 16-bit grey)"
                )
            arr = np.asarray(img)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UserError(
            f"{path}: cannot decode as PNG ({exc.__class__.__name__}: {exc}); "
            "the file may be truncated or not a PNG"
        ) from None
    dtype, _ = _MODES[mode]
    if mode == "I" and arr.size and (arr.min() < 0 or arr.max() > 65535):
        raise UserError(f"{path}: 32-bit PNG values outside 0..65535 (expected 16-bit)")
    return arr.astype(dtype, copy=False)


def png_bit_depth(arr: np.ndarray) -> int:
    return 16 if arr.dtype == np.uint16 else 8


def read_npy(path: Path, mmap: bool = True) -> np.ndarray:
    """Open a .npy (memory-mapped where possible); a bad or truncated file is a UserError."""
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(
            f"{path}: cannot read as a .npy array ({exc}); the file may be truncated"
        ) from None


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header without reading the data."""
    arr = read_npy(path, mmap=True)
    return tuple(arr.shape), arr.dtype
