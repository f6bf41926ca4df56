"""The profile's latency-vs-accuracy chart: Pareto front, error bars, labels that do not overlap.

Points come from the result's `pareto` block (Δm against one shared reference;
`edgemtl.deploy.profile.pareto`) or, without one, from each artifact's first
task metric (docs/profile.md "Choosing an artifact"). matplotlib and adjustText
are imported only when a plot is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgemtl.core.heads import head_names
from edgemtl.core.io import atomic_file
from edgemtl.deploy.report import headline_metrics, metric_columns

#: Plot markers by head, in registry order (teacher square, student circle, ensemble triangle...).
MARKERS = "so^Dv<>P"


def plot_points(result: dict[str, Any]) -> tuple[str, list[tuple[str, float, float]]]:
    """(y-axis label, [(label, p50 ms at the smallest batch, y)]) for results without a Pareto
    block: y is the first task's headline metric (or params when nothing was scored)."""
    cols = metric_columns(result)
    points: list[tuple[str, float, float]] = []
    if cols:
        from edgemtl.core.tasks import metric_label

        task, metric = cols[0]
        ylabel = f"{task} {metric_label(metric)}"
    else:
        ylabel = "params (M): no accuracy measured (--accuracy / --data)"
    for art in result["artifacts"]:
        timed = [r for r in art.get("rows", []) if "latency" in r]
        if not timed:
            continue
        x = min(timed, key=lambda r: r["batch"])["latency"]["median_ms"]
        if cols:
            value = headline_metrics(art).get(cols[0][0])
            if value is None:
                continue
            y = value[1]
        else:
            y = (art.get("params") or 0) / 1e6
        points.append((art["label"], x, y))
    return ylabel, points


def _spread(result: dict[str, Any], label: str) -> tuple[float, float, float] | None:
    """(p10, p50, p90) latency in ms of an artifact at its smallest timed batch, from raw times."""
    import numpy as np

    for art in result["artifacts"]:
        if art["label"] != label:
            continue
        timed = [r for r in art.get("rows", []) if "latency" in r]
        if not timed:
            return None
        row = min(timed, key=lambda r: r["batch"])
        times = (row.get("times_ns") or {}).get("compute") or (row.get("times_ns") or {}).get(
            "wall"
        )
        p50 = float(row["latency"]["median_ms"])
        if not times:
            return p50, p50, p50
        lo, hi = np.percentile(np.asarray(times, dtype=np.float64) / 1e6, [10, 90])
        return float(min(lo, p50)), p50, float(max(hi, p50))
    return None


#: Colour per precision, so FP32 / FP16 / INT8 siblings of one head stay apart.
PRECISION_COLOURS = {"fp32": "#1f77b4", "fp16": "#2ca02c", "int8": "#d62728"}


def write_plot(result: dict[str, Any], path: str | Path) -> None:
    """`plot_figure` saved to `path` (PNG/SVG/PDF by suffix)."""
    import matplotlib.pyplot as plt

    fig, _ax, _texts = plot_figure(result)
    suffix = Path(path).suffix or ".png"
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format=suffix.lstrip("."))
    plt.close(fig)


def plot_figure(result: dict[str, Any]) -> tuple[Any, Any, list[Any]]:
    """Latency (p50, p10-p90 bars) vs Δm against the shared reference, Pareto front marked
    (docs/profile.md "Choosing an artifact"); without one, vs the first task's metric.
    One marker per head, one colour per precision, every point labelled without overlap.
    Returns (figure, axes, label texts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    block = result.get("pareto")
    by_label = {a["label"]: a for a in result["artifacts"]}
    if block:
        ylabel = f"Δm vs {block['reference']} (%) ↑"
        points = [(p["label"], p["latency_ms"], p["delta_m"]) for p in block["points"]]
        on_front = {p["label"] for p in block["points"] if p["front"]}
    else:
        ylabel, points = plot_points(result)
        on_front = set()
    fig, ax = plt.subplots(figsize=(7.2, 4.8), dpi=120)
    markers = {head: MARKERS[i % len(MARKERS)] for i, head in enumerate(head_names())}
    texts = []
    for label, x, y in points:
        art = by_label.get(label, {})
        spread = _spread(result, label)
        colour = PRECISION_COLOURS.get(art.get("precision", ""), "#7f7f7f")
        if spread is not None:
            ax.errorbar(
                [x],
                [y],
                xerr=[[x - spread[0]], [spread[2] - x]],
                fmt="none",
                ecolor=colour,
                alpha=0.5,
                capsize=2,
                lw=1,
            )
        filled = label in on_front or not block
        ax.scatter(
            [x],
            [y],
            marker=markers.get(art.get("head", ""), "o"),
            s=56,
            zorder=3,
            facecolors=colour if filled else "white",
            edgecolors=colour,
            linewidths=1.5,
        )
        texts.append(ax.text(x, y, label, fontsize=8, zorder=4))
    if block and len(on_front) > 1:
        front = sorted((x, y) for label, x, y in points if label in on_front)
        ax.step(
            [f[0] for f in front],
            [f[1] for f in front],
            where="post",
            color="0.5",
            lw=1,
            ls="--",
            zorder=1,
            label="Pareto front",
        )
    if block and block.get("budget_ms"):
        ax.axvline(
            block["budget_ms"], color="0.3", lw=1, ls=":", label=f"budget {block['budget_ms']:g} ms"
        )
    batch = (
        block["batch"]
        if block
        else min(
            (r["batch"] for a in result["artifacts"] for r in a.get("rows", []) if "latency" in r),
            default=1,
        )
    )
    ax.set_xlabel(f"latency p50, bars p10-p90 (ms, batch {batch}) ↓")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    env = result.get("environment", {})
    ax.set_title(
        f"latency vs accuracy on {env.get('gpu') or env.get('cpu', '?')}"
        + ("; filled = Pareto front" if block else ""),
        fontsize=9,
    )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower right")
    _place_labels(fig, ax, texts)
    return fig, ax, texts


def _place_labels(fig: Any, ax: Any, texts: list[Any]) -> None:
    """Move point labels apart (adjustText), with leader lines to their points."""
    from adjustText import adjust_text

    if not texts:
        return
    fig.tight_layout()
    adjust_text(
        texts, ax=ax, expand=(1.15, 1.3), arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6}
    )


def label_boxes(fig: Any, texts: list[Any]) -> list[tuple[float, float, float, float]]:
    """Display-space (x0, y0, x1, y1) of each label: what the no-overlap test checks."""
    renderer = fig.canvas.get_renderer()
    return [tuple(t.get_window_extent(renderer).extents) for t in texts]
