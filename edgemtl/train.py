"""The trainer: loop, per-epoch evaluation of every head, logs, checkpoints, resume.

Resume is exact: the batch order is a pure function of (seed, epoch), the
position inside an epoch is saved, and model, optimizer, scheduler and torch
RNG states travel in `last.pt`. A NaN/Inf loss stops training before the bad
step is applied, so the last checkpoint stays good.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from edgemtl.checkpoint import load_checkpoint, save_checkpoint
from edgemtl.config import Recipe, dump_yaml, load_recipe, recipe_from_dict
from edgemtl.data.preprocess import InputSpec
from edgemtl.data.registry import DEPTH_UNITS, SplitReader, dataset_record, open_split
from edgemtl.data.torch_dataset import PreparedSplit, steps_per_epoch, train_loader
from edgemtl.errors import UserError
from edgemtl.io import atomic_write_json, atomic_write_text
from edgemtl.metrics import HIGHER_IS_BETTER
from edgemtl.methods import Method, StepContext, build_method
from edgemtl.methods.balancers import Balancer, build_balancer
from edgemtl.models.network import MultiTaskNet
from edgemtl.scoring import HeadsBlock, score_split, with_delta_m
from edgemtl.tables import heads_table
from edgemtl.tasks import TaskSpec, make_spec

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
    units = DEPTH_UNITS.get(recipe.data.kind, "")
    specs = []
    for key in recipe.tasks:
        if key == "seg":
            specs.append(make_spec("seg", list(reader.class_names)))
        else:
            specs.append(make_spec(key, units=units if key == "depth" else ""))
    return specs


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
    ) -> None:
        self.recipe = recipe
        self.run_dir = run_dir
        self.device = pick_device(device)
        self.quiet = quiet
        self.console = console or Console(stderr=True, quiet=quiet)
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
        if self.steps_per_epoch == 0:
            raise UserError(
                f"train.batch_size {cfg.batch_size} is larger than the training split ({len(self.train_reader)} images)"
            )
        head = cfg.select.head or ("student" if "student" in self.method.model_heads else "teacher")
        self.selection = Selection(head=head, metric=cfg.select.metric)
        if cfg.reference:
            from edgemtl.reference import load_reference

            self.selection.reference = load_reference(cfg.reference)
        self._check_select_metric()
        self.position = Position()
        self.history: list[dict[str, Any]] = []
        self.writer: Any = None

    # ----------------------------------------------------------------- setup
    def _status(self, text: str) -> Any:
        return self.console.status(text) if not self.quiet else _NullContext()

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
        }

    def save(self, name: str) -> Path:
        path = self.run_dir / name
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
        sel = ckpt["select"]
        self.selection = Selection(sel["head"], sel["metric"], sel["reference"], sel["best_value"], sel["best_epoch"])
        self.history = self._read_history(upto_epoch=self.position.epoch)

    def _read_history(self, upto_epoch: int) -> list[dict[str, Any]]:
        path = self.run_dir / "metrics.jsonl"
        if not path.is_file():
            return []
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows = [row for row in rows if row["epoch"] < upto_epoch]
        atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in rows))
        return rows

    # -------------------------------------------------------------- evaluate
    @torch.no_grad()
    def infer(self, images: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        x = torch.from_numpy(images).to(self.device)
        outputs = self.model(x, heads=self.method.eval_heads)
        return {head: {k: v.float().cpu().numpy() for k, v in tasks.items()} for head, tasks in outputs.items()}

    def evaluate(self, progress: Progress | None = None) -> HeadsBlock:
        self.model.eval()
        limit = self.recipe.train.eval_limit
        total = len(self.val_reader) if limit is None else min(limit, len(self.val_reader))
        task_id = progress.add_task("  eval", total=total, loss="") if progress is not None else None

        def advance(done: int, _total: int) -> None:
            if progress is not None and task_id is not None:
                progress.update(task_id, completed=done)

        try:
            block = score_split(
                self.infer, self.val_reader, self.input_spec, self.specs, self.method.eval_heads,
                batch_size=max(self.recipe.train.batch_size, 8), limit=limit, progress=advance,
            )
        finally:
            if progress is not None and task_id is not None:
                progress.remove_task(task_id)
            self.model.train()
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
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.console.print("[yellow]tensorboard is not installed: no TensorBoard events written[/]")
            return
        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"), purge_step=self.position.epoch)

    def _train_step(self, images: torch.Tensor, targets: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        outputs = self.method.forward(self.model, images, ctx)
        terms = self.method.loss_terms(outputs, targets, ctx)
        task_losses = {task: sum(group.values()) for task, group in terms.items()}
        total = sum(task_losses.values())
        value = float(total.detach())  # type: ignore[union-attr]
        if not math.isfinite(value):
            bad = [f"{task}.{name}" for task, group in terms.items() for name, t in group.items() if not torch.isfinite(t)]
            raise _NonFinite(value, bad)
        self.optimizer.zero_grad(set_to_none=True)
        shared = [p for p in self.model.encoder.parameters() if p.requires_grad]
        used = self.balancer.backward(task_losses, shared, self.method.shared_cut)  # type: ignore[arg-type]
        if self.recipe.train.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.train.grad_clip)
        self.optimizer.step()
        logged = {f"{task}.{name}": float(t.detach()) for task, group in terms.items() for name, t in group.items()}
        logged["total"] = value
        logged.update({f"{WEIGHT_PREFIX}{task}": w for task, w in used.items()})
        return logged

    def init_from_data(self) -> None:
        """Fresh runs start each head's output at the constant predictor of the training split."""
        from edgemtl.baselines import fit_constants

        self.model.init_output_bias(fit_constants(self.train_reader, self.specs, self.input_spec))

    def fit(self) -> dict[str, Any]:
        cfg = self.recipe.train
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "recipe.yaml", dump_yaml(self.recipe))
        self._open_writer()
        dataset = PreparedSplit(self.train_reader, self.input_spec)
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
                        dataset, cfg.batch_size, cfg.seed, epoch, self.position.batch,
                        self.recipe.data.workers, pin_memory=self.device.type == "cuda",
                    )
                    for images, targets in loader:
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
                        images_seen += images.shape[0]
                        progress.update(bar, advance=1, loss=f"loss {logged['total']:.3f}")
                        if cfg.checkpoint_every and self.position.global_step % cfg.checkpoint_every == 0:
                            self.save("last.pt")
                        if self.step_callback is not None:
                            self.step_callback(self.position)
                    if self.scheduler is not None:
                        self.scheduler.step()
                    done = max(1, self.position.batch)
                    losses = {name: value / done for name, value in sums.items()}
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
        if not last.is_file() and all(torch.isfinite(p).all() for p in self.model.parameters()):
            self.save("last.pt")
        where = f" in {', '.join(bad.terms)}" if bad.terms else ""
        kept = f"; last good checkpoint: {last}" if last.is_file() else ""
        raise UserError(
            f"training stopped: loss is {bad.value}{where} at epoch {self.position.epoch + 1}, "
            f"batch {self.position.batch + 1}{kept}"
        )

    def _summary(self, elapsed: float, images_seen: int) -> dict[str, Any]:
        from edgemtl.baselines import score_constants

        final = self.history[-1]["heads"] if self.history else {}
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
        }
        atomic_write_json(self.run_dir / "summary.json", summary)
        return summary


