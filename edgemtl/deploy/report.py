"""Render a profile result: JSON, the Markdown table, and the cells both tables share.

The Markdown table keeps every fact in one row per artifact x batch: file,
head, precision, backend, device, size, params, FLOPs, p50/p99, img/s, each
task's headline metric, Δm and what it is measured against, the Pareto-front
mark, the per-frame stages, power and mJ/img. The terminal view
(`deploy.report_terminal.print_table`) regroups the same facts into tables that
fit 80 columns; the plot is `deploy.plot`. The JSON is the result dict itself (every
raw time, the environment); the other views are derived from it, so they can
be regenerated from a saved JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from edgemtl.core.io import atomic_write_text

#: The per-frame stages in table order (`deploy.profile.frame.STAGES`), with short headers.
FRAME_STAGES = (
    ("decode", "decode"),
    ("preprocess", "pre"),
    ("infer", "infer"),
    ("postprocess", "post"),
)


def headline_metrics(artifact: dict[str, Any]) -> dict[str, tuple[str, float]]:
    """task -> (metric name, value): the first metric of each task (the tables' order)."""
    heads = artifact.get("heads") or {}
    block = heads.get(artifact["head"]) or {}
    out: dict[str, tuple[str, float]] = {}
    for task, metrics in block.items():
        if isinstance(metrics, dict) and metrics:
            name = next(iter(metrics))
            out[task] = (name, float(metrics[name]))
    return out


def metric_columns(result: dict[str, Any]) -> list[tuple[str, str]]:
    cols: list[tuple[str, str]] = []
    for art in result["artifacts"]:
        for task, (name, _) in headline_metrics(art).items():
            if (task, name) not in cols:
                cols.append((task, name))
    return cols


def num(value: float | None, digits: int = 2) -> str:
    """`value` with `digits` decimals; "-" for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def signed(value: float | None) -> str:
    """A Δm cell: "+1.23" / "-0.40"; "-" for None."""
    return "-" if value is None else f"{value:+.2f}"


def front_marks(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """label -> its Pareto point ({latency_ms, delta_m, front}); empty without a front."""
    block = result.get("pareto") or {}
    return {p["label"]: p for p in block.get("points", [])}


def device_name(art: dict[str, Any]) -> str:
    facts = art.get("device_facts", {})
    return str(facts.get("gpu") or facts.get("device", ""))


def power_measured(result: dict[str, Any]) -> bool:
    """Whether any row measured power (else the power columns are left out of the terminal)."""
    return any(
        (row.get("power") or {}).get("measured")
        for art in result["artifacts"]
        for row in art.get("rows", [])
    )


def rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and string cells of the full flat table (Markdown): every fact, one row per
    artifact x batch; skipped batches say why in the p50 cell."""
    from edgemtl.core.tasks import metric_label

    cols = metric_columns(result)
    marks = front_marks(result)
    header = [
        "artifact",
        "head",
        "prec.",
        "backend",
        "device",
        "batch",
        "size MB",
        "params M",
        "GFLOPs",
        "p50 ms",
        "p99 ms",
        "img/s",
    ]
    # e.g. "seg mIoU %↑": label and direction from the metric's task kind.
    header += [f"{task} {metric_label(m, spaced=False)}" for task, m in cols]
    header += ["Δm %", "Δm vs", "Pareto front", "frame ms"]
    header += [f"{short} ms" for _, short in FRAME_STAGES]
    header += ["power W", "mJ/img"]
    body: list[list[str]] = []
    for art in result["artifacts"]:
        metrics = headline_metrics(art)
        size, params, flops = art.get("size_bytes"), art.get("params"), art.get("flops")
        frame = art.get("frame_pipeline") or {}
        stages = frame.get("stages_ms") or {}
        for row in art.get("rows", []):
            base = [
                Path(art["path"]).name,
                art["head"],
                art["precision"],
                art["runner"],
                device_name(art),
                str(row["batch"]),
                num(size / 1e6 if size else None),
                num(params / 1e6 if params else None, 3),
                num(flops / 1e9 if flops else None, 3),
            ]
            if "skipped" in row:
                body.append(
                    base + ["skipped: " + row["skipped"]] + [""] * (len(header) - len(base) - 1)
                )
                continue
            lat = row["latency"]
            cells = base + [
                num(lat["median_ms"]),
                num(lat["p99_ms"]),
                num(lat["images_per_s"], 1),
            ]
            cells += [num(metrics[task][1], 3) if task in metrics else "-" for task, _ in cols]
            cells.append(signed((art.get("deltas") or {}).get("delta_m")))
            cells.append(art.get("reference") or "-")
            point = marks.get(art["label"])
            cells.append("-" if point is None else ("yes" if point["front"] else "no"))
            cells.append(num(frame.get("total_ms")))
            cells += [num(stages.get(stage)) for stage, _ in FRAME_STAGES]
            power = row.get("power") or {}
            if power.get("measured"):
                cells += [num(power["mean_w"]), num(power["mj_per_image"], 1)]
            else:
                cells += ["n/m", "-"]
            body.append(cells)
    return header, body


def write_json(result: dict[str, Any], path: str | Path) -> None:
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")


def markdown(result: dict[str, Any]) -> str:
    header, body = rows(result)
    env = result.get("environment", {})
    lines = [
        f"Profiled with edgemtl {env.get('edgemtl', '')} on {env.get('cpu', '?')}"
        + (f", {env['gpu']} (driver {env.get('driver')})" if env.get("gpu") else "")
        + f"; ONNX Runtime {env.get('onnxruntime')}"
        + (f", TensorRT {env['tensorrt']}" if env.get("tensorrt") else "")
        + ".",
        "",
    ]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" if i < 5 else "---:" for i in range(len(header))) + "|")
    for cells in body:
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_markdown(result: dict[str, Any], path: str | Path) -> None:
    atomic_write_text(path, markdown(result))
