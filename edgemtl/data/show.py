"""`edgemtl data show ROOT --index i --out sample.png`: one sample, every target side by side.

Each target is drawn by its task kind (`TaskKind.colourize`, the same colours
and fixed value ranges `edgemtl predict` uses): labels in the one class palette
with a legend of class names, normals as RGB = (n + 1) / 2, maps through the
kind's colormap with a colour bar (range and units) under the panel. Invalid
pixels (`TaskKind.valid_sample`) are black, and a panel that has any says so
with their share. The figure has a fixed pixel size (`figure_pixels`), so the
output is predictable: 320 px per panel across. matplotlib Agg, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.core.io import atomic_file
from edgemtl.core.options import DatasetFormat
from edgemtl.core.paths import check_not_an_input, check_output_file
from edgemtl.core.tasks import get_kind
from edgemtl.core.tasks.colours import class_colours
from edgemtl.data.readers import DATASET_SUFFIXES
from edgemtl.data.sample import Sample

PANEL_PX = 320
#: Figure title plus two lines of panel title (name and units; invalid share).
TITLE_PX = 60
#: The strip under the panels: colour bars with their tick labels, or a caption.
KEY_PX = 40
LEGEND_ROW_PX = 24
LEGEND_COLUMNS = 6
DPI = 100


def figure_pixels(n_panels: int, height: int, width: int, n_classes: int = 0) -> tuple[int, int]:
    """(width, height) in pixels of the PNG for a sample of height x width."""
    panel_h = round(PANEL_PX * height / width)
    legend_rows = math.ceil(n_classes / LEGEND_COLUMNS) if n_classes else 0
    return n_panels * PANEL_PX, panel_h + TITLE_PX + KEY_PX + (
        legend_rows * LEGEND_ROW_PX + 8 if legend_rows else 0
    )


@dataclass
class Panel:
    """One picture of the figure: title, H x W x 3 RGB, and what explains its colours.

    `key`: a colour bar (colormap, low, high) or None; `caption`: text under the panel
    (e.g. normals' RGB rule); `invalid`: the share of black, invalid pixels (0..1).
    """

    title: str
    rgb: np.ndarray
    key: tuple[str, float, float] | None = None
    caption: str = ""
    invalid: float = 0.0


def _panels(
    sample: Sample,
    class_names: tuple[str, ...],
    units: dict[str, str] | None = None,
    encodings: Mapping[str, str] | None = None,
) -> list[tuple[str, np.ndarray]]:
    """(title, RGB) of the image and each target: a task's title is its key."""
    return [(p.title, p.rgb) for p in panels(sample, class_names, units, encodings)]


def panels(
    sample: Sample,
    class_names: tuple[str, ...],
    units: dict[str, str] | None = None,
    encodings: Mapping[str, str] | None = None,
) -> list[Panel]:
    """The image and one `Panel` per target; `units`: {task: units} for the titles;
    `encodings`: what each target stores, as the reader declares (depth pictures read it)."""
    out = [Panel("image", np.clip(sample.image, 0, 1))]
    for key, target in sample.targets.items():
        kind = get_kind(key)
        channels = kind.output_channels(class_names or ("?",))
        rgb, legend = kind.colourize(target, class_names, encoding=(encodings or {}).get(key))
        rgb = np.array(rgb, copy=True)
        valid = kind.valid_sample(target, channels)
        rgb[~valid] = 0
        unit = (units or {}).get(key)
        title = f"{key} [{unit}]" if unit else key
        panel = Panel(title, rgb, invalid=float(1 - valid.mean()) if valid.size else 0.0)
        panel.key = kind.colour_key(target, (encodings or {}).get(key))
        if panel.key is None and legend and not kind.labels:
            panel.caption = legend[0][1]  # e.g. normals: RGB = (xyz + 1) / 2
        out.append(panel)
    return out


def render_sample(
    sample: Sample,
    class_names: tuple[str, ...],
    out: Path,
    title: str = "",
    units: dict[str, str] | None = None,
    encodings: Mapping[str, str] | None = None,
) -> tuple[int, int]:
    """Write the side-by-side PNG; returns its (width, height) in pixels.

    `units`: {task: units of its values} (e.g. depth "m"), shown in panel titles;
    `encodings`: what each target stores, as the reader declares (depth pictures read it).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.colorbar import ColorbarBase
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    height, width = sample.image.shape[:2]
    shown = panels(sample, class_names, units, encodings)
    n_classes = len(class_names) if any(get_kind(k).labels for k in sample.targets) else 0
    fig_w, fig_h = figure_pixels(len(shown), height, width, n_classes)
    panel_h = round(PANEL_PX * height / width)
    legend_h = fig_h - panel_h - TITLE_PX - KEY_PX
    fig = Figure(figsize=(fig_w / DPI, fig_h / DPI), dpi=DPI)
    bottom = (legend_h + KEY_PX) / fig_h
    for i, panel in enumerate(shown):
        left = i * PANEL_PX / fig_w
        ax = fig.add_axes((left, bottom, PANEL_PX / fig_w, panel_h / fig_h))
        ax.imshow(panel.rgb, interpolation="nearest", aspect="auto")
        note = f"\nblack: invalid ({100 * panel.invalid:.1f} %)" if panel.invalid > 0 else ""
        ax.set_title(panel.title + note, fontsize=9, linespacing=1.3)
        ax.set_axis_off()
        if panel.key is not None:
            cmap, low, high = panel.key
            bar = fig.add_axes(
                (
                    left + 0.1 * PANEL_PX / fig_w,
                    (legend_h + KEY_PX - 14) / fig_h,
                    0.8 * PANEL_PX / fig_w,
                    9 / fig_h,
                )
            )
            ColorbarBase(
                bar,
                cmap=matplotlib.colormaps[cmap],
                norm=Normalize(low, high),
                orientation="horizontal",
            )
            bar.set_xticks([low, (low + high) / 2, high])
            bar.set_xticklabels([f"{v:.3g}" for v in (low, (low + high) / 2, high)])
            bar.tick_params(labelsize=7, length=2, pad=1)
        elif panel.caption:
            fig.text(
                left + 0.5 * PANEL_PX / fig_w,
                (legend_h + KEY_PX / 2) / fig_h,
                panel.caption,
                ha="center",
                va="center",
                fontsize=8,
            )
    if n_classes:
        colors = class_colours(n_classes) / 255.0
        handles = [Patch(color=colors[i], label=name) for i, name in enumerate(class_names)]
        fig.legend(
            handles=handles,
            loc="lower center",
            ncol=LEGEND_COLUMNS,
            fontsize=8,
            frameon=False,
            bbox_to_anchor=(0.5, 0.0),
            handlelength=1.2,
            columnspacing=1.0,
        )
    if title:
        fig.suptitle(title, fontsize=9, y=1.0, va="top")
    with atomic_file(out) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    return fig_w, fig_h


def _units(reader: object, keys: Any) -> dict[str, str]:
    """{task: units} the reader declares for its targets (`data.registry.declared_target`)."""
    from edgemtl.data.registry import declared_target

    return {key: unit for key in keys if (unit := declared_target(reader, key)[0])}


@dataclass(frozen=True)
class ShowOptions:
    """What `show_command` takes besides the dataset folder: the sample (`index` in
    `split`), the PNG to write (`out`) and how to read the folder (`format`)."""

    index: int = 0
    out: Path = Path("sample.png")
    split: str = "train"
    format: DatasetFormat = field(default_factory=DatasetFormat)
    quiet: bool = False

    def __post_init__(self) -> None:
        check_output_file(self.out, "--out", (".png",))


def show_command(root: Path, options: ShowOptions) -> Path:
    """Write one sample's side-by-side PNG; returns its path."""
    from rich.console import Console

    from edgemtl.data.checked import CheckedReader
    from edgemtl.data.readers import detect_kind, kind_tasks, open_reader

    index, out, split = options.index, options.out, options.split
    root = root.expanduser()
    if not root.is_dir():
        raise UserError(f"{root}: dataset folder not found")
    check_not_an_input(out, "--out", folders=[root], suffixes=DATASET_SUFFIXES)
    kind = options.format.dataset or detect_kind(root)
    tasks = kind_tasks(kind, root)
    # The sample shown passes `data check`'s per-sample checks (a broken file is named).
    reader = CheckedReader(
        open_reader(kind, root, split, tasks, options.format.reader_options()), tasks
    )
    if not -len(reader) <= index < len(reader):
        raise UserError(
            f"--index {index}: split {split!r} of {root} has {len(reader)} samples "
            f"(0..{len(reader) - 1})"
        )
    sample = reader[index]
    class_names = tuple(getattr(reader, "class_names", ()) or ())
    size = render_sample(
        sample,
        class_names,
        out,
        title=f"{kind} {split} #{index}: {sample.name}",
        units=_units(reader, sample.targets),
        encodings=getattr(reader, "encodings", None),
    )
    Console(quiet=options.quiet).print(
        f"wrote {out} ({size[0]}x{size[1]} px): {sample.name}, tasks {', '.join(sample.targets)}"
    )
    return out
