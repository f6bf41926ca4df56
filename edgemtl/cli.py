"""The `edgemtl` command line (typer).

Each command imports its implementation only when it runs, so `edgemtl profile`
works on a device without PyTorch and `--help` is instant. A `UserError`
anywhere below becomes one line on stderr and exit 1 (EDGEMTL_DEBUG=1 shows the
traceback); usage errors are typer's own (exit 2).

Why this size: the whole command surface (every option and its help text) is
here, and each command body only maps options onto its implementation.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from edgemtl import __version__
from edgemtl.core.errors import TRAIN_EXTRA, UserError
from edgemtl.core.heads import ALL, DEFAULT_ORDER, choices
from edgemtl.core.threads import passive_openmp
from edgemtl.data.readers import dataset_kinds

# Before any command imports PyTorch: its OpenMP threads then sleep between parallel
# regions instead of spinning, which on a shared machine costs the other jobs and us
# (edgemtl.core.threads); train, eval and export lift it on idle CPUs (`_need_torch`).
# An OMP_WAIT_POLICY the user set is kept.
_OPENMP_SET_HERE = passive_openmp()


class _ReadableHelp:
    """Help that reads as a CLI, not as Python: no type label after a flag (`--resume
    <bool>`), names instead of types for values (`--set KEY=VALUE`, `--iterations N`), and
    `RECIPE` rather than `{recipe}` in the usage line.

    Why: typer (>= 0.2x) prints every parameter's Python type. Metavars given in the
    options below win; this fills in the rest from the type.
    """

    #: Metavar of an option without one, by the typer type label it would show.
    METAVARS = {
        "int": "N",
        "int range": "N",
        "float": "X",
        "float range": "X",
        "str": "TEXT",
        "path": "PATH",
        "file": "FILE",
        "directory": "DIR",
    }

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if param.param_type_name == "argument":
                param.metavar = param.metavar or (param.name or "").upper()
                param.display_type_rich = lambda ctx: None
            elif getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
            elif param.metavar is None:
                label = getattr(param, "display_type", lambda c: "")(ctx) or ""
                param.metavar = self.METAVARS.get(label.strip("<>"), "VALUE")
        return params

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces: list[str] = super().collect_usage_pieces(ctx)  # type: ignore[misc]
        return [re.sub(r"\{([^}]*)\}", r"\1", piece) for piece in pieces]


class Command(_ReadableHelp, TyperCommand):
    """A command with `_ReadableHelp`."""


class Group(_ReadableHelp, TyperGroup):
    """A command group (the root, `data`) with `_ReadableHelp`."""


app = typer.Typer(
    name="edgemtl",
    help=(
        "Train self-distilled multi-task CNNs, export them, and profile them on the target device."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=Group,
)


def _print_version(value: bool) -> None:
    if value:
        print(f"edgemtl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Train self-distilled multi-task CNNs, export them, and profile them on the target device."""


data_app = typer.Typer(
    help="Datasets: generate synthetic scenes, check and show datasets.",
    no_args_is_help=True,
    cls=Group,
)
app.add_typer(data_app, name="data")

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or chatter.")]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set", metavar="KEY=VALUE", help="Override a recipe key: a.b=value (repeatable)."
    ),
]
Device = Annotated[
    Optional[str],
    typer.Option("--device", metavar="cpu|cuda|auto", help="Default: cuda if available, else cpu."),
]
MaxImageMpx = Annotated[
    Optional[float],
    typer.Option(
        "--max-image-mpx",
        help="Largest image read, in megapixels (default 50, or $EDGEMTL_MAX_IMAGE_MPX).",
    ),
]
#: Head names in help texts come from the registry (edgemtl.core.heads).
HEADS_HELP = choices()
#: How a checkpoint's default head is chosen (`edgemtl.core.heads.default_head`); docs/export.md
#: and docs/profile.md say the same words (tests/cli/test_help.py).
DEFAULT_HEAD_RULE = "the run's selected head (train.select.head), else " + ", else ".join(
    DEFAULT_ORDER
)
CKPT_HEAD_HELP = f"Checkpoints: {HEADS_HELP} (default: {DEFAULT_HEAD_RULE})."
EXPORT_HEAD_HELP = (
    f"{HEADS_HELP} (default: a bundle's own head; from a checkpoint, {DEFAULT_HEAD_RULE})."
)
REFERENCE_HELP = (
    "The results Δm and accuracy deltas are measured against: a run folder, a "
    "summary/eval/profile JSON or a checkpoint, PATH#HEAD picks a head; repeatable, "
    "merged task-wise (e.g. one single-task run per task)."
)
PROFILE_REFERENCE_HELP = (
    REFERENCE_HELP + " Also one of the profiled artifacts, by path or label "
    "(e.g. 'teacher fp32 onnx'), scored on the same images. Default: each "
    "INT8/FP16 row against its bundle's FP32 ONNX."
)


