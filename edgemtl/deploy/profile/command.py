"""`edgemtl profile`: latency, accuracy and power of artifacts on this machine.

Flow: resolve paths to artifacts -> load one runner each -> (optional)
accuracy over a split through the shared scoring loop (`accuracy.score_artifacts`)
-> idle power window -> timed loops for every batch size, all artifacts
interleaved under the same conditions with a power sampler running
(`rows.time_rows`) -> one result dict (the `--json` document) -> terminal
table / Markdown / plot (`edgemtl.deploy.report`).
Torch-free unless a checkpoint is profiled.

Why this size: the options object with its checks and the one flow every profile
output shares; each step lives in its own module (accuracy, rows, frame, siblings,
pareto, report).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgemtl.core.errors import UserError, excerpt
from edgemtl.core.heads import TEACHER
from edgemtl.core.manifest import artifact_path
from edgemtl.core.options import (
    ArtifactChoice,
    DataSource,
    OutputFiles,
    at_least_one,
    non_negative,
    parse_list,
    positive,
)
from edgemtl.core.paths import check_not_an_input
from edgemtl.core.threads import run_choice
from edgemtl.deploy.profile import pareto
from edgemtl.deploy.profile.frame import FRAME_PIPELINE
from edgemtl.deploy.profile.rows import time_rows
from edgemtl.deploy.profile.siblings import flag_slower
from edgemtl.deploy.profile.timing import TimingConfig
from edgemtl.deploy.runtime.base import ModelRef, Runner, RunnerOptions
from edgemtl.deploy.runtime.resolve import open_runner, resolve_artifacts

PROFILE_SCHEMA_VERSION = 1


FORMATS = ("onnx", "trt")
#: Suffixes of the files a bundle folder holds (manifest, models, engines, timing cache).
BUNDLE_FILES = (".json", ".onnx", ".trt", ".engine", ".plan", ".cache")
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class ProfileOptions:
    """Everything `profile_command` takes besides the paths (the CLI maps its flags).

    batches: batch sizes to time (`parse_batches`); runner: device (cpu or
    cuda), ONNX Runtime provider, CPU threads, FP16 autocast for checkpoints;
    select: checkpoint head and bundle precision/format filters; accuracy /
    data: score accuracy on the recorded dataset / on `data.root`; reference:
    the results accuracy deltas and Δm are measured against
    (`edgemtl.evaluation.reference.resolve_reference`; None: each INT8/FP16
    artifact against the FP32 ONNX of its bundle); idle_s: idle power window.
    """

    batches: Sequence[int] = (1,)
    timing: TimingConfig = field(default_factory=TimingConfig)
    rounds: int = 5
    runner: RunnerOptions = field(default_factory=RunnerOptions)
    select: ArtifactChoice = field(default_factory=ArtifactChoice)
    accuracy: bool = False
    data: DataSource = field(default_factory=DataSource)
    reference: Sequence[str] | None = None
    power: bool = True
    idle_s: float = 2.0
    seed: int = 0
    output: OutputFiles = field(default_factory=OutputFiles)
    quiet: bool = False
    #: Name the most accurate artifact whose p50 latency is at most this (ms); see `pareto`.
    budget_ms: float | None = None
    #: Per-frame stages (`frame`): on by default, on a frame of `frame_size` (None: the
    #: model's input size).
    frame_pipeline: bool = True
    frame_size: tuple[int, int] | None = None
    #: Export what is missing and profile every format and precision (`all_formats`).
    all_formats: bool = False

    def __post_init__(self) -> None:
        parse_batches(self.batches)
        at_least_one(self.rounds, "--rounds")
        non_negative(self.idle_s, "--idle", " of seconds")
        if self.budget_ms is not None:
            positive(self.budget_ms, "--budget-ms", " of ms")
        if self.budget_ms is not None and not self.scores:
            raise UserError(
                "--budget-ms needs accuracy to compare artifacts: add --accuracy (or --data ROOT)"
            )

    @property
    def scores(self) -> bool:
        """Whether accuracy is measured (`--accuracy` or `--data`)."""
        return self.accuracy or self.data.root is not None


def parse_batches(text: str | Sequence[int]) -> list[int]:
    """ "1,4,8" -> [1, 4, 8]; every value a positive integer."""
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        values = [int(str(v).strip()) for v in items if str(v).strip()]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise UserError(
            f"--batch {excerpt(text)}: expected a comma-separated list of positive integers"
        )
    return sorted(set(values))


def _artifact_facts(ref: ModelRef, runner: Runner) -> dict[str, Any]:
    from edgemtl.deploy.profile.graph import graph_cost

    facts: dict[str, Any] = {
        "label": ref.label,
        "path": str(ref.path),
        "format": ref.format,
        "precision": ref.precision,
        "head": ref.head,
        "runner": runner.name,
        "input": list(ref.input_hw),
        "size_bytes": ref.path.stat().st_size if ref.path.is_file() else None,
        "params": None,
        "flops": None,
        "notes": list(ref.notes),
        "device_facts": runner.device_facts(),
    }
    onnx_path = ref.path if ref.format == "onnx" else None
    if (
        ref.format == "trt"
        and ref.bundle is not None
        and ref.artifact is not None
        and ref.artifact.built_from
    ):
        candidate = artifact_path(ref.bundle, ref.artifact.built_from)
        onnx_path = candidate if candidate.is_file() else None
    if onnx_path is not None:
        facts.update(graph_cost(onnx_path))
    elif ref.format == "torch":
        facts["params"] = runner.params()  # type: ignore[attr-defined]
    return facts


def unique_labels(labels: Sequence[str], sources: Sequence[str]) -> list[str]:
    """Row labels (`head precision format`), made unique by the bundle or folder each comes from
    when two artifacts share one (e.g. the Student of two runs): `student fp32 onnx (run-a)`.
    `sources[i]` names where `labels[i]` comes from; still-equal labels get `#1`, `#2`, ..."""
    out = [
        f"{label} ({source})" if labels.count(label) > 1 else label
        for label, source in zip(labels, sources)
    ]
    seen: dict[str, int] = {}
    numbered = []
    for label in out:
        seen[label] = seen.get(label, 0) + 1
        numbered.append(f"{label} #{seen[label]}" if out.count(label) > 1 else label)
    return numbered


def run_profile(
    paths: Sequence[str | Path], options: ProfileOptions, console: Any = None
) -> dict[str, Any]:
    """Profile every artifact `paths` name; return the full result (the `--json` document)."""
    from rich.console import Console

    from edgemtl.deploy.profile.env import environment

    console = console or Console(stderr=True, quiet=True)
    if not paths:
        raise UserError("profile: give at least one artifact (.onnx, .trt, bundle folder or .pt)")
    refs: list[ModelRef] = []
    select = options.select
    if options.all_formats:
        from edgemtl.deploy.profile.all_formats import expand

        paths = expand(paths, select.head, console)
    for p in paths:
        refs.extend(
            resolve_artifacts(
                p,
                head=select.head,
                formats=select.formats,
                precisions=select.precisions,
                fp16=options.runner.fp16,
            )
        )
    if (
        options.budget_ms is not None
        and not options.reference
        and not any(ref.head == TEACHER and ref.precision == "fp32" for ref in refs)
    ):
        raise UserError(
            "--budget-ms needs a Δm reference: profile the Teacher's FP32 artifact "
            "along with the others, or pass --reference RUN_OR_JSON"
        )
    runners: list[Runner] = []
    try:
        for ref in refs:
            runner = open_runner(ref, options.runner)
            runner.load()
            runners.append(runner)
        artifacts = [_artifact_facts(ref, r) for ref, r in zip(refs, runners)]
        for facts, label in zip(
            artifacts,
            unique_labels(
                [r.label for r in refs],
                [(r.bundle if r.bundle is not None else r.path.parent).name for r in refs],
            ),
        ):
            facts["label"] = label
        warnings: list[str] = [n for a in artifacts for n in a["notes"]]
        reference = None
        if options.scores:
            from edgemtl.deploy.profile.accuracy import score_artifacts

            reference = score_artifacts(
                refs, runners, artifacts, options.data, options.reference, console
            )
        time_rows(
            refs,
            runners,
            artifacts,
            batches=options.batches,
            timing=options.timing,
            rounds=options.rounds,
            seed=options.seed,
            power=options.power,
            device=options.runner.device,
            idle_s=options.idle_s,
            console=console,
            warnings=warnings,
        )
        flag_slower(artifacts, warnings)
        if options.frame_pipeline:
            from edgemtl.deploy.profile.frame import add_frame_pipeline

            add_frame_pipeline(refs, runners, artifacts, options, console)
    finally:
        for r in runners:
            r.close()
    result = {
        "schema_version": PROFILE_SCHEMA_VERSION,
        "kind": "edgemtl-profile",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "environment": environment(),
        "conditions": {
            "device": options.runner.device,
            "batches": list(options.batches),
            "warmup_iterations": options.timing.warmup_iterations,
            "warmup_s": options.timing.warmup_s,
            "iterations": None if options.timing.duration_s else options.timing.iterations,
            "duration_s": options.timing.duration_s,
            "interleaved_rounds": options.rounds,
            "threads": options.runner.threads,
            "thread_choice": run_choice().to_dict(),
            "input": "random normal, already preprocessed (N x 3 x H x W float32)",
            "latency": "compute only (CUDA events) where the runner has them, else host wall time; "
            "end_to_end is host wall time incl. host<->device copies, excl. image "
            "pre/post-processing (those are in each artifact's frame_pipeline)",
            "frame_pipeline": FRAME_PIPELINE if options.frame_pipeline else None,
            "split": options.data.split if options.scores else None,
            "limit": options.data.limit,
            "reference": list(options.reference) if options.reference else None,
        },
        "reference": None
        if reference is None
        else {"label": reference.label, "metrics": reference.metrics},
        "artifacts": artifacts,
        "warnings": warnings,
    }
    result["pareto"] = pareto.analyse(result, options.budget_ms)
    return result


def profile_command(artifacts: Sequence[Path], options: ProfileOptions) -> dict[str, Any]:
    """The CLI entry: profile, then print the table and write the requested files."""
    from rich.console import Console

    from edgemtl.deploy import report
    from edgemtl.deploy.report_terminal import print_table

    err = Console(stderr=True, quiet=options.quiet)
    output = options.output
    # The files read: each path given, and a bundle's manifest, models and timing cache.
    inputs = [Path(a) for a in artifacts]
    inputs += [f for p in inputs if p.is_dir() for f in p.iterdir() if f.suffix in BUNDLE_FILES]
    for flag, path in (("--json", output.json), ("--markdown", output.markdown)):
        if path and path != "-":
            check_not_an_input(path, flag, inputs)
    if output.plot:
        check_not_an_input(output.plot, "--plot", inputs)
    result = run_profile(artifacts, options, console=err)
    if output.json_to_stdout:
        print(json.dumps(result, indent=2))
    else:
        print_table(result, Console(quiet=options.quiet))
        if output.json:
            report.write_json(result, output.json)
    if output.markdown:
        report.write_markdown(result, output.markdown)
    if output.plot:
        from edgemtl.deploy.plot import write_plot

        write_plot(result, output.plot)
    for line in result["warnings"]:
        err.print(f"[yellow]warning:[/] {line}")
    block = result.get("pareto")
    if block is not None and block["budget_ms"] is not None:
        message = pareto.budget_message(block)
        if block["pick"] is None:
            raise UserError(message)
        Console(quiet=options.quiet or output.json_to_stdout).print(message)
    return result


def parse_formats(text: str | None) -> list[str] | None:
    """`--format onnx,trt` -> ["onnx", "trt"]; None for all."""
    return parse_list(text, "--format", FORMATS)


def parse_precisions(text: str | None) -> list[str] | None:
    """`--precision fp32,int8` -> ["fp32", "int8"]; None for all."""
    return parse_list(text, "--precision", PRECISIONS)
