"""`edgemtl profile`'s terminal report, designed for 80-120 columns.

Why not one wide table: an artifact has ~25 facts, and a row holding them all
needs ~180 columns, so a narrow terminal or a log file cut every cell. The
facts are regrouped, one row per artifact in each table, with `core.tables.
FitTable` splitting a table that still does not fit (never truncating):

1. speed: Pareto-front mark, artifact, batch (when several), p50 / p99 ms,
   img/s, Δm against the front's shared reference, power W and mJ/img (only
   when some row measured power; otherwise one line says why not);
2. per frame: decode / preprocess / infer / postprocess / total ms and frames/s
   (`deploy.profile.frame`);
3. accuracy: each task's headline metric and Δm against each row's reference,
   named under the table;
4. artifacts: file name, runner (and GPU), size, params, GFLOPs.

Columns that would be empty on this machine are left out; everything stays
in `--json` and `--markdown` (`deploy.report.rows`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgemtl.core.tables import Col, FitTable, Row, fmt
from edgemtl.deploy.report import (
    FRAME_STAGES,
    front_marks,
    headline_metrics,
    metric_columns,
    num,
    power_measured,
    signed,
)

#: The mark of an artifact on the latency / Δm Pareto front.
FRONT = "*"


def _title(result: dict[str, Any]) -> str:
    env = result.get("environment", {})
    cond = result.get("conditions", {})
    where = env.get("gpu") or env.get("cpu", "?")
    threads = cond.get("threads")
    extra = f", {threads} thread(s)" if threads else ""
    return f"edgemtl profile on {where} ({cond.get('device', 'cpu')}{extra})"


def speed_table(result: dict[str, Any]) -> FitTable:
    """Latency, throughput, Δm on the Pareto plane and power, one row per artifact x batch."""
    arts = result["artifacts"]
    marks = front_marks(result)
    batches = sorted({r["batch"] for a in arts for r in a.get("rows", [])})
    power = power_measured(result)
    keys = ([Col("", justify="left")] if marks else []) + [Col("artifact", justify="left")]
    values = ([Col("batch")] if len(batches) > 1 else []) + [
        Col("p50 ms ↓"),
        Col("p99 ms ↓"),
        Col("img/s ↑"),
    ]
    if marks:
        values.append(Col("Δm % ↑"))
    if power:
        values += [Col("W"), Col("mJ/img ↓")]
    body: list[Row] = []
    notes: list[str] = []
    for art in arts:
        point = marks.get(art["label"])
        mark = [FRONT if point and point["front"] else ""] if marks else []
        for row in art.get("rows", []):
            cells = [str(row["batch"])] if len(batches) > 1 else []
            if "skipped" in row:
                notes.append(f"{art['label']}, batch {row['batch']}: skipped ({row['skipped']})")
                body.append(Row(mark + [art["label"]], cells + ["-"] * (len(values) - len(cells))))
                continue
            lat = row["latency"]
            cells += [num(lat["median_ms"]), num(lat["p99_ms"]), num(lat["images_per_s"], 1)]
            if marks:
                cells.append(signed(point["delta_m"]) if point else "-")
            if power:
                watts = row.get("power") or {}
                measured = watts.get("measured")
                cells += [
                    num(watts.get("mean_w")) if measured else "-",
                    num(watts.get("mj_per_image"), 1) if measured else "-",
                ]
            body.append(Row(mark + [art["label"]], cells))
    if marks:
        block = result["pareto"]
        notes.append(
            f"{FRONT} on the Pareto front of p50 latency (batch {block['batch']}) and "
            f"Δm % ↑ vs {block['reference']}"
        )
    kind = {r.get("latency_kind") for a in arts for r in a.get("rows", []) if r.get("latency_kind")}
    if kind:
        notes.append(
            "latency: "
            + ", ".join(sorted(kind))
            + " of the network on a preprocessed input"
            + (f", batch {batches[0]}" if len(batches) == 1 else "")
        )
    if not power:
        reasons = sorted(
            {
                r["power"]["reason"]
                for a in arts
                for r in a.get("rows", [])
                if r.get("power") and r["power"].get("reason")
            }
        )
        notes += [f"power: not measured ({reason})" for reason in reasons]
    return FitTable(_title(result), keys, values, body, notes)


def frame_table(result: dict[str, Any]) -> FitTable | None:
    """Per-frame stages (median ms) of each artifact; None when not measured."""
    arts = [a for a in result["artifacts"] if a.get("frame_pipeline")]
    if not arts:
        return None
    frames = {tuple(a["frame_pipeline"]["frame"]) for a in arts}
    one = next(iter(frames)) if len(frames) == 1 else None
    values = [] if one else [Col("frame")]
    values += [Col(short) for _, short in FRAME_STAGES] + [Col("total ↓"), Col("frames/s ↑")]
    body = []
    for art in arts:
        block = art["frame_pipeline"]
        cells = [] if one else ["x".join(map(str, block["frame"]))]
        cells += [num(block["stages_ms"].get(stage)) for stage, _ in FRAME_STAGES]
        cells += [num(block["total_ms"]), num(block.get("frames_per_s"), 1)]
        body.append(Row([art["label"]], cells))
    size = f"{one[0]}x{one[1]} " if one else ""
    title = f"per frame (a {size}JPEG, batch 1), median ms"
    notes = [
        "decode: read the image file; pre: resize + normalise; post: decode the outputs "
        "and resize them to the frame; total: median of the per-frame sums (not the sum of "
        "the stage medians)"
    ]
    return FitTable(title, [Col("artifact", justify="left")], values, body, notes)


def accuracy_table(result: dict[str, Any]) -> FitTable | None:
    """Each task's headline metric and Δm per artifact; None when nothing was scored."""
    from edgemtl.core.tasks import metric_label

    scored = [a for a in result["artifacts"] if a.get("heads")]
    if not scored:
        return None
    cols = metric_columns(result)
    values = [Col(f"{task}\n{metric_label(m)}") for task, m in cols]
    has_delta = any((a.get("deltas") or {}).get("delta_m") is not None for a in scored)
    if has_delta:
        values.append(Col("Δm % ↑"))
    body = []
    refs: dict[str, list[str]] = {}
    for art in scored:
        metrics = headline_metrics(art)
        cells = [fmt(metrics[task][1]) if task in metrics else "-" for task, _ in cols]
        delta = (art.get("deltas") or {}).get("delta_m")
        if has_delta:
            cells.append(signed(delta))
        if delta is not None and art.get("reference"):
            refs.setdefault(art["reference"], []).append(art["label"])
        body.append(Row([art["label"]], cells))
    samples = {a.get("samples") for a in scored}
    split = (result.get("conditions") or {}).get("split") or "val"
    count = f", {samples.pop()} images" if len(samples) == 1 else ""
    notes = [f"Δm % ↑ vs {ref}: {', '.join(labels)}" for ref, labels in refs.items()]
    title = f"accuracy ({split} split{count})"
    return FitTable(title, [Col("artifact", justify="left")], values, body, notes)


