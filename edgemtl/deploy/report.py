"""Render a profile result: terminal table, JSON, Markdown table (the plot: `deploy.plot`).

One row per artifact x batch: head, precision, backend, device, size, params,
p50/p99, img/s, each task's headline metric, power and mJ/img. The JSON is the
result dict itself (every raw time, the environment); the other views are
derived from it, so they can be regenerated from a saved JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from edgemtl.core.io import atomic_write_text


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


def _num(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and string cells shared by the terminal and Markdown tables."""
    from edgemtl.core.tasks import metric_label

    cols = metric_columns(result)
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
    header += ["Δm %", "power W", "mJ/img"]
    body: list[list[str]] = []
    for art in result["artifacts"]:
        metrics = headline_metrics(art)
        facts = art.get("device_facts", {})
        device = facts.get("gpu") or facts.get("device", "")
        size = art.get("size_bytes")
        params = art.get("params")
        flops = art.get("flops")
        for row in art.get("rows", []):
            base = [
                Path(art["path"]).name,
                art["head"],
                art["precision"],
                art["runner"],
                str(device),
                str(row["batch"]),
                _num(size / 1e6 if size else None),
                _num(params / 1e6 if params else None, 3),
                _num(flops / 1e9 if flops else None, 3),
            ]
            if "skipped" in row:
                body.append(
                    base + ["skipped: " + row["skipped"]] + [""] * (len(header) - len(base) - 1)
                )
                continue
            lat = row["latency"]
            cells = base + [
                _num(lat["median_ms"]),
                _num(lat["p99_ms"]),
                _num(lat["images_per_s"], 1),
            ]
            cells += [_num(metrics[task][1], 3) if task in metrics else "-" for task, _ in cols]
            delta = (art.get("deltas") or {}).get("delta_m")
            cells.append("-" if delta is None else f"{delta:+.2f}")
            power = row.get("power") or {}
            if power.get("measured"):
                cells += [_num(power["mean_w"]), _num(power["mj_per_image"], 1)]
            else:
                cells += ["n/m", "-"]
            body.append(cells)
    return header, body


def print_table(result: dict[str, Any], console: Any) -> None:
    """Compact form of `rows` for terminals: artifact facts folded into the first cells."""
    from rich.table import Table

    header, body = rows(result)
    env = result.get("environment", {})
    table = Table(
        title=f"edgemtl profile on {env.get('gpu') or env.get('cpu', '?')}", pad_edge=False
    )
    table.add_column("artifact\nhead prec. · backend", min_width=24)
    table.add_column("batch", justify="right")
    table.add_column("MB\nparams M", justify="right")
    table.add_column("GFLOPs", justify="right")
    table.add_column("p50 ms\np99 ms", justify="right")
    table.add_column("img/s", justify="right")
    for name in header[12:]:
        table.add_column(name.replace(" ", "\n", 1), justify="right")
    for cells in body:
        first = f"{cells[0]}\n{cells[1]} {cells[2]} · {cells[3]} {cells[4]}"
        if cells[9].startswith("skipped"):
            table.add_row(
                first,
                cells[5],
                f"{cells[6]}\n{cells[7]}",
                cells[8],
                cells[9],
                *[""] * (len(header) - 11),
            )
            continue
        table.add_row(
            first,
            cells[5],
            f"{cells[6]}\n{cells[7]}",
            cells[8],
            f"{cells[9]}\n{cells[10]}",
            *cells[11:],
        )
    console.print(table)
    reasons = {
        r["power"]["reason"]
        for a in result["artifacts"]
        for r in a.get("rows", [])
        if r.get("power") and not r["power"].get("measured")
    }
    for reason in sorted(reasons):
        console.print(f"power: not measured ({reason})")


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
