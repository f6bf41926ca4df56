"""The trainer: loop, per-epoch evaluation of every head, logs, checkpoints, resume.

Resume is exact: the batch order is a pure function of (seed, epoch), the
position inside an epoch is saved, and model, optimizer, scheduler and torch
RNG states travel in `last.pt`. A NaN/Inf loss stops training before the bad
step is applied, so the last checkpoint stays good.

Under `torchrun` every process runs this trainer on its slice of each global
batch (`edgemtl.training.distributed` holds the conventions); rank 0 alone writes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from edgemtl.training.amp import Precision
from edgemtl.training.checkpoint import load_checkpoint, save_checkpoint
from edgemtl.core.config import Recipe, dump_yaml, load_recipe, recipe_from_dict
from edgemtl.data.preprocess import InputSpec
from edgemtl.data.registry import SplitReader, dataset_record, open_split, task_units
from edgemtl.training.data import PreparedSplit, steps_per_epoch, train_loader
from edgemtl.training.distributed import (
    Dist, RunningStats, SampleTrace, ShardReader, check_batch, eval_shard, split_chunks,
)
from edgemtl.core.errors import UserError
from edgemtl.core.io import atomic_write_json, atomic_write_text
from edgemtl.evaluation.metrics import HIGHER_IS_BETTER
from edgemtl.training.methods import Method, StepContext, build_method
from edgemtl.training.methods.balancers import Balancer, build_balancer
from edgemtl.training.models.network import MultiTaskNet
from edgemtl.evaluation.scoring import HeadsBlock, metric_set, score_split, with_delta_m
from edgemtl.core.tables import heads_table
from edgemtl.core.tasks import TaskSpec, make_spec

METRICS_SCHEMA_VERSION = 1
#: Balancer weights travel through the per-step log under this prefix, then into metrics.jsonl's "weights".
WEIGHT_PREFIX = "weight."


def epoch_task_losses(losses: dict[str, float], tasks: Any) -> dict[str, float]:
    """Each task's mean loss over an epoch: the sum of its logged terms ("seg.teacher", "seg.kd" ...)."""
    out = {key: 0.0 for key in tasks}
    for name, value in losses.items():
        task, dot, _ = name.partition(".")
        if dot and task in out:
            out[task] += value
    return out


class TrainingInterrupted(Exception):
    """Raised after Ctrl-C once `last.pt` holds the exact position to resume from."""


@dataclass
class Position:
    """Where training stands: `batch` batches of `epoch` are done."""

    epoch: int = 0
    batch: int = 0
    global_step: int = 0


@dataclass
class Selection:
    """How best.pt is chosen, and the reference Δm is measured against."""

    head: str
    metric: str
    reference: dict[str, dict[str, float]] | None = None
    best_value: float | None = None
    best_epoch: int | None = None

    def score(self, block: HeadsBlock) -> float:
        metrics = block[self.head]
        if self.metric == "delta_m":
            return float(metrics["delta_m"])
        task, _, name = self.metric.partition(".")
        value = float(metrics[task][name])
        return value if HIGHER_IS_BETTER[name] else -value

    def to_dict(self) -> dict[str, Any]:
        return {
            "head": self.head,
            "metric": self.metric,
            "reference": self.reference,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
        }


def pick_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available to PyTorch here")
    if device not in ("cpu", "cuda"):
        raise UserError(f"--device {device}: expected cpu, cuda or auto")
    return torch.device(device)


def task_specs_for(recipe: Recipe, reader: SplitReader) -> list[TaskSpec]:
    """One spec per recipe task; labels kinds take the reader's class names."""
    classes = list(reader.class_names)
    return [make_spec(key, classes, task_units(recipe.data.kind, key)) for key in recipe.tasks]


def default_run_dir(recipe: Recipe, root: str | Path = "runs") -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"{recipe.name}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path(root) / f"{recipe.name}-{stamp}-{suffix}"
    return path


