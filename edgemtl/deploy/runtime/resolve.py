"""From a path on the command line to the artifacts it names and a runner for each.

Rules: `.onnx` (its bundle's manifest if it sits in one, else its own
metadata_props), `.trt`/`.engine`/`.plan` (needs the manifest beside it: an
engine carries no metadata), a bundle folder (its manifest's artifacts),
`.pt`/`.pth` checkpoint (PyTorch, loaded lazily). Anything else is refused.
Which runner runs a format, and which suffixes describe themselves (checkpoints),
is the runner registry's (`registry.py`): this module imports no runner.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgemtl.core.errors import UserError
from edgemtl.core.manifest import (
    MANIFEST_NAME,
    Manifest,
    check_onnx_artifact,
    load_manifest,
    manifest_from_metadata,
    verify_artifact,
)
from edgemtl.deploy.runtime.base import ENGINE_SUFFIXES, ModelRef, Runner, RunnerOptions
from edgemtl.deploy.runtime.registry import ref_builder, runner_class

_KINDS = (
    "an ONNX model (.onnx), a TensorRT engine (.trt/.engine/.plan), an export bundle folder "
    "or a checkpoint (.pt)"
)


def resolve_artifacts(
    path: str | Path,
    head: str | None = None,
    formats: Sequence[str] | None = None,
    precisions: Sequence[str] | None = None,
    fp16: bool = False,
) -> list[ModelRef]:
    """The artifacts `path` names, filtered by `formats` / `precisions` for bundle folders.

    `head` selects a checkpoint's head (ignored for exported artifacts, which
    have exactly one). Engines in a bundle are kept only where TensorRT runs;
    a skipped engine is noted on the first returned ref.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder (expected {_KINDS})")
    if path.is_dir():
        return _from_bundle(path, formats, precisions)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return [_single(path, "onnx")]
    if suffix in ENGINE_SUFFIXES:
        return [_single(path, "trt")]
    build = ref_builder(suffix)
    if build is not None:  # a self-describing file, e.g. a checkpoint
        return [build(path, head, fp16)]
    raise UserError(f"{path}: not a model file: expected {_KINDS}")


def _single(path: Path, fmt: str) -> ModelRef:
    bundle = path.parent
    if (bundle / MANIFEST_NAME).is_file():
        manifest = load_manifest(bundle)
        for art in manifest.artifacts:
            if art.file == path.name:
                verify_artifact(bundle, art)
                if art.format != fmt:
                    raise UserError(f"{path}: the manifest lists it as {art.format}, not {fmt}")
                if fmt == "onnx":
                    check_onnx_artifact(str(bundle / MANIFEST_NAME), manifest, art, path)
                return ModelRef(
                    path=path,
                    format=fmt,
                    manifest=manifest,
                    artifact=art,
                    bundle=bundle,
                    precision=art.precision,
                )
        if fmt == "trt":
            raise UserError(
                f"{path}: not listed in {bundle / MANIFEST_NAME}: an engine needs its manifest "
                "(TensorRT version, GPU, input normalisation)"
            )
    if fmt == "trt":
        raise UserError(
            f"{path}: no {MANIFEST_NAME} beside this engine: an engine carries no metadata, "
            "profile it inside its export bundle folder"
        )
    manifest = manifest_from_metadata(path)
    art = manifest.artifacts[0]
    check_onnx_artifact(f"{path} (metadata_props)", manifest, art, path)
    return ModelRef(
        path=path, format="onnx", manifest=manifest, artifact=art, precision=art.precision
    )


def _from_bundle(
    bundle: Path, formats: Sequence[str] | None, precisions: Sequence[str] | None
) -> list[ModelRef]:
    from edgemtl.deploy.runtime.trt_env import tensorrt_status

    manifest: Manifest = load_manifest(bundle)
    refs: list[ModelRef] = []
    skipped: list[str] = []
    trt_ok, trt_reason = (None, "")
    for art in manifest.artifacts:
        if formats and art.format not in formats:
            continue
        if precisions and art.precision not in precisions:
            continue
        if art.format == "trt" and not formats:
            if trt_ok is None:
                trt_ok, trt_reason = tensorrt_status()
            if not trt_ok:
                skipped.append(f"{art.file} skipped: {trt_reason}")
                continue
        path = verify_artifact(bundle, art)
        if art.format == "onnx":
            check_onnx_artifact(str(bundle / MANIFEST_NAME), manifest, art, path)
        refs.append(
            ModelRef(
                path=path,
                format=art.format,
                manifest=manifest,
                artifact=art,
                bundle=bundle,
                precision=art.precision,
            )
        )
    if not refs:
        what = ", ".join(f"{a.file}" for a in manifest.artifacts) or "none"
        extra = f" ({'; '.join(skipped)})" if skipped else ""
        raise UserError(
            f"{bundle}: no artifact matches the requested format/precision "
            f"(bundle has: {what}){extra}"
        )
    refs[0].notes.extend(skipped)
    return refs


def open_runner(ref: ModelRef, options: RunnerOptions) -> Runner:
    """The registered runner for the artifact's format (not yet loaded); UserError if none."""
    try:
        cls = runner_class(ref.format)
    except UserError as exc:
        raise UserError(f"{ref.path}: {exc}") from None
    return cls(ref, options)
