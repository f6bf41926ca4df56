"""`edgemtl train`: pick the run folder, train earlier stages, fit, print the per-head table.

The recipe arrives loaded and validated (`TrainOptions.recipe`): `edgemtl.cli`
reads it before importing PyTorch so recipe errors are instant, and it is not
read again here. On `--resume` the recipe that continues is the checkpoint's,
with the same `--set` overrides applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from edgemtl.core.config import Recipe, load_recipe, recipe_from_dict
from edgemtl.core.errors import UserError
from edgemtl.core.options import TORCH_DEVICES, choice
from edgemtl.core.paths import check_output_dir
from edgemtl.core.tables import heads_table
from edgemtl.training.checkpoint import load_checkpoint
from edgemtl.training.device import pick_device
from edgemtl.training.distributed import Dist
from edgemtl.training.stages import prepare_stages
from edgemtl.training.trainer import Trainer


@dataclass(frozen=True)
class TrainOptions:
    """What `edgemtl train` was asked: the validated recipe and the command's options.

    `overrides` are the `--set a.b=value` assignments already applied to `recipe`;
    kept because `--resume` applies them to the checkpoint's recipe. `out` is the
    run folder (default `runs/<recipe>-<time>`; with `resume`, the newest run of
    the recipe). `device`: cpu, cuda or auto/None.
    """

    recipe: Recipe
    overrides: tuple[str, ...] = ()
    out: Path | None = None
    resume: bool = False
    device: str | None = None
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.device is not None:
            choice(self.device, "--device", TORCH_DEVICES)
        if self.out is not None:
            check_output_dir(self.out, "--out")
        else:  # runs/<recipe>-<time>, or the newest run there
            check_output_dir(RUNS, "")

    @classmethod
    def from_file(
        cls, path: str | Path, overrides: list[str] | tuple[str, ...] = (), **options: Any
    ) -> TrainOptions:
        """Load and validate the recipe at `path` with `overrides` (a `UserError` if invalid)."""
        return cls(load_recipe(path, overrides), tuple(overrides), **options)


#: Where run folders go unless `--out` says otherwise.
RUNS = Path("runs")


def default_run_dir(recipe: Recipe, root: str | Path = RUNS) -> Path:
    """`runs/<recipe>-<YYYYmmdd-HHMMSS>` (suffixed -2, -3 ... when taken)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"{recipe.name}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path(root) / f"{recipe.name}-{stamp}-{suffix}"
    return path


def find_resume_dir(recipe: Recipe, out: Path | None, root: str | Path = RUNS) -> Path:
    """`out` when it holds a last.pt, else the newest run of `recipe` under `root` that does."""
    if out is not None:
        if not (out / "last.pt").is_file():
            raise UserError(f"--resume: {out}/last.pt not found")
        return out
    runs = sorted(Path(root).glob(f"{recipe.name}-*/last.pt"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise UserError(f"--resume: no run of recipe {recipe.name!r} with a last.pt under {root}/")
    return runs[-1].parent


def versus_teacher_rows(block: dict[str, Any] | None) -> list[tuple[str, str, dict[str, str]]]:
    """The heads table's extra rows for `summary["vs_teacher"]` (empty without a Teacher)."""
    if not block:
        return []
    delta = {h: f"{v['delta_m']:+.2f}" for h, v in block.items()}
    ms = {h: f"{v['latency_ms']:.2f}" for h, v in block.items() if v["latency_ms"] is not None}
    ratio = {
        h: f"{v['latency_ratio']:.2f}x" for h, v in block.items() if v["latency_ratio"] is not None
    }
    return [("vs teacher", "Δm % ↑", delta), ("", "latency ms ↓", ms), ("", "x teacher ↓", ratio)]


def run_training(options: TrainOptions) -> dict[str, Any]:
    """`edgemtl train`: build, (resume,) fit, print the per-head table; return summary.json.

    Under `torchrun` every process calls this; rank 0 picks the run folder and
    alone writes and prints.
    """
    recipe, device = options.recipe, options.device
    dist = Dist.from_env(pick_device(device).type)
    quiet = options.quiet or not dist.is_main
    console = Console(stderr=True, quiet=quiet)
    try:
        if options.resume:
            run_dir = Path(dist.broadcast_object(str(find_resume_dir(recipe, options.out))))
            ckpt = load_checkpoint(run_dir / "last.pt")
            recipe = recipe_from_dict(
                ckpt.recipe.dump(), str(run_dir / "last.pt"), options.overrides
            )
            trainer = Trainer(recipe, run_dir, device, quiet, console, dist=dist)
            trainer.restore(ckpt)
            console.print(
                f"resuming {run_dir} at epoch {trainer.position.epoch + 1}, "
                f"batch {trainer.position.batch}, {trainer.threads.describe()}"
            )
        else:
            run_dir = Path(dist.broadcast_object(str(options.out or default_run_dir(recipe))))
            if (run_dir / "last.pt").exists():
                raise UserError(
                    f"{run_dir} already holds a run (last.pt): use --resume, or another --out"
                )
            recipe = prepare_stages(recipe, run_dir, device, quiet, console, dist)
            trainer = Trainer(recipe, run_dir, device, quiet, console, dist=dist)
            if dist.is_main:  # fit() broadcasts rank 0's weights
                trainer.init_from_data()
            procs = f" x {dist.world_size} processes" if dist.active else ""
            console.print(
                f"training [bold]{recipe.name}[/] ({recipe.method.name}, heads: "
                f"{', '.join(trainer.method.eval_heads)}) on {trainer.device}{procs}, "
                f"{trainer.threads.describe()} -> {run_dir}"
            )
        summary = trainer.fit()
    finally:
        dist.close()
    out_console = Console(quiet=quiet)
    if summary["final"] and summary["constant_predictor"] is not None:
        from edgemtl.evaluation.baselines import NAME

        shown = {**summary["final"], NAME: summary["constant_predictor"]}
        out_console.print(
            heads_table(
                shown,
                title=f"{recipe.name}: final epoch, val split",
                extra_rows=versus_teacher_rows(summary.get("vs_teacher")),
                delta_label=trainer.delta_label,
            )
        )
        if summary.get("vs_teacher"):
            out_console.print(
                f"vs teacher: Δm of each head against the Teacher; latency "
                f"{summary['latency_note']}"
            )
    out_console.print(
        f"best.pt: epoch {(summary['best_epoch'] or 0) + 1} by {trainer.selection.head} "
        f"{trainer.selection.metric}; {summary['wall_time_s']:.0f} s, "
        f"{summary['train_images_per_s']} img/s "
        f"-> {run_dir}"
    )
    if summary.get("warnings"):  # each was printed when it arose; this closes the run
        out_console.print(
            f"[yellow]warning:[/] the run diverged: {len(summary['warnings'])} divergence "
            "warning(s) in summary.json"
        )
    return summary
