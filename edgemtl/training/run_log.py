"""A run's logs: metrics.jsonl (the per-epoch history), TensorBoard, curves.png, summary.json,
progress bars.

Formats: docs/formats.md "Run folder". The history is also what `--resume`
continues: rows of epochs the checkpoint has not finished are dropped (the file
is rewritten) so a resumed run's metrics.jsonl reads as if never interrupted.
Only the writing process (rank 0 under torchrun) touches files; the others keep
the history in memory. TensorBoard's writer is imported when a fit starts (optional).

Why this size: every file a run writes besides checkpoints goes through this one writer,
so rank 0 alone writes and `--resume` rewrites them consistently.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Protocol

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from edgemtl.core.config import Recipe
from edgemtl.core.errors import UserError
from edgemtl.core.io import atomic_write_json, atomic_write_text
from edgemtl.core.tasks import TaskSpec
from edgemtl.data.preprocess import InputSpec
from edgemtl.data.registry import SplitReader
from edgemtl.evaluation.scoring import HeadsBlock

#: schema_version of metrics.jsonl rows, summary.json and `edgemtl eval --json`.
METRICS_SCHEMA_VERSION = 1
METRICS_FILE = "metrics.jsonl"


def progress_bars(console: Console, quiet: bool) -> Progress:
    """The console's epoch bars (one per epoch, with the running loss) and transient eval bars."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=False,
    )


