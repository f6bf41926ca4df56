"""Rich tables of per-head metrics (train summary and `edgemtl eval`).

Rows are task metrics and columns are heads, so five tasks and three heads fit
an 80-column terminal.
"""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table

from edgemtl.core.tasks import metric_label


def fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.4f}"


def heads_table(heads: dict[str, dict[str, Any]], title: str = "") -> Table:
    """One column per head (or reference predictor), one row per task metric."""
    rows: list[tuple[str, str]] = []
    for block in heads.values():
        for task, metrics in block.items():
            if isinstance(metrics, dict):
                rows += [(task, name) for name in metrics if (task, name) not in rows]
    table = Table(title=title or None)
    table.add_column("task")
    table.add_column("metric")
    for head in heads:
        table.add_column(head, justify="right", style="dim" if head.startswith("(") else None)
    previous = None
    for task, name in rows:
        cells = [fmt(block.get(task, {}).get(name)) for block in heads.values()]
        table.add_row(task if task != previous else "", metric_label(name), *cells)
        previous = task
    if any("delta_m" in block for block in heads.values()):
        cells = [
            f"{block['delta_m']:+.2f}" if block.get("delta_m") is not None else "-"
            for block in heads.values()
        ]
        table.add_row("all", "Δm % ↑", *cells, end_section=False)
    return table
