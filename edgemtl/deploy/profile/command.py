"""`edgemtl profile`: latency, accuracy and power of artifacts on this machine.

Flow: resolve paths to artifacts -> load one runner each -> (optional)
accuracy over a split through the shared scoring loop -> idle power window ->
timed loops for every batch size, all artifacts interleaved under the same
conditions with a power sampler running -> one result dict (the `--json`
document) -> terminal table / Markdown / plot (`edgemtl.deploy.report`).
Torch-free unless a checkpoint is profiled.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.core.options import ArtifactChoice, DataSource, OutputFiles, parse_list
from edgemtl.deploy.profile.stats import latency_stats
from edgemtl.deploy.profile.timing import TimingConfig, time_interleaved
from edgemtl.deploy.runtime.base import ModelRef, Runner, RunnerOptions
from edgemtl.deploy.runtime.resolve import open_runner, resolve_artifacts

if TYPE_CHECKING:
    from edgemtl.evaluation.reference import ResolvedReference

PROFILE_SCHEMA_VERSION = 1


FORMATS = ("onnx", "trt")
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

    def __post_init__(self) -> None:
        if self.runner.device not in ("cpu", "cuda"):
            raise UserError(f"--device {self.runner.device!r}: expected cpu or cuda")
        parse_batches(self.batches)

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
        raise UserError(
            f"--batch {text!r}: expected a comma-separated list of positive integers"
        ) from None
    if not values or any(v < 1 for v in values):
        raise UserError(f"--batch {text!r}: expected a comma-separated list of positive integers")
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
        candidate = ref.bundle / ref.artifact.built_from
        onnx_path = candidate if candidate.is_file() else None
    if onnx_path is not None:
        facts.update(graph_cost(onnx_path))
    elif ref.format == "torch":
        facts["params"] = runner.params()  # type: ignore[attr-defined]
    return facts


def _input_batch(ref: ModelRef, batch: int, seed: int) -> np.ndarray:
    h, w = ref.input_hw
    return np.random.default_rng(seed).standard_normal((batch, 3, h, w), dtype=np.float32)


def _power_row(
    sampler: Any, windows: list[tuple[int, int]], idle: list[float], latency_ms: float, batch: int
) -> dict[str, Any]:
    from edgemtl.deploy.profile.power import summarize

    watts = [w for start, end in windows for w in sampler.between(start, end)]
    summary = summarize(watts, idle, latency_ms, batch, sampler.source)
    summary.extra = dict(sampler.facts)
    return summary.to_dict()


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
    runners: list[Runner] = []
    try:
        for ref in refs:
            runner = open_runner(ref, options.runner)
            runner.load()
            runners.append(runner)
        artifacts = [_artifact_facts(ref, r) for ref, r in zip(refs, runners)]
        warnings: list[str] = [n for a in artifacts for n in a["notes"]]
        if options.scores:
            _accuracy(refs, runners, artifacts, options, console)
        _timing(refs, runners, artifacts, options, console, warnings)
    finally:
        for r in runners:
            r.close()
    return {
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
            "input": "random normal, already preprocessed (N x 3 x H x W float32)",
            "latency": "compute only (CUDA events) where the runner has them, else host wall time; "
            "end_to_end is host wall time incl. host<->device copies, excl. image "
            "pre/post-processing",
            "split": options.data.split if options.scores else None,
            "limit": options.data.limit,
            "reference": list(options.reference) if options.reference else None,
        },
        "artifacts": artifacts,
        "warnings": warnings,
    }


def _accuracy(
    refs: list[ModelRef],
    runners: list[Runner],
    artifacts: list[dict[str, Any]],
    options: ProfileOptions,
    console: Any,
) -> None:
    from edgemtl.core.progress import bar
    from edgemtl.deploy.profile.accuracy import deltas, open_reader, score_runner

    data = options.data
    readers: dict[str, Any] = {}
    for ref, runner, facts in zip(refs, runners, artifacts):
        key = json.dumps(
            [ref.manifest.dataset, list(ref.input_hw), [t.key for t in ref.tasks]], sort_keys=True
        )
        if key not in readers:
            readers[key] = open_reader(ref, data.root, data.split)
        reader = readers[key]
        total = len(reader) if data.limit is None else min(data.limit, len(reader))
        with bar(console, f"accuracy {ref.label}", total) as advance:
            facts["heads"] = {ref.head: score_runner(runner, reader, data.limit, progress=advance)}
        facts["samples"] = total
    # Deltas: against --reference, else the fp32 artifact of the same head and source.
    if options.reference:
        explicit = _explicit_reference(options.reference, refs, artifacts)
        for ref, facts in zip(refs, artifacts):
            facts["reference"] = explicit.label
            facts["deltas"] = deltas(facts["heads"][ref.head], explicit.metrics)
        return
    for ref, facts in zip(refs, artifacts):
        mine = facts["heads"][ref.head]
        for other_ref, other in zip(refs, artifacts):
            if (
                other is not facts
                and other_ref.head == ref.head
                and other_ref.precision == "fp32"
                and ref.precision != "fp32"
                and other_ref.bundle == ref.bundle
            ):
                facts["reference"] = other["label"]
                facts["deltas"] = deltas(mine, other["heads"][other_ref.head])
                break


def _explicit_reference(
    sources: Sequence[str], refs: list[ModelRef], artifacts: list[dict[str, Any]]
) -> ResolvedReference:
    """`--reference` resolved with this run's scored artifacts as measured candidates.

    A bundle folder names its FP32 ONNX (else its first artifact) as profiled here.
    """
    from edgemtl.evaluation.reference import Measured, resolve_reference

    main: dict[Path, int] = {}
    for i, ref in enumerate(refs):
        if ref.bundle is not None:
            folder = ref.bundle.resolve()
            if folder not in main or (ref.format == "onnx" and ref.precision == "fp32"):
                main[folder] = i
    measured = []
    for i, (ref, facts) in enumerate(zip(refs, artifacts)):
        paths = [ref.path.resolve()] + [folder for folder, j in main.items() if j == i]
        measured.append(Measured(facts["label"], tuple(paths), facts["heads"][ref.head]))
    return resolve_reference(sources, measured)


def _timing(
    refs: list[ModelRef],
    runners: list[Runner],
    artifacts: list[dict[str, Any]],
    options: ProfileOptions,
    console: Any,
    warnings: list[str],
) -> None:
    from edgemtl.core.progress import bar
    from edgemtl.deploy.profile.power import open_sampler

    sampler, reason = (
        open_sampler(options.runner.device) if options.power else (None, "disabled (--no-power)")
    )
    idle: list[float] = []
    if sampler is not None:
        sampler.start()
        t0 = time.perf_counter_ns()
        time.sleep(options.idle_s)
        idle = sampler.between(t0, time.perf_counter_ns())
    try:
        for facts in artifacts:
            facts["rows"] = []
        for batch in options.batches:
            jobs, owners = [], []
            for i, (ref, runner) in enumerate(zip(refs, runners)):
                why = runner.check_batch(batch)
                if why is not None:
                    artifacts[i]["rows"].append({"batch": batch, "skipped": why})
                    continue
                jobs.append((runner, _input_batch(ref, batch, options.seed)))
                owners.append(i)
            if not jobs:
                continue
            cfg = options.timing
            total = (cfg.iterations * len(jobs)) if cfg.duration_s is None else 0
            with bar(console, f"timing batch {batch}", total) as advance:
                tick = (lambda n, a=advance, t=total: a(n, t)) if total else None
                results = time_interleaved(jobs, cfg, rounds=options.rounds, on_iteration=tick)
            for i, res in zip(owners, results):
                wall = latency_stats(res.wall_ns, batch)
                compute = latency_stats(res.compute_ns, batch) if res.compute_ns else None
                row: dict[str, Any] = {
                    "batch": batch,
                    "latency": (compute or wall).to_dict(),
                    "latency_kind": "compute (CUDA events)" if compute else "host wall time",
                    "end_to_end": wall.to_dict(),
                    "compute": compute.to_dict() if compute else None,
                    "warmup_iterations": res.warmup_iterations,
                    "times_ns": {"wall": res.wall_ns, "compute": res.compute_ns},
                }
                if (compute or wall).noisy:
                    warnings.append(
                        f"{artifacts[i]['label']} batch {batch}: CV "
                        f"{(compute or wall).cv_percent:.1f} % "
                        "> 5 %: noisy timings (other load? raise --warmup / --iterations)"
                    )
                if sampler is not None:
                    row["power"] = _power_row(sampler, res.windows, idle, wall.mean_ms, batch)
                else:
                    row["power"] = {"measured": False, "reason": reason}
                artifacts[i]["rows"].append(row)
    finally:
        if sampler is not None:
            sampler.stop()


def profile_command(artifacts: Sequence[Path], options: ProfileOptions) -> dict[str, Any]:
    """The CLI entry: profile, then print the table and write the requested files."""
    from rich.console import Console

    from edgemtl.deploy import report

    err = Console(stderr=True, quiet=options.quiet)
    result = run_profile(artifacts, options, console=err)
    output = options.output
    if output.json_to_stdout:
        print(json.dumps(result, indent=2))
    else:
        report.print_table(result, Console(quiet=options.quiet))
        if output.json:
            report.write_json(result, output.json)
    if output.markdown:
        report.write_markdown(result, output.markdown)
    if output.plot:
        report.write_plot(result, output.plot)
    for line in result["warnings"]:
        err.print(f"[yellow]warning:[/] {line}")
    return result


def parse_formats(text: str | None) -> list[str] | None:
    """`--format onnx,trt` -> ["onnx", "trt"]; None for all."""
    return parse_list(text, "--format", FORMATS)


def parse_precisions(text: str | None) -> list[str] | None:
    """`--precision fp32,int8` -> ["fp32", "int8"]; None for all."""
    return parse_list(text, "--precision", PRECISIONS)
