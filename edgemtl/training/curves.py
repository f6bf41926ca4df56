"""`curves.png` in a run folder: training losses and each task's validation metric per head.

Redrawn from the run's history (metrics.jsonl rows) after every epoch, so a
run watched from a shell, a notebook or a cluster's file browser shows its
progress without TensorBoard. Small multiples on one figure: the losses (one
line per task plus the total, log scale), Δm per head, then one panel per
task with its headline metric (the kind's first metric, e.g. seg mIoU) per
head, with the metric's direction arrow. Colours and markers per head come
from the head registry's order, so a head keeps its colour across runs.
Torch-free (matplotlib Agg); the write is atomic (`core.io.atomic_file`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgemtl.core.heads import head_names
from edgemtl.core.io import atomic_file

CURVES_FILE = "curves.png"
#: Panels per row; a 5-task run gets 2 rows of 4 (losses, Δm, 5 tasks, one spare).
COLUMNS = 4
PANEL_INCHES = (3.4, 2.5)
DPI = 100
#: One colour and marker per head, by registry position (teacher, student, ensemble, exit1..).
HEAD_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
HEAD_MARKERS = "os^Dv<>P"


def head_style(head: str) -> dict[str, Any]:
    """matplotlib line keywords of `head`: its registry colour and marker."""
    names = head_names()
    i = names.index(head) if head in names else len(names)
    return {
        "color": HEAD_COLOURS[i % len(HEAD_COLOURS)],
        "marker": HEAD_MARKERS[i % len(HEAD_MARKERS)],
    }


def _task_losses(row: dict[str, Any]) -> dict[str, float]:
    """{task: sum of its loss terms, "total": total} of one history row."""
    out: dict[str, float] = {}
    for name, value in (row.get("losses") or {}).items():
        task, dot, _ = name.partition(".")
        key = task if dot else name
        out[key] = out.get(key, 0.0) + float(value)
    return out


def _headline(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(task, metric) of each task's first metric, in the order the history names them."""
    seen: list[tuple[str, str]] = []
    for row in rows:
        for block in row["heads"].values():
            for task, metrics in block.items():
                if isinstance(metrics, dict) and metrics and task not in [t for t, _ in seen]:
                    seen.append((task, next(iter(metrics))))
    return seen


def _finite(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def curves_figure(
    rows: Sequence[dict[str, Any]],
    title: str = "",
    delta_label: str = "Δm",
    units: Mapping[str, str] | None = None,
) -> Any:
    """The figure for history `rows` (metrics.jsonl rows, epoch 0-based, shown 1-based).

    `delta_label` names Δm's reference, e.g. "Δm vs epoch-1 student"; `units`:
    {task: units of its targets} (the task spec's), shown with absolute errors.
    Returns a matplotlib `Figure` (not attached to pyplot).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from edgemtl.core.tasks import metric_label

    epochs = [int(row["epoch"]) + 1 for row in rows]
    heads = [h for h in head_names() if any(h in row["heads"] for row in rows)]
    heads += [h for row in rows for h in row["heads"] if h not in heads]
    panels = ["losses"] + (["delta_m"] if _has_delta(rows) else [])
    tasks = _headline(rows)
    n = len(panels) + len(tasks)
    cols = min(COLUMNS, n)
    nrows = math.ceil(n / cols)
    fig = Figure(figsize=(PANEL_INCHES[0] * cols, PANEL_INCHES[1] * nrows + 0.6), dpi=DPI)
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    ax_iter = iter(axes)

    ax = next(ax_iter)
    losses = [_task_losses(row) for row in rows]
    names = [k for k in losses[-1] if k != "total"] + (["total"] if "total" in losses[-1] else [])
    for name in names:
        values = [_finite(step.get(name)) for step in losses]
        style = {"color": "0.15", "lw": 2} if name == "total" else {"lw": 1}
        ax.plot(epochs, values, marker=".", label=name, **style)
    if all(v > 0 for step in losses for v in step.values() if math.isfinite(v)):
        ax.set_yscale("log")
    ax.set_title("training loss (epoch mean) ↓", fontsize=9)
    ax.legend(fontsize=7, ncol=2, frameon=False, loc="best")

    if "delta_m" in panels:
        ax = next(ax_iter)
        for head in heads:
            values = [_finite(row["heads"].get(head, {}).get("delta_m")) for row in rows]
            ax.plot(epochs, values, label=head, **head_style(head), ms=4)
        ax.axhline(0.0, color="0.6", lw=0.8, ls=":")
        ax.set_title(f"{delta_label} (%) ↑", fontsize=9)

    for task, metric in tasks:
        ax = next(ax_iter)
        for head in heads:
            values = [
                _finite((row["heads"].get(head, {}).get(task) or {}).get(metric)) for row in rows
            ]
            ax.plot(epochs, values, label=head, **head_style(head), ms=4)
        unit = (units or {}).get(task) if metric == "abs_err" else None
        ax.set_title(
            f"val {task} {metric_label(metric)}" + (f" [{unit}]" if unit else ""), fontsize=9
        )

    for ax in axes[:n]:
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = axes[1].get_legend_handles_labels() if n > 1 else ([], [])
    top = 1 - 0.3 / fig.get_figheight() if handles and n == len(axes) else 1
    if handles and n < len(axes):  # the spare panel holds the heads' legend
        axes[n].legend(handles, labels, loc="center", title="head", fontsize=9, frameon=False)
    elif handles:
        fig.legend(handles, labels, loc="upper right", ncol=len(labels), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, top))
    return fig


def _has_delta(rows: Sequence[dict[str, Any]]) -> bool:
    return any("delta_m" in block for row in rows for block in row["heads"].values())


def write_curves(
    rows: Sequence[dict[str, Any]],
    path: str | Path,
    title: str = "",
    delta_label: str = "Δm",
    units: Mapping[str, str] | None = None,
) -> Path | None:
    """Draw `curves_figure` to the PNG `path` atomically; None (nothing written) without rows."""
    if not rows:
        return None
    fig = curves_figure(rows, title, delta_label, units)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return Path(path)