def find_resume_dir(recipe: Recipe, out: Path | None, root: str | Path = "runs") -> Path:
    if out is not None:
        if not (out / "last.pt").is_file():
            raise UserError(f"--resume: {out}/last.pt not found")
        return out
    runs = sorted(Path(root).glob(f"{recipe.name}-*/last.pt"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise UserError(f"--resume: no run of recipe {recipe.name!r} with a last.pt under {root}/")
    return runs[-1].parent


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state()}


class Trainer:
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
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.record = dataset_record(recipe.data)
        keys = list(recipe.tasks)
        with self._status("preparing data"):
            self.train_reader = open_split(self.record, "train", keys)
            self.val_reader = open_split(self.record, "val", keys)
        self.input_spec = InputSpec(recipe.data.size[0], recipe.data.size[1], recipe.data.mean, recipe.data.std)
        self.specs = task_specs_for(recipe, self.train_reader)
        self.method: Method = build_method(recipe, self.specs)
        self.model: MultiTaskNet = self.method.build_model().to(self.device)
        self._prepare_model()
        self.extra = self.method.extra_module()
        if self.extra is not None:
            self.extra.to(self.device)
        self.balancer: Balancer = build_balancer(cfg.balancer, {key: task.weight for key, task in recipe.tasks.items()})
        balancer_module = self.balancer.module()
        if balancer_module is not None:
            balancer_module.to(self.device)
        self.method.cut_shared = self.balancer.needs_representation
        self.optimizer = self._build_optimizer()
        self.scheduler = self._build_scheduler()
        self.steps_per_epoch = steps_per_epoch(len(self.train_reader), cfg.batch_size)
        self.chunk_size = check_batch(cfg.batch_size, self.dist.world_size, cfg.micro_batches)
        self.precision = Precision(cfg.amp, self.device)
        self._stats: dict[bool, RunningStats] = {}
        if self.steps_per_epoch == 0:
            raise UserError(
                f"train.batch_size {cfg.batch_size} is larger than the training split ({len(self.train_reader)} images)"
            )
        head = cfg.select.head or ("student" if "student" in self.method.model_heads else "teacher")
        self.selection = Selection(head=head, metric=cfg.select.metric)
        if cfg.reference:
            from edgemtl.evaluation.reference import load_reference

            self.selection.reference = load_reference(cfg.reference, load_checkpoint)
        self._check_select_metric()
        self.position = Position()
        self.history: list[dict[str, Any]] = []
        self.writer: Any = None

    # ----------------------------------------------------------------- setup
    def _status(self, text: str) -> Any:
        return self.console.status(text) if not self.quiet else _NullContext()

    def _prepare_model(self) -> None:
        """SyncBatchNorm, memory format and compilation, as the recipe asks."""
        cfg = self.recipe.train
        if cfg.sync_bn and self.dist.active:
            if self.device.type != "cuda":
                raise UserError(
                    f"train.sync_bn: PyTorch's SyncBatchNorm runs on CUDA only; this run is on {self.device.type} "
                    "(set train.sync_bn=false)"
                )
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if cfg.compile:
            self.model.compile()

    def _params(self) -> list[torch.nn.Parameter]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def _build_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.recipe.train.optimizer
        groups = self.method.parameter_groups(self.model)
        grouped = {id(p) for group in groups for p in group["params"]}
        for module in (self.extra, self.balancer.module()):
            if module is not None:
                params = [p for p in module.parameters() if id(p) not in grouped]
                if params:  # methods may already give their modules a group of their own (KD4MTL adaptors)
                    groups.append({"params": params})
        if cfg.name == "adam":
            return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if cfg.name == "adamw":
            return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)

    def _build_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler | None:
        cfg = self.recipe.train.scheduler
        if cfg.name == "none":
            return None
        return torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=cfg.step_size, gamma=cfg.gamma)

    def _check_select_metric(self) -> None:
        metric = self.selection.metric
        if metric == "delta_m":
            return
        task, _, name = metric.partition(".")
        if task not in self.recipe.tasks or name not in HIGHER_IS_BETTER:
            raise UserError(f"train.select.metric {metric!r}: expected delta_m or <task>.<metric>, e.g. seg.miou")

    # ------------------------------------------------------------ checkpoints
    def checkpoint_payload(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe.dump(),
            "tasks": {spec.key: spec.to_dict() for spec in self.specs},
            "heads": list(self.method.eval_heads),
            "model": self.model.state_dict(),
            "extra": self.extra.state_dict() if self.extra is not None else None,
            "balancer": {"name": self.balancer.name, "state": self.balancer.state_dict()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "epoch": self.position.epoch,
            "position": {"epoch": self.position.epoch, "batch": self.position.batch, "global_step": self.position.global_step},
            "rng": _rng_state(),
            "metrics": self.history[-1] if self.history else None,
            "select": self.selection.to_dict(),
            "data": self.record,
            "input": self.input_spec.to_dict(),
            "upsampling": self.recipe.model.upsampling,
            "amp_scaler": self.precision.state_dict(),
            "distributed": {"world_size": self.dist.world_size, "micro_batches": self.recipe.train.micro_batches},
        }

    def save(self, name: str) -> Path:
        path = self.run_dir / name
        if self.dist.is_main:
            save_checkpoint(path, self.checkpoint_payload())
        return path

    def restore(self, ckpt: dict[str, Any]) -> None:
        """Continue exactly where `ckpt` (a last.pt) stopped."""
        self.model.load_state_dict(ckpt["model"])
        if self.extra is not None and ckpt.get("extra") is not None:
            self.extra.load_state_dict(ckpt["extra"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("balancer"):
            self.balancer.load_state_dict(ckpt["balancer"]["state"])
        pos = ckpt["position"]
        self.position = Position(int(pos["epoch"]), int(pos["batch"]), int(pos["global_step"]))
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.precision.load_state_dict(ckpt.get("amp_scaler"))
        sel = ckpt["select"]
        self.selection = Selection(sel["head"], sel["metric"], sel["reference"], sel["best_value"], sel["best_epoch"])
        self.history = self._read_history(upto_epoch=self.position.epoch)

    def _read_history(self, upto_epoch: int) -> list[dict[str, Any]]:
        path = self.run_dir / "metrics.jsonl"
        if not path.is_file():
            return []
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows = [row for row in rows if row["epoch"] < upto_epoch]
        if self.dist.is_main:
            atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in rows))
        return rows

    # -------------------------------------------------------------- evaluate
    @torch.no_grad()
    def infer(self, images: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        x = torch.from_numpy(images).to(self.device)
        if self.recipe.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        outputs = self.model(x, heads=self.method.eval_heads)
        return {head: {k: v.float().cpu().numpy() for k, v in tasks.items()} for head, tasks in outputs.items()}

    def evaluate(self, progress: Progress | None = None) -> HeadsBlock:
        self.model.eval()
        limit = self.recipe.train.eval_limit
        total = len(self.val_reader) if limit is None else min(limit, len(self.val_reader))
        reader: Any = self.val_reader
        if self.dist.active:  # this rank's shard, no padding; states are summed below
            reader = ShardReader(self.val_reader, eval_shard(total, self.dist.rank, self.dist.world_size))
            total, limit = len(reader), None
        heads = self.method.eval_heads
        sets = {head: metric_set(self.specs) for head in heads}
        task_id = progress.add_task("  eval", total=total, loss="") if progress is not None else None

        def advance(done: int, _total: int) -> None:
            if progress is not None and task_id is not None:
                progress.update(task_id, completed=done)

        try:
            block = score_split(
                self.infer, reader, self.input_spec, self.specs, heads,
                batch_size=max(self.recipe.train.batch_size, 8), limit=limit, progress=advance, sets=sets,
            )
        finally:
            if progress is not None and task_id is not None:
                progress.remove_task(task_id)
            self.model.train()
        if self.dist.active:
            block = {}
            for head in heads:
                merged = metric_set(self.specs)
                merged.merge_state(self.dist.sum_state(sets[head].state()))
                block[head] = merged.compute()
        if self.selection.reference is None:
            self.selection.reference = block[self.selection.head]
        return with_delta_m(block, self.selection.reference)

    # ------------------------------------------------------------------ train
    def _progress(self) -> Progress:
        return Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=self.quiet,
            transient=False,
        )

    def _log_epoch(
        self, epoch: int, block: HeadsBlock, losses: dict[str, float], weights: dict[str, float] | None = None
    ) -> dict[str, Any]:
        row = {"schema_version": METRICS_SCHEMA_VERSION, "epoch": epoch, "split": "val", "heads": block, "losses": losses}
        if weights:
            row["weights"] = weights
        self.history.append(row)
        if not self.dist.is_main:
            return row
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for name, value in losses.items():
                self.writer.add_scalar(f"loss/{name}", value, epoch)
            for name, value in (weights or {}).items():
                self.writer.add_scalar(f"weight/{name}", value, epoch)
            for head, metrics in block.items():
                for task, values in metrics.items():
                    if isinstance(values, dict):
                        for name, value in values.items():
                            self.writer.add_scalar(f"{head}/{task}/{name}", value, epoch)
                    else:
                        self.writer.add_scalar(f"{head}/{task}", values, epoch)
            self.writer.flush()
        return row

    def _open_writer(self) -> None:
        if not self.dist.is_main:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.console.print("[yellow]tensorboard is not installed: no TensorBoard events written[/]")
            return
        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"), purge_step=self.position.epoch)

    def _train_step(self, images: torch.Tensor, targets: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        """One optimizer step on this rank's slice of a global batch, in `train.micro_batches` chunks.

        Every chunk's loss is checked on every rank before any backward pass
        (a NaN anywhere stops all ranks together). Balancers that combine
        per-task gradients (`per_task_gradients = True`) get the mean of the
        chunks' task losses in one call and average their per-task gradients
        across ranks themselves (`edgemtl.training.distributed.mean_across_ranks`); the
        trainer averages every other gradient.
        """
        cfg = self.recipe.train
        chunks = cfg.micro_batches
        per_task = bool(getattr(self.balancer, "per_task_gradients", False))
        stats = self._running_stats(per_task)
        shared = [p for p in self.model.encoder.parameters() if p.requires_grad]
        self.optimizer.zero_grad(set_to_none=True)
        if stats is not None:
            stats.begin()
        logged: dict[str, float] = {}
        kept: list[dict[str, torch.Tensor]] = []
        for x, y in split_chunks(images, targets, chunks):
            if stats is not None:
                stats.before_chunk()
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self.precision.autocast():
                outputs = self.method.forward(self.model, x, ctx)
            terms = self.method.loss_terms(self.precision.outputs_fp32(outputs), y, ctx)
            if stats is not None:
                stats.after_chunk()
            task_losses = {task: sum(group.values()) for task, group in terms.items()}
            value = float(sum(task_losses.values()).detach())  # type: ignore[union-attr]
            bad = None
            if not math.isfinite(value):
                bad = _NonFinite(value, [f"{t}.{n}" for t, g in terms.items() for n, v in g.items() if not torch.isfinite(v)])
            self._agree_finite(bad)
            for task, group in terms.items():
                for name, term in group.items():
                    logged[f"{task}.{name}"] = logged.get(f"{task}.{name}", 0.0) + float(term.detach())
            logged["total"] = logged.get("total", 0.0) + value
            if per_task:
                kept.append(task_losses)  # type: ignore[arg-type]
            else:
                used = self.balancer.backward(self.precision.scale(task_losses), shared, self.method.shared_cut)  # type: ignore[arg-type]
                for task, weight in used.items():
                    logged[f"{WEIGHT_PREFIX}{task}"] = logged.get(f"{WEIGHT_PREFIX}{task}", 0.0) + weight
        if per_task:
            mean = {task: sum(k[task] for k in kept) / chunks for task in kept[0]}
            used = self.balancer.backward(self.precision.scale(mean), shared, self.method.shared_cut)  # type: ignore[arg-type]
            logged.update({f"{WEIGHT_PREFIX}{task}": weight * chunks for task, weight in used.items()})
            ids = {id(p) for p in shared}
            self.dist.mean_gradients([p for p in self._params() if id(p) not in ids])
        else:
            self.dist.mean_gradients(self._params(), chunks=chunks)
        if stats is not None:
            stats.finish(self.dist)
        self.precision.unscale(self.optimizer)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.precision.step(self.optimizer)
        return {name: value / chunks for name, value in logged.items()}

    def _running_stats(self, keep_graphs: bool) -> RunningStats | None:
        """BN running statistics averaged over chunks and ranks (None: one chunk, one process)."""
        if self.recipe.train.micro_batches == 1 and not self.dist.active:
            return None
        if keep_graphs not in self._stats:
            self._stats[keep_graphs] = RunningStats(self.model, keep_graphs)
        return self._stats[keep_graphs]

    def _agree_finite(self, bad: _NonFinite | None) -> None:
        """Raise the first bad rank's `_NonFinite` on every rank if any rank's loss is not finite."""
        if not self.dist.any(bad is not None):
            return
        reports = self.dist.gather_objects(None if bad is None else (bad.value, bad.terms))
        rank = next(r for r, report in enumerate(reports) if report is not None)
        value, terms = reports[rank]
        raise _NonFinite(value, terms, rank)

    def init_from_data(self) -> None:
        """Fresh runs start each head's output at the constant predictor of the training split."""
        from edgemtl.evaluation.baselines import fit_constants

        self.model.init_outputs(fit_constants(self.train_reader, self.specs, self.input_spec))

    def fit(self) -> dict[str, Any]:
        cfg = self.recipe.train
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "recipe.yaml", dump_yaml(self.recipe))
        self._open_writer()
        from edgemtl.data.augment import build_augmenter

        self.dist.broadcast_module(self.model, self.extra, self.balancer.module())
        trace = SampleTrace(self.dist.rank)
        augment = build_augmenter(self.recipe.data.augment, self.recipe.data.size, self.recipe.data.kind)
        dataset = PreparedSplit(self.train_reader, self.input_spec, augment=augment, seed=cfg.seed)
        start_time = time.perf_counter()
        images_seen = 0
        self.model.train()
        try:
            with self._progress() as progress:
                while self.position.epoch < cfg.epochs:
                    epoch = self.position.epoch
                    self.method.on_epoch_start(epoch)
                    bar = progress.add_task(
                        f"epoch {epoch + 1}/{cfg.epochs}", total=self.steps_per_epoch, completed=self.position.batch, loss=""
                    )
                    sums: dict[str, float] = {}
                    loader = train_loader(
                        dataset, cfg.batch_size, cfg.seed, epoch, self.position.batch, self.recipe.data.workers,
                        pin_memory=self.device.type == "cuda", rank=self.dist.rank, world_size=self.dist.world_size,
                    )
                    for indices, (images, targets) in zip(loader.batch_sampler, loader):  # type: ignore[arg-type]
                        trace.record(epoch, self.position.batch, indices)
                        ctx = StepContext(epoch, cfg.epochs, self.position.batch, self.steps_per_epoch)
                        images = images.to(self.device, non_blocking=True)
                        targets = {k: v.to(self.device, non_blocking=True) for k, v in targets.items()}
                        try:
                            logged = self._train_step(images, targets, ctx)
                        except _NonFinite as bad:
                            self._stop_non_finite(bad)
                        for name, value in logged.items():
                            sums[name] = sums.get(name, 0.0) + value
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
                    done = max(1, self.position.batch)
                    losses = self.dist.mean_floats({name: value / done for name, value in sums.items()})
                    weights = {k.removeprefix(WEIGHT_PREFIX): losses.pop(k) for k in list(losses) if k.startswith(WEIGHT_PREFIX)}
                    self.balancer.on_epoch_end(epoch_task_losses(losses, self.recipe.tasks))
                    block = self.evaluate(progress)
                    self.position = Position(epoch + 1, 0, self.position.global_step)
                    self._log_epoch(epoch, block, losses, weights)
                    self.save("last.pt")
                    self._maybe_best(epoch, block)
                    progress.update(bar, description=f"epoch {epoch + 1}/{cfg.epochs} ✓")
        except KeyboardInterrupt:
            self.save("last.pt")
            raise TrainingInterrupted(
                f"interrupted at epoch {self.position.epoch + 1}, batch {self.position.batch}: "
                f"{self.run_dir / 'last.pt'} holds the exact position; continue with --resume --out {self.run_dir}"
            ) from None
        finally:
            if self.writer is not None:
                self.writer.close()
        elapsed = time.perf_counter() - start_time
        return self._summary(elapsed, images_seen)

    def _maybe_best(self, epoch: int, block: HeadsBlock) -> None:
        value = self.selection.score(block)
        if self.selection.best_value is None or value > self.selection.best_value:
            self.selection.best_value = value
            self.selection.best_epoch = epoch
            self.save("best.pt")
            # best.pt must carry the selection that chose it; last.pt too.
            self.save("last.pt")

    def _stop_non_finite(self, bad: _NonFinite) -> None:
        last = self.run_dir / "last.pt"
        if self.dist.is_main and not last.is_file() and all(torch.isfinite(p).all() for p in self.model.parameters()):
            self.save("last.pt")
        where = f" in {', '.join(bad.terms)}" if bad.terms else ""
        if self.dist.active:
            where += f" on rank {bad.rank}"
        kept = f"; last good checkpoint: {last}" if self.dist.broadcast_object(last.is_file()) else ""
        raise UserError(
            f"training stopped: loss is {bad.value}{where} at epoch {self.position.epoch + 1}, "
            f"batch {self.position.batch + 1}{kept}"
        )

    def _summary(self, elapsed: float, images_seen: int) -> dict[str, Any]:
        from edgemtl.evaluation.baselines import score_constants

        final = self.history[-1]["heads"] if self.history else {}
        constants: dict[Any, Any] = {None: None}
        if self.dist.is_main:
            constants = score_constants(self.train_reader, self.val_reader, self.specs, self.input_spec, self.recipe.train.eval_limit)
        summary = {
            "schema_version": METRICS_SCHEMA_VERSION,
            "recipe": self.recipe.name,
            "run_dir": str(self.run_dir),
            "epochs": self.recipe.train.epochs,
            "select": self.selection.to_dict(),
            "reference": self.recipe.train.reference,
            "balancer": self.balancer.name,
            "weights": self.history[-1].get("weights") if self.history else None,
            "final": final,
            "constant_predictor": constants[next(iter(constants))],
            "best_epoch": self.selection.best_epoch,
            "best": self.history[self.selection.best_epoch]["heads"] if self.selection.best_epoch is not None and self.selection.best_epoch < len(self.history) else None,
            "wall_time_s": round(elapsed, 2),
            "train_images_per_s": round(images_seen / elapsed, 2) if elapsed > 0 else None,
            "device": str(self.device),
            "threads": torch.get_num_threads(),
            "world_size": self.dist.world_size,
        }
        if self.dist.is_main:
            atomic_write_json(self.run_dir / "summary.json", summary)
        return summary


class _NonFinite(Exception):
    def __init__(self, value: float, terms: list[str], rank: int = 0) -> None:
        super().__init__(value)
        self.value = value
        self.terms = terms
        self.rank = rank


class _NullContext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def run_training(
    recipe_path: Path,
    overrides: list[str],
    out: Path | None = None,
    resume: bool = False,
    device: str | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """`edgemtl train`: build, (resume,) fit, print the per-head table.

    Under `torchrun` every process calls this; rank 0 picks the run folder and
    alone writes and prints.
    """
    recipe = load_recipe(recipe_path, overrides)
    dist = Dist.from_env(pick_device(device).type)
    quiet = quiet or not dist.is_main
    console = Console(stderr=True, quiet=quiet)
    try:
        if resume:
            run_dir = Path(dist.broadcast_object(str(find_resume_dir(recipe, out))))
            ckpt = load_checkpoint(run_dir / "last.pt")
            recipe = recipe_from_dict(ckpt["recipe"], str(run_dir / "last.pt"), overrides)
            trainer = Trainer(recipe, run_dir, device, quiet, console, dist=dist)
            trainer.restore(ckpt)
            console.print(f"resuming {run_dir} at epoch {trainer.position.epoch + 1}, batch {trainer.position.batch}")
        else:
            run_dir = Path(dist.broadcast_object(str(out or default_run_dir(recipe))))
            if (run_dir / "last.pt").exists():
                raise UserError(f"{run_dir} already holds a run (last.pt): use --resume, or another --out")
            from edgemtl.training.stages import prepare_stages

            recipe = prepare_stages(recipe, run_dir, device, quiet, console, dist)
            trainer = Trainer(recipe, run_dir, device, quiet, console, dist=dist)
            if dist.is_main:  # fit() broadcasts rank 0's weights
                trainer.init_from_data()
            procs = f" x {dist.world_size} processes" if dist.active else ""
            console.print(
                f"training [bold]{recipe.name}[/] ({recipe.method.name}, heads: {', '.join(trainer.method.eval_heads)}) "
                f"on {trainer.device}{procs} -> {run_dir}"
            )
        summary = trainer.fit()
    finally:
        dist.close()
    out_console = Console(quiet=quiet)
    if summary["final"] and summary["constant_predictor"] is not None:
        from edgemtl.evaluation.baselines import NAME

        shown = {**summary["final"], NAME: summary["constant_predictor"]}
        out_console.print(heads_table(shown, title=f"{recipe.name}: final epoch, val split"))
    out_console.print(
        f"best.pt: epoch {(summary['best_epoch'] or 0) + 1} by {trainer.selection.head} {trainer.selection.metric}; "
        f"{summary['wall_time_s']:.0f} s, {summary['train_images_per_s']} img/s -> {run_dir}"
    )
    return summary
