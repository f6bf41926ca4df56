"""`edgemtl predict`'s files: `<name>.npz` with every task map, and one PNG overlay per task.

Colours, value ranges and what a picture is blended over are each task kind's
(`TaskKind.colourize`, `TaskKind.overlay`), the same as `edgemtl data show`.
numpy + Pillow only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.core.tasks import Legend, get_kind


def write_outputs(
    out: Path,
    stem: str,
    image: np.ndarray,
    result: dict[str, np.ndarray],
    specs: dict[str, Any],
    class_names: dict[str, list[str]],
    overlays: bool = True,
) -> list[Path]:
    """`<stem>.npz` with every task map, plus one PNG overlay per task."""
    from edgemtl.core.io import atomic_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.npz"]
    with atomic_file(paths[0]) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **result)  # type: ignore[arg-type]
    if overlays:
        for key, value in result.items():
            kind = specs[key].kind
            units = getattr(specs[key], "units", "")
            encoding = getattr(specs[key], "encoding", None)
            pixels, legend = render(kind, value, image, class_names.get(key), units, encoding)
            path = out / f"{stem}.{key}.png"
            _save_png(path, pixels, legend)
            paths.append(path)
    return paths


def render(
    kind: str,
    value: np.ndarray,
    image: np.ndarray,
    classes: list[str] | None = None,
    units: str = "",
    encoding: str | None = None,
) -> tuple[np.ndarray, Legend]:
    """H x W x 3 uint8 picture of one task map, and its legend entries (colour or None, text).

    Colours and value ranges are the kind's (`TaskKind.colourize`, the same as
    `edgemtl data show`), read with the target's `encoding` (inverse depth is
    coloured so that near looks the same as in metric depth); `TaskKind.overlay`
    says whether the picture is blended over the image (seg) or its grey
    version (keypoints, edges).
    """
    task_kind = get_kind(kind)
    rgb, legend = task_kind.colourize(value, classes or (), units, encoding)
    colours = rgb * np.float32(255)
    if task_kind.overlay is None:
        return colours.astype(np.uint8), legend
    under, weight = task_kind.overlay
    base = (np.clip(image, 0, 1) * 255).astype(np.float32)
    if under == "grey":
        base = base.mean(axis=2, keepdims=True)
    return ((1 - weight) * base + weight * colours).astype(np.uint8), legend


#: Legend text size in pixels (Pillow's scalable default font, Pillow >= 10.1).
FONT_PX = 12


def _font() -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=FONT_PX)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _save_png(path: Path, pixels: np.ndarray, legend: Legend) -> None:
    """Picture with a legend strip underneath (colour swatches and names), widened when a
    legend line is wider than the picture so no text is cut off."""
    from PIL import Image, ImageDraw

    from edgemtl.core.io import atomic_file

    font = _font()
    h, w = pixels.shape[:2]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    swatch = FONT_PX + 4
    widths = [
        int(measure.textlength(text, font=font)) + (swatch if colour is not None else 0) + 12
        for colour, text in legend
    ]
    cell = max(widths, default=0)
    canvas_w = max(w, cell + 4)
    per_row = max(1, canvas_w // cell) if any(c is not None for c, _ in legend) else 1
    row_h = FONT_PX + 6
    rows = -(-len(legend) // per_row)
    canvas = Image.new("RGB", (canvas_w, h + rows * row_h + 4), (255, 255, 255))
    canvas.paste(Image.fromarray(pixels), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, (colour, text) in enumerate(legend):
        x = (i % per_row) * cell + 2
        y = h + 3 + (i // per_row) * row_h
        if colour is not None:
            draw.rectangle([x, y + 2, x + FONT_PX - 2, y + FONT_PX], fill=colour, outline=(0, 0, 0))
            x += swatch
        draw.text((x, y), text, fill=(0, 0, 0), font=font)
    with atomic_file(path) as tmp:
        canvas.save(tmp, format="PNG")
