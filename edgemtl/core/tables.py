"""Terminal tables that fit the console: per-head metrics (train, eval) and the generic fitter.

Why a fitter: a table wider than the terminal (or than rich's 80 columns
when output goes to a file) gets every cell cut to "…". `FitTable` keeps its
row-label ("key") columns and splits the value columns into as many
consecutive tables as the width needs, so no cell is ever truncated; at 80
columns the per-head table holds seven head columns (teacher, student,
ensemble, three decoder exits and the constant predictor) in one piece,
thanks to the compact style (no vertical rules, one space between columns)
and the task names as section rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
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


@dataclass(frozen=True)
class Col:
    """A column: header text, justification and style (rich markup style or None)."""

    header: str
    justify: str = "right"
    style: str | None = None


@dataclass
class Row:
    """One row: `keys` (one cell per key column), `values` (one per value column).

    `section`: a rule above the row; `label`: a section-title row (keys[0] in
    bold, no values) instead of data.
    """

    keys: list[str]
    values: list[str] = field(default_factory=list)
    section: bool = False
    label: bool = False


@dataclass
class FitTable:
    """A table rendered as one or more rich tables that fit the console width.

    Key columns are repeated in each piece; value columns are packed greedily
    in order. `notes` are printed once under the last piece (e.g. what Δm is
    measured against). Rendering never truncates: a piece with a single value
    column that is still too wide folds its cells instead of cutting them.
    """

    title: str
    keys: Sequence[Col]
    values: Sequence[Col]
    rows: Sequence[Row]
    notes: Sequence[str] = ()

    def piece(self, columns: Sequence[int], title: str | None) -> Table:
        """A rich table with the key columns and the value columns at `columns`."""
        table = Table(
            title=title or None,
            title_justify="left",
            box=box.SIMPLE_HEAD,
            padding=(0, 0),
            pad_edge=False,
            show_edge=False,
            collapse_padding=True,
        )
        for col in self.keys:
            table.add_column(col.header, justify=col.justify, style=col.style, overflow="fold")  # type: ignore[arg-type]
        for i in columns:
            col = self.values[i]
            table.add_column(col.header, justify=col.justify, style=col.style, overflow="fold")  # type: ignore[arg-type]
        for row in self.rows:
            if row.section and table.row_count:
                table.rows[-1].end_section = True
            if row.label:
                table.add_row(
                    f"[bold]{row.keys[0]}[/]", *[""] * (len(self.keys) - 1 + len(columns))
                )
                continue
            values = [row.values[i] if i < len(row.values) else "" for i in columns]
            table.add_row(*row.keys, *values)
        return table

    def chunks(self, console: Console, width: int) -> list[list[int]]:
        """Value-column index groups, each fitting `width` with the key columns."""
        unbounded = console.options.update_width(10_000)  # measure natural widths
        groups: list[list[int]] = []
        current: list[int] = []
        for i in range(len(self.values)):
            trial = current + [i]
            natural = console.measure(self.piece(trial, None), options=unbounded).maximum
            if current and natural > width:
                groups.append(current)
                current = [i]
            else:
                current = trial
        groups.append(current)
        return groups

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        groups = self.chunks(console, options.max_width)
        for n, group in enumerate(groups):
            title = self.title if n == 0 else None
            if len(groups) > 1:
                title = f"{self.title} ({n + 1}/{len(groups)})" if self.title else None
            yield self.piece(group, title)
        yield from self.notes


def _metric_rows(heads: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for block in heads.values():
        for task, metrics in block.items():
            if isinstance(metrics, dict):
                for name in metrics:
                    if (task, name) not in seen:
                        seen.append((task, name))
    yield from seen


def heads_table(
    heads: dict[str, dict[str, Any]],
    title: str = "",
    extra_rows: Sequence[tuple[str, str, dict[str, str]]] = (),
    delta_label: str = "",
) -> FitTable:
    """One column per head (or reference predictor), task metrics as rows grouped by task.

    `extra_rows`: (group title, metric cell, {head: text}) rows appended at the
    end (e.g. Δm against the Teacher and latency), a group title "" continuing
    the previous group; heads without a value show "-". `delta_label` names what
    the "Δm" row is measured against (e.g. "Δm vs epoch-1 student"), printed under
    the table.
    """
    cols = [Col(head, style="dim" if head.startswith("(") else None) for head in heads]
    rows: list[Row] = []
    previous = None
    for task, name in _metric_rows(heads):
        if task != previous:
            rows.append(Row([task], label=True))
            previous = task
        cells = [fmt(block.get(task, {}).get(name)) for block in heads.values()]
        rows.append(Row([f" {metric_label(name)}"], cells))
    if any("delta_m" in block for block in heads.values()):
        cells = [
            f"{block['delta_m']:+.2f}" if block.get("delta_m") is not None else "-"
            for block in heads.values()
        ]
        rows.append(Row(["Δm % ↑"], cells, section=True))
    group = None
    for task, name, values in extra_rows:
        if task:
            rows.append(Row([task], label=True, section=True))
            group = task
        rows.append(Row([f" {name}" if group else name], [values.get(h, "-") for h in heads]))
    notes = [f"Δm % ↑ {delta_label.removeprefix('Δm').strip()}"] if delta_label else []
    return FitTable(title, [Col("metric", justify="left")], cols, rows, notes)
