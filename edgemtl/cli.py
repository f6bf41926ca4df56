"""The `edgemtl` command line (typer).

Each command imports its implementation only when it runs, so `edgemtl profile`
works on a device without PyTorch and `--help` is instant. A `UserError`
anywhere below becomes one line on stderr and exit 1 (EDGEMTL_DEBUG=1 shows the
traceback); usage errors are typer's own (exit 2).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgemtl.core.errors import UserError

app = typer.Typer(
    name="edgemtl",
    help="Train self-distilled multi-task CNNs, export them, and profile them on the target device.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Datasets: generate synthetic scenes, check and show datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or chatter.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a recipe key: a.b=value (repeatable).")]
Device = Annotated[Optional[str], typer.Option("--device", help="cpu, cuda or auto (default: cuda if available).")]


@app.command()
def train(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML, e.g. recipes/synthetic.yaml.")],
    set_: SetOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Run folder (default runs/<recipe>-<time>).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out (or the newest run of this recipe) from last.pt.")] = False,
    device: Device = None,
    quiet: Quiet = False,
) -> None:
    """Train a recipe; evaluates every head each epoch and keeps last.pt / best.pt."""
    from edgemtl.core.config import load_recipe

    loaded = load_recipe(recipe, set_ or [])  # recipe errors surface before PyTorch is imported
    from edgemtl.training.train_command import TrainOptions, run_training

    run_training(TrainOptions(loaded, tuple(set_ or ()), out, resume, device, quiet))


@app.command("eval")
def eval_(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint (runs/<run>/best.pt).")],
    head: Annotated[str, typer.Option("--head", help="teacher, student, ensemble or all.")] = "all",
    data: Annotated[Optional[str], typer.Option("--data", help="Dataset root, when not where the run found it.")] = None,
    split: Annotated[str, typer.Option("--split", help="train or val.")] = "val",
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Score only the first N images.")] = None,
    json_path: Annotated[Optional[str], typer.Option("--json", help="Write the result as JSON to PATH ('-' = stdout).")] = None,
    device: Device = None,
    quiet: Quiet = False,
    reference: Annotated[Optional[list[str]], typer.Option("--reference", help="Δm against RUN_OR_JSON[#head] (repeatable: merged task-wise, e.g. one single-task run per task).")] = None,
) -> None:
    """Score a checkpoint's heads on a split (a table per head; --json for machines)."""
    from edgemtl.training.evaluate import eval_command

    eval_command(checkpoint, head, data, split, limit, json_path, device, quiet, reference)


@app.command()
def export(
    source: Annotated[Optional[Path], typer.Argument(help="Checkpoint (default: newest runs/*/best.pt) or a bundle folder.")] = None,
    head: Annotated[Optional[str], typer.Option("--head", help="student, teacher or ensemble (default: the bundle's, else student).")] = None,
    outputs: Annotated[str, typer.Option("--outputs", help="raw (logits, maps) or decoded (argmax labels in-graph).")] = "raw",
    fp16: Annotated[bool, typer.Option("--fp16", help="Also build the FP16 ONNX (and FP16 engine where TensorRT exists).")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Also build the symmetric QDQ INT8 ONNX (and engine).")] = False,
    calib: Annotated[int, typer.Option("--calib", min=1, help="INT8 calibration images from the training split.")] = 64,
    dynamic_batch: Annotated[bool, typer.Option("--dynamic-batch", help="Dynamic batch dimension (static batch 1 by default).")] = False,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, help="Largest batch of the TensorRT profile with --dynamic-batch.")] = 16,
    no_simplify: Annotated[bool, typer.Option("--no-simplify", help="Skip onnxsim.")] = False,
    data: Annotated[Optional[str], typer.Option("--data", help="Dataset root for parity/calibration samples.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Bundle folder (default export/<run>-<head>/).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild artifacts whose content would change.")] = False,
    tol: Annotated[Optional[list[str]], typer.Option("--tol", help="Override a parity bound: NAME=VALUE (repeatable), e.g. int8_miou_drop=5.")] = None,
    samples: Annotated[int, typer.Option("--samples", min=1, help="Parity samples from the validation split.")] = 8,
    trt: Annotated[Optional[bool], typer.Option("--trt/--no-trt", help="Build TensorRT engines (default: where TensorRT and a GPU exist).")] = None,
    quiet: Quiet = False,
) -> None:
    """Export one head to a self-checking bundle: ONNX FP32 (+FP16/INT8), TensorRT engines where possible."""
    from edgemtl.export import command

    run: Callable[..., object] = command.export_command  # a bundle folder: torch-free
    if source is None or not source.is_dir():  # a checkpoint, or the newest runs/*/best.pt
        from edgemtl.training.export import command as checkpoint_command

        run = checkpoint_command.export_command
    run(source, head, outputs, fp16, int8, calib, dynamic_batch, max_batch, not no_simplify,
        data, out, force, command.parse_tolerances(tol or []), samples, trt, quiet)


