"""Terminal tables fit their console: the per-head table at 80 columns with seven head columns,
and any `FitTable` split into pieces instead of truncated when narrower."""

from __future__ import annotations

import io
import re

from rich.console import Console

from edgemtl.core.heads import head_names
from edgemtl.core.tables import Col, FitTable, Row, fmt, heads_table


def render(renderable: object, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def _block(scale: float) -> dict:
    return {
        "seg": {"miou": 61.6 * scale, "pixel_acc": 90.1 * scale},
        "depth": {"abs_err": 0.3763 * scale, "rel_err": 0.1102 * scale},
        "normal": {
            "mean_deg": 9.152 * scale,
            "median_deg": 7.01 * scale,
            "within_11_25": 66.5 * scale,
            "within_22_5": 81.2 * scale,
            "within_30": 88.0 * scale,
            "cosine": 0.9731 * scale,
        },
        "keypoints": {"abs_err": 0.02402 * scale},
        "edges": {"abs_err": 0.04404 * scale},
        "delta_m": -12.31 * scale,
    }


def seven_heads() -> dict:
    """Every registered head (teacher, student, ensemble, exit1-3) and the constant predictor."""
    heads = {name: _block(1 + i / 10) for i, name in enumerate(head_names())}
    heads["(constant)"] = {k: v for k, v in _block(3.0).items() if k != "delta_m"}
    return heads


def assert_fits(text: str, width: int) -> None:
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width, text
    assert "…" not in text, text


def test_heads_table_fits_80_columns_with_seven_heads_in_one_piece() -> None:
    heads = seven_heads()
    assert len(heads) == 7
    table = heads_table(
        heads,
        title="synthetic: final epoch, val split",
        extra_rows=[("vs teacher", "latency ms ↓", {h: "3.21" for h in heads})],
        delta_label="Δm vs epoch-1 student",
    )
    text = render(table, 80)
    assert_fits(text, 80)
    header = next(line for line in text.splitlines() if line.startswith("metric"))
    assert header.split()[1:] == list(heads)  # one piece: every head on the header line
    for block in heads.values():  # every value whole
        for task, metrics in block.items():
            values = metrics.values() if isinstance(metrics, dict) else []
            for value in values:
                assert fmt(value) in text, (task, value)
    assert "+12.31" not in text and "-12.31" in text
    assert "Δm % ↑ vs epoch-1 student" in text  # Δm names its reference


def test_a_narrow_console_splits_value_columns_and_never_truncates() -> None:
    heads = seven_heads()
    text = render(heads_table(heads, title="t"), 50)
    assert_fits(text, 50)
    pieces = re.findall(r"^t \((\d)/(\d)\)", text, re.M)
    assert len(pieces) >= 2 and pieces[0][1] == str(len(pieces))
    for head in heads:
        assert head in text
    # Key column repeated in every piece.
    assert text.count(" mIoU % ↑") == len(pieces)


def test_fit_table_keeps_rows_sections_and_notes() -> None:
    table = FitTable(
        "speed",
        [Col("artifact", justify="left")],
        [Col("p50 ms"), Col("img/s")],
        [Row(["a"], ["1.00", "100.0"]), Row(["b"], ["2.00", "50.0"], section=True)],
        notes=["latency: host wall time"],
    )
    text = render(table, 80)
    assert_fits(text, 80)
    lines = [line.rstrip() for line in text.splitlines()]
    assert lines[0].strip() == "speed" and lines[-1] == "latency: host wall time"
    assert any(line.startswith("a") and line.endswith("100.0") for line in lines)