class RunLog:
    """The history of a run in `run_dir`; `writes` is False on processes that must not write."""

    def __init__(self, run_dir: Path, writes: bool = True, console: Console | None = None) -> None:
        self.run_dir = run_dir
        self.writes = writes
        self.console = console or Console(stderr=True, quiet=True)
        self.history: list[dict[str, Any]] = []
        self.writer: Any = None
        self._curves_failed = False

    def _say(self, line: str) -> None:
        """A note or warning on stderr, `--quiet` or not (they are not chatter); writer only."""
        if self.writes:
            print(line, file=sys.stderr, flush=True)

    @property
    def last(self) -> dict[str, Any] | None:
        return self.history[-1] if self.history else None

    def read_back(self, upto_epoch: int) -> None:
        """Resume: keep the rows of epochs before `upto_epoch`; later ones leave the file too.

        A torn last line (the run was killed while appending it) is dropped with a
        note; any other line that is not a metrics row is a `UserError` naming it.
        """
        path = self.run_dir / METRICS_FILE
        if not path.is_file():
            self.history = []
            return
        lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
        numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
        rows = []
        for number, line in numbered:
            row = _metrics_row(line)
            if row is not None:
                rows.append(row)
            elif number == numbered[-1][0]:
                self._say(
                    f"note: {path}: dropped its torn last line {number} "
                    "(the run stopped while writing it)"
                )
            else:
                raise UserError(
                    f"{path}: line {number} is not a metrics row (expected JSON with an "
                    "integer epoch); remove it to resume"
                )
        self.history = [row for row in rows if row["epoch"] < upto_epoch]
        if self.writes:
            atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in self.history))

    def open_tensorboard(self, purge_step: int) -> None:
        """Start TensorBoard events in `tensorboard/` (events from `purge_step` on are replaced)."""
        if not self.writes:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.console.print(
                "[yellow]tensorboard is not installed: no TensorBoard events written[/]"
            )
            return
        self.writer = SummaryWriter(
            log_dir=str(self.run_dir / "tensorboard"), purge_step=purge_step
        )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def log_epoch(
        self,
        epoch: int,
        block: HeadsBlock,
        losses: dict[str, float],
        weights: dict[str, float] | None = None,
        loss_median: float | None = None,
        warnings: list[str] | None = None,
    ) -> dict[str, Any]:
        """Append one metrics.jsonl row (and its TensorBoard scalars); return the row.

        `loss_median`: the epoch's median step loss; `warnings`: the divergence
        warnings of this epoch (`edgemtl.training.divergence`), kept only when any.
        """
        row: dict[str, Any] = {
            "schema_version": METRICS_SCHEMA_VERSION,
            "epoch": epoch,
            "split": "val",
            "heads": block,
            "losses": losses,
        }
        if weights:
            row["weights"] = weights
        if loss_median is not None:
            row["loss_median"] = loss_median
        if warnings:
            row["warnings"] = list(warnings)
            for warning in warnings:
                self._say(f"warning: {warning}")
        self.history.append(row)
        if not self.writes:
            return row
        with open(self.run_dir / METRICS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        if self.writer is not None:
            self._scalars(epoch, block, losses, weights or {})
        return row

    def _scalars(
        self, epoch: int, block: HeadsBlock, losses: dict[str, float], weights: dict[str, float]
    ) -> None:
        for name, value in losses.items():
            self.writer.add_scalar(f"loss/{name}", value, epoch)
        for name, value in weights.items():
            self.writer.add_scalar(f"weight/{name}", value, epoch)
        for head, metrics in block.items():
            for task, values in metrics.items():
                if isinstance(values, dict):
                    for name, value in values.items():
                        self.writer.add_scalar(f"{head}/{task}/{name}", value, epoch)
                else:
                    self.writer.add_scalar(f"{head}/{task}", values, epoch)
        self.writer.flush()

    def draw_curves(
        self, title: str, delta_label: str, units: dict[str, str] | None = None
    ) -> None:
        """Redraw `curves.png` from the history (`training.curves`). A picture that cannot be
        drawn is worth a warning, never a stopped run: the error is printed once."""
        if not self.writes or not self.history:
            return
        from edgemtl.training.curves import CURVES_FILE, write_curves

        try:
            write_curves(self.history, self.run_dir / CURVES_FILE, title, delta_label, units)
        except Exception as exc:  # noqa: BLE001 - matplotlib, fonts or the disk
            if not self._curves_failed:
                self.console.print(f"[yellow]warning:[/] {CURVES_FILE} not drawn: {exc}")
            self._curves_failed = True

    def heads_of(self, epoch: int | None) -> HeadsBlock | None:
        """The heads block logged for `epoch` (None when that epoch is not in the history)."""
        if epoch is None or epoch >= len(self.history):
            return None
        return self.history[epoch]["heads"]


def _metrics_row(line: str) -> dict[str, Any] | None:
    """One parsed metrics.jsonl row, or None when `line` is not one (torn, foreign)."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    epoch = row.get("epoch") if isinstance(row, dict) else None
    if (
        not isinstance(epoch, int)
        or isinstance(epoch, bool)
        or not isinstance(row.get("heads"), dict)
    ):
        return None
    return row


class _Named(Protocol):
    name: str


class _WorldSize(Protocol):
    world_size: int


class _Selection(Protocol):
    head: str
    best_epoch: int | None

    def to_dict(self) -> dict[str, Any]: ...


class Trainer(Protocol):
    """What the summary reads of `training.trainer.Trainer` (which imports this module)."""

    log: RunLog
    selection: _Selection
    recipe: Recipe
    train_reader: SplitReader
    val_reader: SplitReader
    specs: list[TaskSpec]
    input_spec: InputSpec
    run_dir: Path
    balancer: _Named
    device: torch.device
    dist: _WorldSize
    model: Any  # MultiTaskNet (head_module, parameters)
    method: Any  # Method (eval_heads)
    threads: Any  # edgemtl.core.threads.ThreadChoice


def write_summary(trainer: Trainer, elapsed: float, images_seen: int) -> dict[str, Any]:
    """summary.json of a finished fit (docs/formats.md "summary.json"); returns its content.

    `elapsed`: wall seconds of the fit; `images_seen`: training images over all ranks.
    The constant predictor's scores are computed on rank 0 only (None elsewhere).
    """
    from edgemtl.evaluation.baselines import score_constants
    from edgemtl.evaluation.reference import reference_name
    from edgemtl.training.head_costs import head_latency_ms, versus_teacher

    log, selection, recipe = trainer.log, trainer.selection, trainer.recipe
    last = log.last
    constants: dict[Any, Any] = {None: None}
    if log.writes:
        constants = score_constants(
            trainer.train_reader,
            trainer.val_reader,
            trainer.specs,
            trainer.input_spec,
            recipe.train.eval_limit,
        )
    summary = {
        "schema_version": METRICS_SCHEMA_VERSION,
        "recipe": recipe.name,
        "run_dir": str(trainer.run_dir),
        "epochs": recipe.train.epochs,
        "select": selection.to_dict(),
        "reference": recipe.train.reference,
        "delta_m_vs": reference_name(recipe.train.reference, selection.head),
        "balancer": trainer.balancer.name,
        "weights": last.get("weights") if last else None,
        "final": last["heads"] if last else {},
        "constant_predictor": constants[next(iter(constants))],
        "best_epoch": selection.best_epoch,
        "best": log.heads_of(selection.best_epoch),
        "wall_time_s": round(elapsed, 2),
        "train_images_per_s": round(images_seen / elapsed, 2) if elapsed > 0 else None,
        "device": str(trainer.device),
        "threads": torch.get_num_threads(),
        "thread_choice": trainer.threads.to_dict(),
        "world_size": trainer.dist.world_size,
        "vs_teacher": None,
        "warnings": [w for row in log.history for w in row.get("warnings", [])],
    }
    if log.writes and last:
        latency = head_latency_ms(trainer.model, trainer.method.eval_heads, recipe.data.size)
        summary["vs_teacher"] = versus_teacher(last["heads"], latency)
        summary["latency_note"] = (
            f"PyTorch eager on {trainer.device}, batch 1, "
            f"{torch.get_num_threads()} threads, median of 20"
        )
    if log.writes:
        atomic_write_json(log.run_dir / "summary.json", summary)
    return summary