@app.command()
def profile(
    artifacts: Annotated[list[Path], typer.Argument(help="ONNX files, engines (.trt/.engine/.plan), bundle folders or checkpoints (.pt).")],
    batch: Annotated[str, typer.Option("--batch", help="Batch size, or a comma-separated sweep: 1,4,8.")] = "1",
    iterations: Annotated[int, typer.Option("--iterations", "-n", help="Timed iterations per artifact and batch.")] = 50,
    duration: Annotated[Optional[float], typer.Option("--duration", help="Time each artifact for SECONDS instead of --iterations.")] = None,
    warmup: Annotated[int, typer.Option("--warmup", help="Warm-up iterations (at least).")] = 5,
    warmup_s: Annotated[float, typer.Option("--warmup-s", help="Warm-up seconds (at least).")] = 0.5,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Interleaving rounds across artifacts.")] = 5,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    provider: Annotated[Optional[str], typer.Option("--provider", help="ONNX Runtime provider: cpu, cuda or tensorrt.")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads (default: all available; recorded).")] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="Checkpoints: FP16 autocast.")] = False,
    head: Annotated[Optional[str], typer.Option("--head", help="Checkpoints: teacher, student or ensemble.")] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help="Bundles: only these precisions, e.g. fp32,int8.")] = None,
    format_: Annotated[Optional[str], typer.Option("--format", help="Bundles: only these formats, onnx and/or trt.")] = None,
    accuracy: Annotated[bool, typer.Option("--accuracy", help="Score accuracy on the artifact's recorded dataset.")] = False,
    data: Annotated[Optional[str], typer.Option("--data", help="Dataset root: score accuracy on it.")] = None,
    split: Annotated[str, typer.Option("--split", help="train or val.")] = "val",
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Score only the first N images.")] = None,
    reference: Annotated[Optional[str], typer.Option("--reference", help="Artifact the accuracy deltas are taken against.")] = None,
    power: Annotated[bool, typer.Option("--power/--no-power", help="Sample power (tegrastats on Jetson, NVML on GPUs).")] = True,
    idle: Annotated[float, typer.Option("--idle", help="Idle power window before timing, seconds.")] = 2.0,
    json_path: Annotated[Optional[str], typer.Option("--json", help="Write every number as JSON to PATH ('-' = stdout).")] = None,
    markdown: Annotated[Optional[str], typer.Option("--markdown", help="Write the table as Markdown to PATH.")] = None,
    plot: Annotated[Optional[str], typer.Option("--plot", help="Latency-vs-accuracy chart to PATH (.png/.svg/.pdf).")] = None,
    quiet: Quiet = False,
) -> None:
    """Latency, accuracy and power of artifacts on this machine, interleaved under the same conditions."""
    from edgemtl.deploy.profile.command import profile_command

    profile_command(artifacts, batch, iterations, duration, warmup, warmup_s, rounds, device, provider, threads,
                    fp16, head, precision, format_, accuracy, data, split, limit, reference, power, idle,
                    json_path, markdown, plot, quiet)