def artifacts_table(result: dict[str, Any]) -> FitTable:
    """File name (full paths: --json), runner (and GPU), size, params and GFLOPs per artifact."""
    values = [Col("file", justify="left"), Col("runtime", justify="left")]
    values += [Col("MB"), Col("params M"), Col("GFLOPs")]
    body = []
    for art in result["artifacts"]:
        path = Path(art["path"])
        size, params, flops = art.get("size_bytes"), art.get("params"), art.get("flops")
        gpu = (art.get("device_facts") or {}).get("gpu")
        body.append(
            Row(
                [art["label"]],
                [
                    path.name,
                    f"{art['runner']} on {gpu}" if gpu else art["runner"],
                    num(size / 1e6 if size else None),
                    num(params / 1e6 if params else None, 3),
                    num(flops / 1e9 if flops else None, 3),
                ],
            )
        )
    return FitTable("artifacts", [Col("artifact", justify="left")], values, body)


def terminal_report(result: dict[str, Any]) -> list[Any]:
    """The renderables `edgemtl profile` prints, in order (module docstring)."""
    parts: list[Any] = [speed_table(result)]
    for table in (frame_table(result), accuracy_table(result)):
        if table is not None:
            parts += ["", table]
    parts += ["", artifacts_table(result)]
    return parts


def print_table(result: dict[str, Any], console: Any) -> None:
    """Print `terminal_report(result)` on `console` (a rich Console), fitted to its width."""
    for part in terminal_report(result):
        console.print(part)