class _NonFinite(Exception):
    def __init__(self, value: float, terms: list[str]) -> None:
        super().__init__(value)
        self.value = value
        self.terms = terms


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
    """`edgemtl train`: build, (resume,) fit, print the per-head table."""
    console = Console(stderr=True, quiet=quiet)
    recipe = load_recipe(recipe_path, overrides)
    if resume:
        run_dir = find_resume_dir(recipe, out)
        ckpt = load_checkpoint(run_dir / "last.pt")
        recipe = recipe_from_dict(ckpt["recipe"], str(run_dir / "last.pt"), overrides)
        trainer = Trainer(recipe, run_dir, device, quiet, console)
        trainer.restore(ckpt)
        console.print(f"resuming {run_dir} at epoch {trainer.position.epoch + 1}, batch {trainer.position.batch}")
    else:
        run_dir = out or default_run_dir(recipe)
        if (run_dir / "last.pt").exists():
            raise UserError(f"{run_dir} already holds a run (last.pt): use --resume, or another --out")
        from edgemtl.stages import prepare_stages

        recipe = prepare_stages(recipe, run_dir, device, quiet, console)
        trainer = Trainer(recipe, run_dir, device, quiet, console)
        trainer.init_from_data()
        console.print(
            f"training [bold]{recipe.name}[/] ({recipe.method.name}, heads: {', '.join(trainer.method.eval_heads)}) "
            f"on {trainer.device} -> {run_dir}"
        )
    summary = trainer.fit()
    out_console = Console(quiet=quiet)
    if summary["final"]:
        from edgemtl.baselines import NAME

        shown = {**summary["final"], NAME: summary["constant_predictor"]}
        out_console.print(heads_table(shown, title=f"{recipe.name}: final epoch, val split"))
    out_console.print(
        f"best.pt: epoch {(summary['best_epoch'] or 0) + 1} by {trainer.selection.head} {trainer.selection.metric}; "
        f"{summary['wall_time_s']:.0f} s, {summary['train_images_per_s']} img/s -> {run_dir}"
    )
    return summary