@app.command()
def predict(
    artifact: Annotated[Path, typer.Argument(help="Bundle folder, .onnx, engine or checkpoint.")],
    inputs: Annotated[list[Path], typer.Argument(help="Images (PNG/JPG/.npy) or folders of them.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for <name>.npz and <name>.<task>.png.")] = Path("preds"),
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    provider: Annotated[Optional[str], typer.Option("--provider", help="ONNX Runtime provider: cpu, cuda or tensorrt.")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads.")] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help="Bundles: which artifact (fp32, fp16, int8).")] = None,
    head: Annotated[Optional[str], typer.Option("--head", help="Checkpoints: teacher, student or ensemble.")] = None,
    overlays: Annotated[bool, typer.Option("--overlays/--no-overlays", help="Write PNG overlays beside the arrays.")] = True,
    quiet: Quiet = False,
) -> None:
    """Decoded task maps (and overlays) for images, at each image's own size."""
    from edgemtl.deploy.predict import predict_command

    predict_command(artifact, inputs, out, device, provider, threads, precision, head, overlays, quiet)


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Argument(help="Folder to write (NYUv2 layout + keypoints/, edges/).")],
    n_train: Annotated[int, typer.Option("--n-train", min=1)] = 512,
    n_val: Annotated[int, typer.Option("--n-val", min=1)] = 128,
    size: Annotated[str, typer.Option("--size", help="HxW, e.g. 64x128.")] = "64x128",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    quiet: Quiet = False,
) -> None:
    """Render synthetic multi-task scenes with exact labels to OUT."""
    from edgemtl.data.synth_command import synth_command

    synth_command(out, n_train, n_val, size, seed, quiet)


DatasetOpt = Annotated[Optional[str], typer.Option("--dataset", help="nyuv2, cityscapes, taskonomy, folder or synthetic (default: detected).")]
LabelFolderOpt = Annotated[Optional[str], typer.Option("--label-folder", help="Cityscapes: label_7 (default), label_19, label_2 or label.")]
SplitFileOpt = Annotated[Optional[str], typer.Option("--split-file", help="Taskonomy: CSV building,split or a path with {split}.")]
LayoutOpt = Annotated[Optional[str], typer.Option("--layout", help="Taskonomy: building_domain or domain_building (default: detected).")]


@data_app.command("check")
def data_check(
    root: Annotated[Path, typer.Argument(help="Dataset folder.")],
    dataset: DatasetOpt = None,
    json_path: Annotated[Optional[str], typer.Option("--json", help="Write the report as JSON to PATH ('-' = stdout).")] = None,
    label_folder: LabelFolderOpt = None,
    split_file: SplitFileOpt = None,
    layout: LayoutOpt = None,
    tasks: Annotated[Optional[str], typer.Option("--tasks", help="Only these tasks, e.g. seg,depth.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Check only the first N samples per split.")] = None,
    quiet: Quiet = False,
) -> None:
    """Read every sample: layout, counts, shapes, dtypes, ranges, invalid fractions, class histogram."""
    from edgemtl.data.check_command import check_command

    check_command(root, dataset, json_path, label_folder, split_file, layout, tasks, limit, quiet)


@data_app.command("show")
def data_show(
    root: Annotated[Path, typer.Argument(help="Dataset folder.")],
    index: Annotated[int, typer.Option("--index", "-i", help="Sample index in the split.")] = 0,
    out: Annotated[Path, typer.Option("--out", help="PNG to write.")] = Path("sample.png"),
    dataset: DatasetOpt = None,
    split: Annotated[str, typer.Option("--split", help="train or val.")] = "train",
    label_folder: LabelFolderOpt = None,
    split_file: SplitFileOpt = None,
    layout: LayoutOpt = None,
    quiet: Quiet = False,
) -> None:
    """Image and every target side by side (labels colour-mapped with a legend, depth, normals as RGB)."""
    from edgemtl.data.show import show_command

    show_command(root, index, out, dataset, split, label_folder, split_file, layout, quiet)


def main() -> None:
    try:
        app()
    except UserError as err:
        if os.environ.get("EDGEMTL_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except Exception as err:  # noqa: BLE001 - exceptions that opt in with a user-facing message
        from edgemtl.training.trainer import TrainingInterrupted

        if isinstance(err, TrainingInterrupted) and not os.environ.get("EDGEMTL_DEBUG"):
            print(f"stopped: {err}", file=sys.stderr)
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
