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
from typing import Any

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.deploy.profile.stats import latency_stats
from edgemtl.deploy.profile.timing import TimingConfig, time_interleaved
from edgemtl.deploy.runtime.base import ModelRef, Runner, RunnerOptions
from edgemtl.deploy.runtime.resolve import open_runner, resolve_artifacts

PROFILE_SCHEMA_VERSION = 1


@dataclass
class ProfileOptions:
    """Everything `profile_command` takes besides the paths (plain values; the CLI maps flags)."""

    batches: Sequence[int] = (1,)
    timing: TimingConfig = field(default_factory=TimingConfig)
    rounds: int = 5
    device: str = "cpu"
    provider: str | None = None
    threads: int | None = None
    fp16: bool = False
    head: str | None = None
    formats: Sequence[str] | None = None
    precisions: Sequence[str] | None = None
    accuracy: bool = False
    data: str | None = None
    split: str = "val"
    limit: int | None = None
    reference: str | None = None
    power: bool = True
    idle_s: float = 2.0
    seed: int = 0


def parse_batches(text: str | Sequence[int]) -> list[int]:
    """"1,4,8" -> [1, 4, 8]; every value a positive integer."""
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        values = [int(str(v).strip()) for v in items if str(v).strip()]
    except ValueError:
        raise UserError(f"--batch {text!r}: expected a comma-separated list of positive integers") from None
    if not values or any(v < 1 for v in values):
        raise UserError(f"--batch {text!r}: expected a comma-separated list of positive integers")
    return sorted(set(values))


def _artifact_facts(ref: ModelRef, runner: Runner) -> dict[str, Any]:
    from edgemtl.deploy.profile.graph import graph_cost

    facts: dict[str, Any] = {
        "label": ref.label, "path": str(ref.path), "format": ref.format, "precision": ref.precision,
        "head": ref.head, "runner": runner.name, "input": list(ref.input_hw),
        "size_bytes": ref.path.stat().st_size if ref.path.is_file() else None,
        "params": None, "flops": None, "notes": list(ref.notes),
        "device_facts": runner.device_facts(),
    }
    onnx_path = ref.path if ref.format == "onnx" else None
    if ref.format == "trt" and ref.bundle is not None and ref.artifact is not None and ref.artifact.built_from:
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


def _power_row(sampler: Any, windows: list[tuple[int, int]], idle: list[float], latency_ms: float,
               batch: int) -> dict[str, Any]:
    from edgemtl.deploy.profile.power import summarize

    watts = [w for start, end in windows for w in sampler.between(start, end)]
    summary = summarize(watts, idle, latency_ms, batch, sampler.source)
    summary.extra = dict(sampler.facts)
    return summary.to_dict()


def run_profile(paths: Sequence[str | Path], options: ProfileOptions, console: Any = None) -> dict[str, Any]:
    """Profile every artifact `paths` name; return the full result (the `--json` document)."""
    from rich.console import Console

    from edgemtl.deploy.profile.env import environment

    console = console or Console(stderr=True, quiet=True)
    if not paths:
        raise UserError("profile: give at least one artifact (.onnx, .trt, bundle folder or .pt)")
    refs: list[ModelRef] = []
    for p in paths:
        refs.extend(resolve_artifacts(p, head=options.head, formats=options.formats,
                                      precisions=options.precisions, fp16=options.fp16))
    run_opts = RunnerOptions(device=options.device, provider=options.provider, threads=options.threads,
                             fp16=options.fp16)
    runners: list[Runner] = []
    try:
        for ref in refs:
            runner = open_runner(ref, run_opts)
            runner.load()
            runners.append(runner)
        artifacts = [_artifact_facts(ref, r) for ref, r in zip(refs, runners)]
        warnings: list[str] = [n for a in artifacts for n in a["notes"]]
        if options.accuracy or options.data:
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
            "device": options.device, "batches": list(options.batches),
            "warmup_iterations": options.timing.warmup_iterations, "warmup_s": options.timing.warmup_s,
            "iterations": None if options.timing.duration_s else options.timing.iterations,
            "duration_s": options.timing.duration_s, "interleaved_rounds": options.rounds,
            "threads": options.threads, "input": "random normal, already preprocessed (N x 3 x H x W float32)",
            "latency": "compute only (CUDA events) where the runner has them, else host wall time; "
                       "end_to_end is host wall time incl. host<->device copies, excl. image pre/post-processing",
            "split": options.split if (options.accuracy or options.data) else None, "limit": options.limit,
        },
        "artifacts": artifacts,
        "warnings": warnings,
    }


