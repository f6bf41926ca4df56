"""`edgemtl data show ROOT --index i --out sample.png`: one sample, every target side by side.

Each target is drawn by its task kind (`TaskKind.colourize`, the same colours
and fixed value ranges `edgemtl predict` uses): labels in the one class palette
with a legend of class names, normals as RGB = (n + 1) / 2, maps through the
kind's colormap; invalid pixels (`TaskKind.valid_sample`) are black. The
figure has a fixed pixel size (`figure_pixels`), so the output is
predictable: 320 px per panel across. matplotlib Agg, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

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
TITLE_PX = 48
LEGEND_ROW_PX = 24
LEGEND_COLUMNS = 6
DPI = 100


def figure_pixels(n_panels: int, height: int, width: int, n_classes: int = 0) -> tuple[int, int]:
    """(width, height) in pixels of the PNG for a sample of height x width."""
    panel_h = round(PANEL_PX * height / width)
    legend_rows = math.ceil(n_classes / LEGEND_COLUMNS) if n_classes else 0
    return n_panels * PANEL_PX, panel_h + TITLE_PX + (
        legend_rows * LEGEND_ROW_PX + 8 if legend_rows else 0
    )


def _panels(
    sample: Sample, class_names: tuple[str, ...], encodings: Mapping[str, str] | None = None
) -> list[tuple[str, np.ndarray]]:
    out = [("image", np.clip(sample.image, 0, 1))]
    for key, target in sample.targets.items():
        kind = get_kind(key)
        channels = kind.output_channels(class_names or ("?",))
        rgb, legend = kind.colourize(target, class_names, encoding=(encodings or {}).get(key))
        rgb = np.array(rgb, copy=True)
        rgb[~kind.valid_sample(target, channels)] = 0
        # Labels get the figure-wide class legend; maps name their range in the title.
        title = legend[0][1] if legend and not kind.labels else key
        out.append((title, rgb))
    return out


def render_sample(
    sample: Sample,
    class_names: tuple[str, ...],
    out: Path,
    title: str = "",
    encodings: Mapping[str, str] | None = None,
) -> tuple[int, int]:
    """Write the side-by-side PNG; returns its (width, height) in pixels.

    `encodings`: what each target stores, as the reader declares (depth pictures read it).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    height, width = sample.image.shape[:2]
    panels = _panels(sample, class_names, encodings)
    n_classes = len(class_names) if any(get_kind(k).labels for k in sample.targets) else 0
    fig_w, fig_h = figure_pixels(len(panels), height, width, n_classes)
    panel_h = round(PANEL_PX * height / width)
    legend_h = fig_h - panel_h - TITLE_PX
    fig = Figure(figsize=(fig_w / DPI, fig_h / DPI), dpi=DPI)
    for i, (name, rgb) in enumerate(panels):
        ax = fig.add_axes(
            (i * PANEL_PX / fig_w, legend_h / fig_h, PANEL_PX / fig_w, panel_h / fig_h)
        )
        ax.imshow(rgb, interpolation="nearest", aspect="auto")
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
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
    title = f"{kind} {split} #{index}: {sample.name}"
    size = render_sample(sample, class_names, out, title, getattr(reader, "encodings", None))
    Console(quiet=options.quiet).print(
        f"wrote {out} ({size[0]}x{size[1]} px): {sample.name}, tasks {', '.join(sample.targets)}"
    )
    return out