def _need_torch(what: str) -> None:
    """One line naming the extra to install when this install has no PyTorch (the device
    install: docs/deploy.md), instead of a ModuleNotFoundError traceback."""
    from edgemtl.core.threads import openmp_for_run, run_choice

    if _OPENMP_SET_HERE:  # spin-waiting OpenMP only on idle CPUs, decided before torch loads
        openmp_for_run(run_choice())
    try:
        import torch  # noqa: F401
    except (ImportError, OSError):
        raise UserError(f"{what} needs PyTorch, which this install lacks: {TRAIN_EXTRA}") from None


@app.command(cls=Command)
def train(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML, e.g. recipes/synthetic.yaml.")],
    set_: SetOpt = None,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", metavar="PATH", help="Run folder (default runs/<recipe>-<time>)."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the run in --out (or the newest run of this recipe) from last.pt.",
        ),
    ] = False,
    device: Device = None,
    data: Annotated[
        Optional[str],
        typer.Option(
            "--data",
            metavar="ROOT",
            help="Dataset root (the same as --set data.root=ROOT).",
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Train a recipe; evaluates every head each epoch and keeps last.pt / best.pt."""
    from edgemtl.core.config import load_recipe
    from edgemtl.data.registry import dataset_record

    if data is not None:  # JSON is YAML: the root arrives as a string, whatever it looks like
        set_ = [*(set_ or []), f"data.root={json.dumps(data)}"]
    loaded = load_recipe(recipe, set_ or [])  # recipe errors surface before PyTorch is imported
    dataset_record(loaded.data, f"recipe {recipe}")  # so does an unregistered data.kind
    _need_torch("edgemtl train")
    from edgemtl.training.train_command import TrainOptions, run_training

    run_training(TrainOptions(loaded, tuple(set_ or ()), out, resume, device, quiet))


@app.command("eval", cls=Command)
def eval_(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint (runs/<run>/best.pt).")],
    head: Annotated[str, typer.Option("--head", metavar="HEAD", help=f"{choices((ALL,))}.")] = ALL,
    data: Annotated[
        Optional[str],
        typer.Option(
            "--data", metavar="ROOT", help="Dataset root, when not where the run found it."
        ),
    ] = None,
    split: Annotated[
        str, typer.Option("--split", metavar="train|val", help="train or val.")
    ] = "val",
    limit: Annotated[
        Optional[int], typer.Option("--limit", min=1, help="Score only the first N images.")
    ] = None,
    json_path: Annotated[
        Optional[str],
        typer.Option(
            "--json", metavar="PATH", help="Write the result as JSON to PATH ('-' = stdout)."
        ),
    ] = None,
    device: Device = None,
    quiet: Quiet = False,
    reference: Annotated[
        Optional[list[str]], typer.Option("--reference", metavar="RUN_OR_JSON", help=REFERENCE_HELP)
    ] = None,
) -> None:
    """Score a checkpoint's heads on a split (a table per head; --json for machines)."""
    from edgemtl.core.options import DataSource, OutputFiles

    _need_torch("edgemtl eval")
    from edgemtl.training.evaluate import EvalOptions, eval_command

    eval_command(
        checkpoint,
        EvalOptions(
            head=head,
            data=DataSource(data, split, limit),
            output=OutputFiles(json=json_path),
            device=device,
            reference=reference,
            quiet=quiet,
        ),
    )


@app.command(cls=Command)
def export(
    source: Annotated[
        Optional[Path],
        typer.Argument(help="Checkpoint (default: newest runs/*/best.pt) or a bundle folder."),
    ] = None,
    head: Annotated[
        Optional[str], typer.Option("--head", metavar="HEAD", help=EXPORT_HEAD_HELP)
    ] = None,
    outputs: Annotated[
        str,
        typer.Option(
            "--outputs",
            metavar="raw|decoded",
            help="raw (logits, maps) or decoded (argmax labels in-graph).",
        ),
    ] = "raw",
    fp16: Annotated[
        bool,
        typer.Option(
            "--fp16", help="Also build the FP16 ONNX (and FP16 engine where TensorRT exists)."
        ),
    ] = False,
    int8: Annotated[
        bool, typer.Option("--int8", help="Also build the symmetric QDQ INT8 ONNX (and engine).")
    ] = False,
    calib: Annotated[
        int, typer.Option("--calib", min=1, help="INT8 calibration images from the training split.")
    ] = 64,
    dynamic_batch: Annotated[
        bool,
        typer.Option(
            "--dynamic-batch", help="Dynamic batch dimension (static batch 1 by default)."
        ),
    ] = False,
    max_batch: Annotated[
        int,
        typer.Option(
            "--max-batch", min=1, help="Largest batch of the TensorRT profile with --dynamic-batch."
        ),
    ] = 16,
    no_simplify: Annotated[bool, typer.Option("--no-simplify", help="Skip onnxsim.")] = False,
    data: Annotated[
        Optional[str],
        typer.Option("--data", metavar="ROOT", help="Dataset root for parity/calibration samples."),
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", metavar="PATH", help="Bundle folder (default export/<run>-<head>/)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild artifacts whose content would change.")
    ] = False,
    tol: Annotated[
        Optional[list[str]],
        typer.Option(
            "--tol",
            metavar="NAME=VALUE",
            help="Override a parity bound: NAME=VALUE (repeatable), e.g. int8_miou_drop=5.",
        ),
    ] = None,
    samples: Annotated[
        int, typer.Option("--samples", min=1, help="Parity samples from the validation split.")
    ] = 8,
    trt: Annotated[
        Optional[bool],
        typer.Option(
            "--trt/--no-trt",
            help="Build TensorRT engines (default: where TensorRT and a GPU exist).",
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Export one head to a bundle gated on real samples: ONNX FP32 (+FP16/INT8), TensorRT."""
    from edgemtl.export import command
    from edgemtl.export.options import ExportOptions, parse_tolerances

    options = ExportOptions(
        head=head,
        outputs=outputs,
        fp16=fp16,
        int8=int8,
        calib=calib,
        dynamic_batch=dynamic_batch,
        max_batch=max_batch,
        simplify=not no_simplify,
        data_root=data,
        out=out,
        force=force,
        tolerances=parse_tolerances(tol or []),
        samples=samples,
        trt=trt,
        quiet=quiet,
    )
    # A bundle folder stays torch-free (so does a missing path: one line says so); a
    # checkpoint, or none (the newest runs/*/best.pt), goes to the training side.
    run: Callable[[Path | None, ExportOptions], object] = command.export_command
    if source is None or (source.exists() and not source.is_dir()):
        _need_torch("edgemtl export from a checkpoint")
        from edgemtl.training.export import command as checkpoint_command

        run = checkpoint_command.export_command
    run(source, options)


@app.command(cls=Command)
def profile(
    artifacts: Annotated[
        list[Path],
        typer.Argument(
            help="ONNX files, engines (.trt/.engine/.plan), bundle folders or checkpoints (.pt); "
            "with --all-formats also run folders."
        ),
    ],
    batch: Annotated[
        str,
        typer.Option(
            "--batch", metavar="N[,N...]", help="Batch size, or a comma-separated sweep: 1,4,8."
        ),
    ] = "1",
    iterations: Annotated[
        int, typer.Option("--iterations", "-n", help="Timed iterations per artifact and batch.")
    ] = 50,
    duration: Annotated[
        Optional[float],
        typer.Option(
            "--duration",
            metavar="SECONDS",
            help="Time each artifact for SECONDS instead of --iterations.",
        ),
    ] = None,
    warmup: Annotated[int, typer.Option("--warmup", help="Warm-up iterations (at least).")] = 5,
    warmup_s: Annotated[
        float, typer.Option("--warmup-s", metavar="SECONDS", help="Warm-up seconds (at least).")
    ] = 0.5,
    rounds: Annotated[
        int, typer.Option("--rounds", min=1, help="Interleaving rounds across artifacts.")
    ] = 5,
    device: Annotated[
        str, typer.Option("--device", metavar="cpu|cuda", help="Where to run.")
    ] = "cpu",
    provider: Annotated[
        Optional[str],
        typer.Option(
            "--provider",
            metavar="cpu|cuda|tensorrt",
            help="ONNX Runtime provider: cpu, cuda or tensorrt.",
        ),
    ] = None,
    threads: Annotated[
        Optional[int],
        typer.Option("--threads", min=1, help="CPU threads (default: the free CPUs; recorded)."),
    ] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="Checkpoints: FP16 autocast.")] = False,
    head: Annotated[
        Optional[str], typer.Option("--head", metavar="HEAD", help=CKPT_HEAD_HELP)
    ] = None,
    precision: Annotated[
        Optional[str],
        typer.Option(
            "--precision", metavar="LIST", help="Bundles: only these precisions, e.g. fp32,int8."
        ),
    ] = None,
    format_: Annotated[
        Optional[str],
        typer.Option(
            "--format", metavar="LIST", help="Bundles: only these formats, onnx and/or trt."
        ),
    ] = None,
    accuracy: Annotated[
        bool, typer.Option("--accuracy", help="Score accuracy on the artifact's recorded dataset.")
    ] = False,
    data: Annotated[
        Optional[str],
        typer.Option("--data", metavar="ROOT", help="Dataset root: score accuracy on it."),
    ] = None,
    split: Annotated[
        str, typer.Option("--split", metavar="train|val", help="train or val.")
    ] = "val",
    limit: Annotated[
        Optional[int], typer.Option("--limit", min=1, help="Score only the first N images.")
    ] = None,
    reference: Annotated[
        Optional[list[str]],
        typer.Option("--reference", metavar="RUN_OR_JSON", help=PROFILE_REFERENCE_HELP),
    ] = None,
    power: Annotated[
        bool,
        typer.Option(
            "--power/--no-power", help="Sample power (tegrastats on Jetson, NVML on GPUs)."
        ),
    ] = True,
    idle: Annotated[
        float,
        typer.Option("--idle", metavar="SECONDS", help="Idle power window before timing, seconds."),
    ] = 2.0,
    json_path: Annotated[
        Optional[str],
        typer.Option(
            "--json", metavar="PATH", help="Write every number as JSON to PATH ('-' = stdout)."
        ),
    ] = None,
    markdown: Annotated[
        Optional[str],
        typer.Option("--markdown", metavar="PATH", help="Write the table as Markdown to PATH."),
    ] = None,
    plot: Annotated[
        Optional[str],
        typer.Option(
            "--plot",
            metavar="PATH",
            help="Latency-vs-Δm chart with the Pareto front to PATH (.png/.svg/.pdf).",
        ),
    ] = None,
    budget_ms: Annotated[
        Optional[float],
        typer.Option(
            "--budget-ms",
            metavar="MS",
            help="Name the most accurate artifact whose p50 latency is at most MS on this "
            "device (needs --accuracy and a Teacher FP32 artifact or --reference).",
        ),
    ] = None,
    all_formats: Annotated[
        bool,
        typer.Option(
            "--all-formats",
            help="From a checkpoint, run folder or bundle: export the missing FP32/FP16/INT8 "
            "ONNX (and TensorRT engines where possible) and profile every format in one table.",
        ),
    ] = False,
    frame: Annotated[
        Optional[str],
        typer.Option(
            "--frame",
            metavar="HxW|input|off",
            help="Per-frame cost (decode, preprocess, infer, postprocess) on a JPEG frame of "
            "this size; default: the model's input size.",
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Latency, per-frame cost, accuracy and power of artifacts on this machine, interleaved."""
    from edgemtl.core.options import ArtifactChoice, DataSource, OutputFiles
    from edgemtl.deploy.profile import command as pc
    from edgemtl.deploy.profile.frame import parse_frame
    from edgemtl.deploy.profile.timing import TimingConfig
    from edgemtl.deploy.runtime import RunnerOptions

    frame_size = parse_frame(frame)

    pc.profile_command(
        artifacts,
        pc.ProfileOptions(
            batches=pc.parse_batches(batch),
            timing=TimingConfig(
                warmup_iterations=warmup,
                warmup_s=warmup_s,
                iterations=iterations,
                duration_s=duration,
            ),
            rounds=rounds,
            runner=RunnerOptions(device=device, provider=provider, threads=threads, fp16=fp16),
            select=ArtifactChoice(
                head=head,
                precisions=pc.parse_precisions(precision),
                formats=pc.parse_formats(format_),
            ),
            accuracy=accuracy,
            data=DataSource(data, split, limit),
            reference=reference,
            power=power,
            idle_s=idle,
            output=OutputFiles(json=json_path, markdown=markdown, plot=plot),
            quiet=quiet,
            budget_ms=budget_ms,
            frame_pipeline=frame_size is not False,
            frame_size=frame_size or None,
            all_formats=all_formats,
        ),
    )


@app.command(cls=Command)
def predict(
    artifact: Annotated[Path, typer.Argument(help="Bundle folder, .onnx, engine or checkpoint.")],
    inputs: Annotated[list[Path], typer.Argument(help="Images (PNG/JPG/.npy) or folders of them.")],
    out: Annotated[
        Path,
        typer.Option("--out", metavar="PATH", help="Folder for <name>.npz and <name>.<task>.png."),
    ] = Path("preds"),
    device: Annotated[
        str, typer.Option("--device", metavar="cpu|cuda", help="Where to run.")
    ] = "cpu",
    provider: Annotated[
        Optional[str],
        typer.Option(
            "--provider",
            metavar="cpu|cuda|tensorrt",
            help="ONNX Runtime provider: cpu, cuda or tensorrt.",
        ),
    ] = None,
    threads: Annotated[
        Optional[int],
        typer.Option("--threads", min=1, help="CPU threads (default: the free CPUs)."),
    ] = None,
    precision: Annotated[
        Optional[str],
        typer.Option(
            "--precision",
            metavar="fp32|fp16|int8",
            help="Bundles: which artifact (default: an engine on cuda, else the FP32 ONNX).",
        ),
    ] = None,
    head: Annotated[
        Optional[str], typer.Option("--head", metavar="HEAD", help=CKPT_HEAD_HELP)
    ] = None,
    overlays: Annotated[
        bool, typer.Option("--overlays/--no-overlays", help="Write PNG overlays beside the arrays.")
    ] = True,
    max_image_mpx: MaxImageMpx = None,
    resize: Annotated[
        str,
        typer.Option(
            "--resize",
            metavar="stretch|letterbox",
            help="Fit a frame to the model input: stretch (as training did; a warning when the "
            "aspect ratio differs) or letterbox (keeps the shape).",
        ),
    ] = "stretch",
    quiet: Quiet = False,
) -> None:
    """Decoded task maps (and overlays) for images, at each image's own size."""
    from edgemtl.core.options import ArtifactChoice
    from edgemtl.data.imageio import set_max_mpx

    set_max_mpx(max_image_mpx)
    from edgemtl.deploy.predict import PredictOptions, predict_command
    from edgemtl.deploy.runtime import RunnerOptions

    predict_command(
        artifact,
        inputs,
        PredictOptions(
            out=out,
            runner=RunnerOptions(device=device, provider=provider, threads=threads),
            select=ArtifactChoice(head=head, precisions=[precision] if precision else None),
            overlays=overlays,
            quiet=quiet,
            resize=resize,
        ),
    )


@data_app.command("synth", cls=Command)
def data_synth(
    out: Annotated[
        Path, typer.Argument(help="Folder to write (NYUv2 layout + keypoints/, edges/).")
    ],
    n_train: Annotated[
        int, typer.Option("--n-train", min=1, help="Scenes in the training split.")
    ] = 512,
    n_val: Annotated[int, typer.Option("--n-val", min=1, help="Scenes in the val split.")] = 128,
    size: Annotated[
        str, typer.Option("--size", metavar="HxW", help="Image height x width in pixels.")
    ] = "64x128",
    seed: Annotated[
        int,
        typer.Option(
            "--seed", help="Generator seed: the same seed and sizes give the same scenes."
        ),
    ] = 0,
    max_image_mpx: MaxImageMpx = None,
    quiet: Quiet = False,
) -> None:
    """Render synthetic multi-task scenes with exact labels to OUT."""
    from edgemtl.data.imageio import set_max_mpx
    from edgemtl.data.synth_command import SynthOptions, parse_size, synth_command

    set_max_mpx(max_image_mpx)

    synth_command(
        out,
        SynthOptions(n_train=n_train, n_val=n_val, size=parse_size(size), seed=seed, quiet=quiet),
    )


DatasetOpt = Annotated[
    Optional[str],
    typer.Option(
        "--dataset",
        metavar="KIND",
        help=f"{', '.join(dataset_kinds())} (default: detected).",
    ),
]
LabelFolderOpt = Annotated[
    Optional[str],
    typer.Option(
        "--label-folder",
        metavar="NAME",
        help="Cityscapes: label_7 (default), label_19, label_2 or label.",
    ),
]
SplitFileOpt = Annotated[
    Optional[str],
    typer.Option(
        "--split-file", metavar="PATH", help="Taskonomy: CSV building,split or a path with {split}."
    ),
]
LayoutOpt = Annotated[
    Optional[str],
    typer.Option(
        "--layout",
        metavar="NAME",
        help="Taskonomy: building_domain or domain_building (default: detected).",
    ),
]


@data_app.command("check", cls=Command)
def data_check(
    root: Annotated[Path, typer.Argument(help="Dataset folder.")],
    dataset: DatasetOpt = None,
    json_path: Annotated[
        Optional[str],
        typer.Option(
            "--json", metavar="PATH", help="Write the report as JSON to PATH ('-' = stdout)."
        ),
    ] = None,
    label_folder: LabelFolderOpt = None,
    split_file: SplitFileOpt = None,
    layout: LayoutOpt = None,
    tasks: Annotated[
        Optional[str],
        typer.Option("--tasks", metavar="LIST", help="Only these tasks, e.g. seg,depth."),
    ] = None,
    limit: Annotated[
        Optional[int],
        typer.Option("--limit", min=1, help="Check only the first N samples per split."),
    ] = None,
    max_image_mpx: MaxImageMpx = None,
    quiet: Quiet = False,
) -> None:
    """Read every sample: layout, counts, shapes, ranges, invalid fractions, class histogram."""
    from edgemtl.core.options import DatasetFormat, OutputFiles, parse_list
    from edgemtl.data.check_command import CheckOptions, check_command
    from edgemtl.data.imageio import set_max_mpx

    set_max_mpx(max_image_mpx)

    check_command(
        root,
        CheckOptions(
            format=DatasetFormat(dataset, label_folder, split_file, layout),
            output=OutputFiles(json=json_path),
            tasks=parse_list(tasks, "--tasks"),
            limit=limit,
            quiet=quiet,
        ),
    )


@data_app.command("show", cls=Command)
def data_show(
    root: Annotated[Path, typer.Argument(help="Dataset folder.")],
    index: Annotated[int, typer.Option("--index", "-i", help="Sample index in the split.")] = 0,
    out: Annotated[Path, typer.Option("--out", metavar="PATH", help="PNG to write.")] = Path(
        "sample.png"
    ),
    dataset: DatasetOpt = None,
    split: Annotated[
        str, typer.Option("--split", metavar="train|val", help="train or val.")
    ] = "train",
    label_folder: LabelFolderOpt = None,
    split_file: SplitFileOpt = None,
    layout: LayoutOpt = None,
    max_image_mpx: MaxImageMpx = None,
    quiet: Quiet = False,
) -> None:
    """One sample: the image and every target side by side, with legends and colour bars."""
    from edgemtl.core.options import DatasetFormat
    from edgemtl.data.imageio import set_max_mpx
    from edgemtl.data.show import ShowOptions, show_command

    set_max_mpx(max_image_mpx)

    show_command(
        root,
        ShowOptions(
            index=index,
            out=out,
            split=split,
            quiet=quiet,
            format=DatasetFormat(dataset, label_folder, split_file, layout),
        ),
    )


def main() -> None:
    try:
        app()
    except UserError as err:
        if os.environ.get("EDGEMTL_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except Exception as err:  # noqa: BLE001 - exceptions that opt in with a user-facing message
        # Only a run that imported the trainer can be interrupted; importing it here would
        # import PyTorch, which a device install lacks.
        trainer = sys.modules.get("edgemtl.training.trainer")
        interrupted = trainer is not None and isinstance(err, trainer.TrainingInterrupted)
        if interrupted and not os.environ.get("EDGEMTL_DEBUG"):
            print(f"stopped: {err}", file=sys.stderr)
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