def _accuracy(refs: list[ModelRef], runners: list[Runner], artifacts: list[dict[str, Any]],
              options: ProfileOptions, console: Any) -> None:
    from edgemtl.deploy.profile.accuracy import deltas, open_reader, score_runner
    from edgemtl.core.progress import bar

    readers: dict[str, Any] = {}
    for ref, runner, facts in zip(refs, runners, artifacts):
        key = json.dumps([ref.manifest.dataset, list(ref.input_hw), [t.key for t in ref.tasks]], sort_keys=True)
        if key not in readers:
            readers[key] = open_reader(ref, options.data, options.split)
        reader = readers[key]
        total = len(reader) if options.limit is None else min(options.limit, len(reader))
        with bar(console, f"accuracy {ref.label}", total) as advance:
            facts["heads"] = {ref.head: score_runner(runner, reader, options.limit, progress=advance)}
        facts["samples"] = total
    # Deltas: against --reference, else the fp32 artifact of the same head and source.
    explicit: dict[str, Any] | None = None
    explicit_label = None
    if options.reference:
        explicit, explicit_label = _reference_scores(options, refs, runners, artifacts, readers)
    for ref, facts in zip(refs, artifacts):
        mine = facts["heads"][ref.head]
        if explicit is not None:
            facts["reference"] = explicit_label
            facts["deltas"] = deltas(mine, explicit)
            continue
        for other_ref, other in zip(refs, artifacts):
            if (other is not facts and other_ref.head == ref.head and other_ref.precision == "fp32"
                    and ref.precision != "fp32" and other_ref.bundle == ref.bundle):
                facts["reference"] = other["label"]
                facts["deltas"] = deltas(mine, other["heads"][other_ref.head])
                break


def _reference_scores(options: ProfileOptions, refs: list[ModelRef], runners: list[Runner],
                      artifacts: list[dict[str, Any]], readers: dict[str, Any]) -> tuple[dict[str, Any], str]:
    from edgemtl.deploy.profile.accuracy import open_reader, score_runner

    assert options.reference is not None
    target = Path(options.reference).resolve()
    for ref, facts in zip(refs, artifacts):
        if ref.path.resolve() == target:
            return facts["heads"][ref.head], facts["label"]
    candidates = resolve_artifacts(options.reference, head=options.head, fp16=False)
    ref = next((r for r in candidates if r.precision == "fp32" and r.format == "onnx"), candidates[0])
    runner = open_runner(ref, RunnerOptions(device=options.device, provider=options.provider,
                                            threads=options.threads))
    with runner:
        reader = open_reader(ref, options.data, options.split)
        return score_runner(runner, reader, options.limit), f"{ref.label} ({ref.path.name})"


def _timing(refs: list[ModelRef], runners: list[Runner], artifacts: list[dict[str, Any]],
            options: ProfileOptions, console: Any, warnings: list[str]) -> None:
    from edgemtl.deploy.profile.power import open_sampler
    from edgemtl.core.progress import bar

    sampler, reason = open_sampler(options.device) if options.power else (None, "disabled (--no-power)")
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
                    warnings.append(f"{artifacts[i]['label']} batch {batch}: CV {(compute or wall).cv_percent:.1f} % "
                                    "> 5 %: noisy timings (other load? raise --warmup / --iterations)")
                if sampler is not None:
                    row["power"] = _power_row(sampler, res.windows, idle, wall.mean_ms, batch)
                else:
                    row["power"] = {"measured": False, "reason": reason}
                artifacts[i]["rows"].append(row)
    finally:
        if sampler is not None:
            sampler.stop()


def profile_command(
    artifacts: Sequence[Path],
    batch: str = "1",
    iterations: int = 50,
    duration: float | None = None,
    warmup: int = 5,
    warmup_s: float = 0.5,
    rounds: int = 5,
    device: str = "cpu",
    provider: str | None = None,
    threads: int | None = None,
    fp16: bool = False,
    head: str | None = None,
    precision: str | None = None,
    format: str | None = None,
    accuracy: bool = False,
    data: str | None = None,
    split: str = "val",
    limit: int | None = None,
    reference: str | None = None,
    power: bool = True,
    idle: float = 2.0,
    json_path: str | None = None,
    markdown: str | None = None,
    plot: str | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """The CLI entry: profile, then print the table and write the requested files."""
    from rich.console import Console

    from edgemtl.deploy import report

    if device not in ("cpu", "cuda"):
        raise UserError(f"--device {device!r}: expected cpu or cuda")
    options = ProfileOptions(
        batches=parse_batches(batch),
        timing=TimingConfig(warmup_iterations=warmup, warmup_s=warmup_s, iterations=iterations, duration_s=duration),
        rounds=rounds, device=device, provider=provider, threads=threads, fp16=fp16, head=head,
        formats=_csv(format, ("onnx", "trt"), "--format"), precisions=_csv(precision, ("fp32", "fp16", "int8"), "--precision"),
        accuracy=accuracy, data=data, split=split, limit=limit, reference=reference, power=power, idle_s=idle,
    )
    err = Console(stderr=True, quiet=quiet)
    result = run_profile(artifacts, options, console=err)
    if json_path == "-":
        print(json.dumps(result, indent=2))
    else:
        report.print_table(result, Console(quiet=quiet))
        if json_path:
            report.write_json(result, json_path)
    if markdown:
        report.write_markdown(result, markdown)
    if plot:
        report.write_plot(result, plot)
    for line in result["warnings"]:
        err.print(f"[yellow]warning:[/] {line}")
    return result


def _csv(text: str | None, allowed: tuple[str, ...], flag: str) -> list[str] | None:
    if not text:
        return None
    values = [v.strip().lower() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad:
        raise UserError(f"{flag} {text!r}: expected some of {', '.join(allowed)}")
    return values
