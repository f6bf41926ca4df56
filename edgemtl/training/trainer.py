"""The training loop: build a run's parts, fit epoch by epoch, evaluate, keep checkpoints.

Resume is exact: the batch order is a pure function of (seed, epoch), the
position inside an epoch is saved, and model, optimizer, scheduler and torch
RNG states travel in `last.pt`. A NaN/Inf loss stops training before the bad
step is applied, so the last checkpoint stays good; NaN/Inf weights and finite
divergence: `divergence`.

The parts live in modules of their own (edgemtl/training/): the optimizer step
(`step`), optimizer and schedule (`optim`), checkpoint files (`checkpoint`) and
the trainer's state in them (`run_state`), per-epoch validation (`validation`),
metrics.jsonl / TensorBoard / summary.json / progress bars (`run_log`), the
best.pt rule (`selection`), the device (`device`); the `edgemtl train` command
is `train_command`. Under `torchrun` every process runs this loop on its slice
of each global batch (`distributed` holds the conventions); rank 0 alone writes.

Why this size: the fit itself (an epoch's steps, validation, logs, checkpoints and the
per-epoch report, `epoch_report`) reads top to bottom here; every part that can stand
alone already lives in the modules above.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress

from edgemtl.core.checkpoint_schema import Checkpoint, Position
from edgemtl.core.config import Recipe, dump_yaml
from edgemtl.core.errors import UserError
from edgemtl.core.io import atomic_write_text, sweep_temporaries
from edgemtl.core.tasks import TaskSpec, make_spec
from edgemtl.data.checked import CheckedReader
from edgemtl.data.preprocess import InputSpec
from edgemtl.data.registry import SplitReader, dataset_record, declared_target, open_split
from edgemtl.evaluation.scoring import HeadsBlock
from edgemtl.training import run_log, run_state
from edgemtl.training.amp import Precision
from edgemtl.training.checkpoint import save_checkpoint
from edgemtl.training.data import PreparedSplit, one_line_errors, steps_per_epoch, train_loader
from edgemtl.training.device import pick_device, prepare_model, training_threads
from edgemtl.training.distributed import Dist
from edgemtl.training.divergence import (
    divergence_warnings,
    non_finite_parameter,
    stop_if_non_finite,
)
from edgemtl.training.epoch_report import EpochReporter
from edgemtl.training.methods import Method, StepContext, build_method
from edgemtl.training.methods.balancers import Balancer, build_balancer
from edgemtl.training.models.network import MultiTaskNet
from edgemtl.training.optim import build_optimizer, build_scheduler, parameter_groups
from edgemtl.training.run_log import RunLog
from edgemtl.training.selection import Selection
from edgemtl.training.sharding import SampleTrace, check_batch
from edgemtl.training.step import NonFinite, TrainStep, epoch_means, epoch_task_losses
from edgemtl.training.validation import validate


class TrainingInterrupted(Exception):
    """Raised after Ctrl-C once `last.pt` holds the exact position to resume from."""


def task_specs_for(recipe: Recipe, reader: SplitReader) -> list[TaskSpec]:
    """One spec per recipe task; labels kinds take the reader's class names, every task the
    units and encoding its reader declares."""
    classes = list(reader.class_names)
    return [make_spec(key, classes, *declared_target(reader, key)) for key in recipe.tasks]


class Trainer:
    """One network trained by one recipe in `run_dir` (see the module docstring)."""

    def __init__(
        self,
        recipe: Recipe,
        run_dir: Path,
        device: str | None = None,
        quiet: bool = False,
        console: Console | None = None,
        step_callback: Callable[[Position], None] | None = None,
        dist: Dist | None = None,
    ) -> None:
        self.recipe = recipe
        self.run_dir = run_dir
        self.dist = dist or Dist()
        self.device = pick_device(device)
        if self.device.type == "cuda" and self.dist.active:
            self.device = torch.device("cuda", self.dist.local_rank)
        self.quiet = quiet or not self.dist.is_main
        self.console = console or Console(stderr=True, quiet=self.quiet)
        self.step_callback = step_callback
        cfg = recipe.train
        self.threads = training_threads(cfg, self.device.type)
        torch.manual_seed(cfg.seed)
        self.record = dataset_record(recipe.data)
        keys = list(recipe.tasks)
        with self.console.status("preparing data") if not self.quiet else contextlib.nullcontext():
            self.train_reader = open_split(self.record, "train", keys)
            self.val_reader = open_split(self.record, "val", keys)
            if recipe.data.check:  # data check's per-sample checks as each sample is read
                self.train_reader = CheckedReader(self.train_reader, keys)
                self.val_reader = CheckedReader(self.val_reader, keys)
        size = recipe.data.size
        self.input_spec = InputSpec(size[0], size[1], recipe.data.mean, recipe.data.std)
        self.specs = task_specs_for(recipe, self.train_reader)
        self.method: Method = build_method(recipe, self.specs)
        self.model: MultiTaskNet = self.method.build_model().to(self.device)
        prepare_model(self.model, cfg, self.device, self.dist)
        self.extra = self.method.extra_module()
        if self.extra is not None:
            self.extra.to(self.device)
        weights = {key: task.weight for key, task in recipe.tasks.items()}
        self.balancer: Balancer = build_balancer(cfg.balancer, weights)
        balancer_module = self.balancer.module()
        if balancer_module is not None:
            balancer_module.to(self.device)
        self.method.cut_shared = self.balancer.needs_representation
        if not self.balancer.exposes_weights:
            self.console.print(
                f"train.balancer {cfg.balancer.name}: torchjd exposes no per-task weights for "
                'it, so metrics.jsonl has no "weights"'
            )
        groups = parameter_groups(self.method, self.model, (self.extra, balancer_module))
        self.optimizer = build_optimizer(cfg.optimizer, groups)
        self.scheduler = build_scheduler(cfg.scheduler, self.optimizer)
        self.steps_per_epoch = steps_per_epoch(len(self.train_reader), cfg.batch_size)
        self.chunk_size = check_batch(cfg.batch_size, self.dist.world_size, cfg.micro_batches)
        self.precision = Precision(cfg.amp, self.device)
        self.train_step = TrainStep(
            cfg, self.model, self.method, self.balancer, self.optimizer, self.precision, self.dist
        )
        if self.steps_per_epoch == 0:
            raise UserError(
                f"train.batch_size {cfg.batch_size} is larger than the training split "
                f"({len(self.train_reader)} images)"
            )
        self.selection = Selection.for_recipe(recipe, self.method.eval_heads)
        self.position = Position()
        self.log = RunLog(run_dir, writes=self.dist.is_main, console=self.console)

    # ------------------------------------------------------------ checkpoints
    def checkpoint_payload(self) -> dict[str, Any]:
        return run_state.checkpoint_payload(self)

    def save(self, name: str) -> Path:
        """Write `run_dir/name` (rank 0 only; every rank gets the path); UserError if NaN/Inf."""
        path = self.run_dir / name
        stop_if_non_finite(self.model, self.run_dir / "last.pt", self.position)
        if self.dist.is_main:
            save_checkpoint(path, self.checkpoint_payload())
        return path

    def restore(self, ckpt: Checkpoint) -> None:
        """Continue exactly where `ckpt` (a last.pt) stopped (`run_state.restore`)."""
        run_state.restore(self, ckpt)

    # -------------------------------------------------------------- evaluate
    @torch.inference_mode()
    def infer(self, images: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        """Every evaluated head's outputs for a preprocessed N x 3 x H x W float32 batch."""
        x = torch.from_numpy(images).to(self.device)
        if self.recipe.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        outputs = self.model(x, heads=self.method.eval_heads)
        return {
            head: {k: v.float().cpu().numpy() for k, v in tasks.items()}
            for head, tasks in outputs.items()
        }

    def evaluate(self, progress: Progress | None = None) -> HeadsBlock:
        """Every head's metrics on the val split (`train.eval_limit` images), with Δm."""
        cfg = self.recipe.train
        self.model.eval()
        try:
            block = validate(
                self.infer,
                self.val_reader,
                self.input_spec,
                self.specs,
                self.method.eval_heads,
                self.dist,
                cfg.eval_limit,
                max(cfg.batch_size, 8),
                progress,
            )
        finally:
            self.model.train()
        return self.selection.add_delta_m(block)

    # ------------------------------------------------------------------ train
    def init_from_data(self) -> None:
        """Fresh runs start each head's output at the constant predictor of the training split."""
        from edgemtl.evaluation.baselines import fit_constants

        self.model.init_outputs(fit_constants(self.train_reader, self.specs, self.input_spec))

    def fit(self) -> dict[str, Any]:
        """Train from `self.position` to `train.epochs`; return (and write) summary.json.

        Raises `TrainingInterrupted` on Ctrl-C (after saving last.pt) and
        `UserError` when a loss is not finite.
        """
        cfg = self.recipe.train
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            sweep_temporaries(self.run_dir)  # of killed runs: a half-written last.pt (core/io.py)
            atomic_write_text(self.run_dir / "recipe.yaml", dump_yaml(self.recipe))
        self.log.open_tensorboard(purge_step=self.position.epoch)
        from edgemtl.data.augment import build_augmenter

        self.dist.broadcast_module(self.model, self.extra, self.balancer.module())
        trace = SampleTrace(self.dist.rank)
        data = self.recipe.data
        encodings = {s.key: s.encoding for s in self.specs if s.encoding}
        augment = build_augmenter(data.augment, data.size, encodings)
        dataset = PreparedSplit(self.train_reader, self.input_spec, augment=augment, seed=cfg.seed)
        start_time = time.perf_counter()
        images_seen = 0
        self.model.train()
        reporter = EpochReporter(
            self.console,
            self.quiet,
            cfg.epochs,
            self.selection.metric,
            self.selection.head,
            self.delta_label,
        )
        try:
            while self.position.epoch < cfg.epochs:
                # One bar per epoch, closed before the epoch's report, which prints under it.
                with reporter.bars() as progress:
                    images_seen += self._epoch(dataset, trace, progress, reporter)
                epoch = self.position.epoch - 1
                reporter.epoch_done(epoch, self.log.history[-1], self.selection.best_epoch == epoch)
        except KeyboardInterrupt:
            self.save("last.pt")
            raise TrainingInterrupted(
                f"interrupted at epoch {self.position.epoch + 1}, batch {self.position.batch}: "
                f"{self.run_dir / 'last.pt'} holds the exact position; "
                f"continue with --resume --out {self.run_dir}"
            ) from None
        finally:
            self.log.close()
        return run_log.write_summary(self, time.perf_counter() - start_time, images_seen)

    @property
    def delta_label(self) -> str:
        """What this run's Δm is measured against, e.g. "Δm vs epoch-1 student"."""
        from edgemtl.evaluation.reference import delta_m_label

        return delta_m_label(self.recipe.train.reference, self.selection.head)

    def _epoch(
        self,
        dataset: PreparedSplit,
        trace: SampleTrace,
        progress: Progress,
        reporter: EpochReporter | None = None,
    ) -> int:
        """Finish the epoch from `position.batch`; evaluate, log, save; return the images seen."""
        cfg = self.recipe.train
        epoch = self.position.epoch
        if reporter is not None:
            reporter.epoch_started()
        self.method.on_epoch_start(epoch)
        bar = progress.add_task(
            f"epoch {epoch + 1}/{cfg.epochs}",
            total=self.steps_per_epoch,
            completed=self.position.batch,
            loss="",
        )
        sums: dict[str, float] = {}
        totals: list[float] = []  # step losses, for the divergence rule
        images_seen = 0
        loader = train_loader(
            dataset,
            cfg.batch_size,
            cfg.seed,
            epoch,
            self.position.batch,
            self.workers,
            pin_memory=self.device.type == "cuda",
            rank=self.dist.rank,
            world_size=self.dist.world_size,
        )
        batches = one_line_errors(zip(loader.batch_sampler, loader))  # type: ignore[arg-type]
        for indices, (images, targets) in batches:
            trace.record(epoch, self.position.batch, indices)
            ctx = StepContext(epoch, cfg.epochs, self.position.batch, self.steps_per_epoch)
            images = images.to(self.device, non_blocking=True)
            targets = {k: v.to(self.device, non_blocking=True) for k, v in targets.items()}
            try:
                logged = self.train_step(images, targets, ctx)
            except NonFinite as bad:
                self._stop_non_finite(bad)
            for name, value in logged.items():
                sums[name] = sums.get(name, 0.0) + value
            totals.append(logged["total"])
            self.position.batch += 1
            self.position.global_step += 1
            images_seen += images.shape[0] * self.dist.world_size
            progress.update(bar, advance=1, loss=f"loss {logged['total']:.3f}")
            if cfg.checkpoint_every and self.position.global_step % cfg.checkpoint_every == 0:
                self.save("last.pt")
            if self.step_callback is not None:
                self.step_callback(self.position)
        if self.scheduler is not None:
            self.scheduler.step()
        stop_if_non_finite(self.model, self.run_dir / "last.pt", self.position)
        if reporter is not None:
            reporter.training_done(images_seen)
        losses, weights = epoch_means(sums, self.position.batch, self.dist)
        self.balancer.on_epoch_end(epoch_task_losses(losses, self.recipe.tasks))
        block = self.evaluate(progress)
        self.position = Position(epoch=epoch + 1, batch=0, global_step=self.position.global_step)
        loss_median, warnings = divergence_warnings(epoch, self.model, totals, self.log.history)
        self.log.log_epoch(epoch, block, losses, weights, loss_median, warnings)
        self.save("last.pt")
        if self.selection.improves(epoch, block):
            self.save("best.pt")
            self.save("last.pt")  # best.pt must carry the selection that chose it; last.pt too
        units = {spec.key: spec.units for spec in self.specs if spec.units}
        self.log.draw_curves(f"{self.recipe.name}: {self.run_dir}", self.delta_label, units)
        progress.update(bar, description=f"epoch {epoch + 1}/{cfg.epochs} ✓")
        return images_seen

    @property
    def workers(self) -> int:
        """DataLoader workers: `data.workers`, else the run's thread choice."""
        workers = self.recipe.data.workers
        return self.threads.workers if workers is None else workers

    def _stop_non_finite(self, bad: NonFinite) -> None:
        """Keep a last.pt when none exists and the weights are still finite, then stop all ranks."""
        last = self.run_dir / "last.pt"
        # BatchNorm statistics count too: a NaN batch corrupts them in its forward pass
        finite = non_finite_parameter(self.model) is None
        if self.dist.is_main and not last.is_file() and finite:
            self.save("last.pt")
        kept = str(last) if self.dist.broadcast_object(last.is_file()) else None
        raise UserError(
            bad.describe(self.position.epoch, self.position.batch, self.dist.active, kept)
        )
