"""`edgemtl data check ROOT --dataset KIND [--json PATH]`: run the check, print a summary."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from edgemtl.core.errors import UserError
from edgemtl.core.io import atomic_write_json
from edgemtl.core.options import DatasetFormat, OutputFiles
from edgemtl.core.paths import check_not_an_input
from edgemtl.data.readers import DATASET_SUFFIXES


@dataclass(frozen=True)
class CheckOptions:
    """What `check_command` takes besides the dataset folder.

    format: dataset kind and reader options; output: `--json PATH` ('-' =
    stdout); tasks: only these task keys (None: all); limit: the first N
    samples per split (None: all).
    """

    format: DatasetFormat = field(default_factory=DatasetFormat)
    output: OutputFiles = field(default_factory=OutputFiles)
    tasks: Sequence[str] | None = None
    limit: int | None = None
    quiet: bool = False


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _top_classes(hist: dict[str, int], k: int = 4) -> str:
    total = sum(hist.values())
    if not total:
        return "no labelled pixels"
    top = sorted(hist.items(), key=lambda kv: -kv[1])[:k]
    empty = sum(1 for n in hist.values() if n == 0)
    text = ", ".join(f"{name} {100 * n / total:.0f}%" for name, n in top)
    return text + (f"; {empty} classes absent" if empty else "")


def summary_table(report: dict[str, Any]) -> Table:
    """Per split: image and target statistics; `n` reads "50 of 512" under `--limit`."""
    table = Table(title=f"{report['dataset']} dataset at {report['root']}")
    for col in ("split", "n", "target", "on disk", "range", "mean", "invalid", "notes"):
        table.add_column(col, justify="right" if col in ("n", "mean", "invalid") else "left")
    for split, rep in report["splits"].items():
        img = rep["image"]
        checked = rep.get("checked", rep["count"])
        table.add_row(
            split,
            str(rep["count"]) if checked == rep["count"] else f"{checked} of {rep['count']}",
            "image",
            img["format"],
            f"[{_fmt(img['min'])}, {_fmt(img['max'])}]",
            _fmt(img["mean"]),
            "",
            ", ".join(img["shapes"]),
        )
        for key, st in rep["tasks"].items():
            inv = st["invalid_fraction"]
            notes = _top_classes(st["histogram"]) if "histogram" in st else ""
            table.add_row(
                "",
                "",
                key,
                st["format"],
                f"[{_fmt(st['min'])}, {_fmt(st['max'])}]",
                _fmt(st["mean"]),
                "-" if inv is None else f"{100 * inv:.1f}%",
                notes,
            )
    return table


def check_command(root: Path, options: CheckOptions) -> dict[str, Any]:
    """Check the dataset at `root`; print a summary (or the JSON); UserError when it fails."""
    from edgemtl.core.progress import bar
    from edgemtl.data.check import check_dataset

    quiet = options.quiet
    if options.output.json and not options.output.json_to_stdout:
        check_not_an_input(options.output.json, "--json", folders=[root], suffixes=DATASET_SUFFIXES)
    task_list = list(options.tasks) if options.tasks else None
    console = Console(stderr=True, quiet=quiet)
    state: dict[str, Any] = {}

    def progress(split: str, done: int, total: int) -> None:
        if state.get("split") != split:
            if "ctx" in state:
                state["ctx"].__exit__(None, None, None)
            state["split"] = split
            state["ctx"] = bar(console, f"checking {split}", total)
            state["advance"] = state["ctx"].__enter__()
        state["advance"](done, total)

    try:
        report = check_dataset(
            root,
            options.format.dataset,
            task_list,
            options=options.format.reader_options(),
            limit=options.limit,
            progress=progress,
        )
    finally:
        if "ctx" in state:
            state["ctx"].__exit__(None, None, None)
    if options.output.json_to_stdout:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        if options.output.json:
            atomic_write_json(options.output.json, report)
        out = Console(quiet=quiet)
        out.print(summary_table(report))
        for split, rep in report["splits"].items():
            files = ", ".join(f"{key}={path}" for key, path in rep.get("example_files", {}).items())
            layout = f" ({rep['layout']})" if rep.get("layout") else ""
            out.print(f"{split} #0{layout}: {files}", soft_wrap=True)
        for warning in report["warnings"][:20]:
            out.print(f"[yellow]warning:[/] {warning}")
        counts = ", ".join(
            f"{s} {r['count']}"
            + (f", {r['checked']} checked" if r.get("checked", r["count"]) != r["count"] else "")
            for s, r in report["splits"].items()
        )
        out.print(
            f"ok: {report['dataset']} at {report['root']} ({counts}; tasks "
            f"{', '.join(report['tasks'])})"
        )
    if not report["ok"]:
        raise UserError(f"{root}: check failed")
    return report
