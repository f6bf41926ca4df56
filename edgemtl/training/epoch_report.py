"""What `edgemtl train` shows after each epoch: under the bar in a terminal, one line in a log.

Two audiences. In a terminal the epoch's bar stays on screen and the
selection metric of every head is printed under it. When stdout is not a
terminal (nohup, CI, a cluster job's log file) live bars would print nothing
until the end, so each epoch prints one plain line to stdout instead, e.g.

    epoch 2/6 | loss 1.234 (seg 0.412, depth 0.221) | val Δm vs epoch-1 student % ↑:
    teacher +12.31, student +4.52 (best) | 11.8 img/s | ETA 0:03:12

(one line; wrapped here). img/s counts training images over the epoch's
training time; ETA is the remaining epochs times the mean epoch time so far,
evaluation included. `--quiet` shows neither.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from rich.console import Console
from rich.progress import Progress

from edgemtl.core.tasks import metric_label


def clock(seconds: float) -> str:
    """H:MM:SS (hours unbounded), e.g. 192.4 -> "0:03:12"."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def metric_name(metric: str, delta_label: str) -> str:
    """The selection metric as tables word it: "Δm vs epoch-1 student % ↑" or "seg mIoU % ↑"."""
    if metric == "delta_m":
        return f"{delta_label} % ↑"
    task, _, name = metric.partition(".")
    return f"{task} {metric_label(name)}"


def metric_values(block: Mapping[str, Any], metric: str) -> dict[str, float]:
    """{head: value of `metric` ("delta_m" or "<task>.<metric>")} for every head in `block`."""
    out: dict[str, float] = {}
    for head, metrics in block.items():
        if metric == "delta_m":
            value = metrics.get("delta_m")
        else:
            task, _, name = metric.partition(".")
            value = (metrics.get(task) or {}).get(name)
        out[head] = math.nan if value is None else float(value)
    return out


def _value(metric: str, value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:+.2f}" if metric == "delta_m" else f"{value:.4g}"


def heads_text(
    block: Mapping[str, Any], metric: str, selected: str, best: bool, sep: str = ", "
) -> str:
    """ "teacher +12.31, student +4.52 (best)": each head's value; the selected head marked
    "(best)" when this epoch became best.pt."""
    cells = []
    for head, value in metric_values(block, metric).items():
        mark = " (best)" if best and head == selected else ""
        cells.append(f"{head} {_value(metric, value)}{mark}")
    return sep.join(cells)


def losses_text(losses: Mapping[str, float]) -> str:
    """ "loss 1.234 (seg 0.412, depth 0.221)": the total and each task's summed terms."""
    tasks: dict[str, float] = {}
    for name, value in losses.items():
        task, dot, _ = name.partition(".")
        if dot:
            tasks[task] = tasks.get(task, 0.0) + float(value)
    parts = ", ".join(f"{task} {value:.4g}" for task, value in tasks.items())
    total = losses.get("total")
    head = f"loss {total:.4g}" if total is not None else "loss"
    return f"{head} ({parts})" if parts else head


def epoch_line(
    epoch: int,
    epochs: int,
    row: Mapping[str, Any],
    metric: str,
    delta_label: str,
    selected: str,
    best: bool,
    images_per_s: float | None,
    eta_s: float,
) -> str:
    """The plain per-epoch line (module docstring); `epoch` is 0-based, `row` a metrics.jsonl
    row (`losses`, `heads`)."""
    rate = f"{images_per_s:.1f} img/s" if images_per_s else "- img/s"
    return " | ".join(
        (
            f"epoch {epoch + 1}/{epochs}",
            losses_text(row["losses"]),
            f"val {metric_name(metric, delta_label)}: "
            + heads_text(row["heads"], metric, selected, best),
            rate,
            f"ETA {clock(eta_s)}",
        )
    )


class EpochReporter:
    """Per-epoch output of a fit: bars on `console` when it is a terminal, plain lines on
    `stream` (default stdout) when that is not one; nothing when `quiet`."""

    def __init__(
        self,
        console: Console,
        quiet: bool,
        epochs: int,
        metric: str,
        selected: str,
        delta_label: str,
        stream: TextIO | None = None,
    ) -> None:
        self.console = console
        self.stream = stream or sys.stdout
        self.live = not quiet and console.is_terminal
        self.lines = not quiet and not _isatty(self.stream)
        self.epochs, self.metric, self.selected = epochs, metric, selected
        self.delta_label = delta_label
        self._epoch_times: list[float] = []
        self._start = self._train_s = 0.0
        self._images = 0

    def bars(self) -> Progress:
        """The epoch's progress bars (disabled when the console is not a terminal)."""
        from edgemtl.training.run_log import progress_bars

        return progress_bars(self.console, quiet=not self.live)

    def epoch_started(self) -> None:
        self._start = time.perf_counter()

    def training_done(self, images: int) -> None:
        """The epoch's training steps are over: `images` trained (all ranks)."""
        self._train_s = time.perf_counter() - self._start
        self._images = images

    def epoch_done(self, epoch: int, row: Mapping[str, Any], best: bool) -> None:
        """After validation and checkpoints: print under the bar and/or the plain line."""
        self._epoch_times.append(time.perf_counter() - self._start)
        mean = sum(self._epoch_times) / len(self._epoch_times)
        eta = mean * max(0, self.epochs - epoch - 1)
        rate = self._images / self._train_s if self._train_s > 0 and self._images else None
        if self.live:
            self.console.print(
                f"  val {metric_name(self.metric, self.delta_label)}: "
                + heads_text(row["heads"], self.metric, self.selected, best, sep="  ")
                + (f"  [dim]{rate:.1f} img/s[/]" if rate else ""),
                highlight=False,
            )
        if self.lines:
            line = epoch_line(
                epoch,
                self.epochs,
                row,
                self.metric,
                self.delta_label,
                self.selected,
                best,
                rate,
                eta,
            )
            print(line, file=self.stream, flush=True)


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False
