"""Checkpoint files: save, load (weights_only) into the typed schema, rebuild the model.

A checkpoint holds plain containers only (docs/formats.md "Checkpoint"), so it
loads with `torch.load(weights_only=True)`: no pickled code runs on load. Every
reader goes through `load_checkpoint`, which validates the file with
`edgemtl.core.checkpoint_schema` and returns a `Checkpoint`; a bad file is one
`UserError` line naming it and the field.

Non-finite weights are refused both ways: `save_checkpoint` never writes a file
holding a NaN/Inf tensor (so a diverged run cannot leave a "last good" checkpoint
that is not), and `load_checkpoint` refuses one written by anything else, so
`eval`, `export`, `profile` and `--resume` never report numbers of NaN weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from edgemtl import __version__
from edgemtl.core.checkpoint_schema import FORMAT, SCHEMA_VERSION, Checkpoint, checkpoint_from_dict
from edgemtl.core.errors import UserError
from edgemtl.core.heads import exit_name, trained_of
from edgemtl.core.io import atomic_file
from edgemtl.data.preprocess import InputSpec
from edgemtl.training.models.network import MultiTaskNet
from edgemtl.training.models.students import StudentShape


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Atomically write a checkpoint (a crash mid-write keeps the previous file).

    `payload` holds the fields of docs/formats.md "Checkpoint" (format, schema and
    package version are added). It is validated first, so a file written here
    always loads: a writer bug raises `UserError` naming the field instead.
    """
    payload = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "edgemtl_version": __version__,
        **payload,
    }
    checkpoint_from_dict(payload, f"{path} (being written)")
    bad = first_non_finite(payload, ("model", "extra", "optimizer", "balancer", "amp_scaler"))
    if bad is not None:
        raise UserError(
            f"checkpoint {path}: not written: {bad} holds NaN/Inf values (the run diverged)"
        )
    with atomic_file(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate a checkpoint; tensors stay on the CPU.

    Raises `UserError` (one line naming the file) when the file is missing, is not
    a readable torch file, is not an edgemtl checkpoint, is of a newer schema, or
    has a missing or malformed field.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path}: no such file")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UserError(
            f"checkpoint {path}: not a readable edgemtl checkpoint ({reason[:120]})"
        ) from None
    ckpt = checkpoint_from_dict(raw, str(path))
    bad = first_non_finite({"model": ckpt.model, "extra": ckpt.extra}, ("model", "extra"))
    if bad is not None:
        raise UserError(
            f"checkpoint {path}: field {bad}: NaN/Inf weights (the run diverged); "
            "use an earlier checkpoint"
        )
    return ckpt


def _tensors(tree: Any, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
    """(dotted name, tensor) of every tensor in nested dicts / lists / tuples."""
    if isinstance(tree, torch.Tensor):
        yield prefix, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from _tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from _tensors(value, f"{prefix}.{i}")


def first_non_finite(payload: dict[str, Any], fields: tuple[str, ...]) -> str | None:
    """Dotted name of the first floating-point tensor under `fields` of `payload` holding
    NaN or +-Inf (e.g. "model.encoder.stages.0.0.conv.weight"), or None when all are finite.

    Integer and bool tensors (RNG state, step counters) are skipped.
    """
    for name in fields:
        for where, tensor in _tensors(payload.get(name), name):
            if tensor.is_floating_point() or tensor.is_complex():
                if not bool(torch.isfinite(tensor).all()):
                    return where
    return None


def input_spec(ckpt: Checkpoint) -> InputSpec:
    """The preprocessing the checkpoint's network was trained with."""
    record = ckpt.input
    return InputSpec(record.height, record.width, record.mean, record.std)


def model_from_checkpoint(ckpt: Checkpoint) -> MultiTaskNet:
    """Rebuild the network in eval mode with the checkpoint's weights.

    Raises `UserError` when the weights do not fit the network its recipe and
    tasks describe.
    """
    model_cfg = ckpt.recipe.model
    trained = trained_of(ckpt.heads)
    exits = [k for k in model_cfg.exits if exit_name(k) in trained]
    net = MultiTaskNet(
        ckpt.task_specs(),
        model_cfg.width,
        model_cfg.upsampling,
        model_cfg.decoder,
        heads=trained,
        student=StudentShape.of(model_cfg.student),
        exits=exits,
    )
    try:
        net.load_state_dict(ckpt.model)
    except (RuntimeError, TypeError, AttributeError) as exc:  # shapes, keys, or non-tensor values
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UserError(
            f"checkpoint {ckpt.path}: weights do not match its recipe ({first[:120]})"
        ) from None
    return net.eval()


def latest_best(runs_dir: str | Path = "runs") -> Path:
    """The newest `runs/*/best.pt`, for commands whose checkpoint argument is optional."""
    candidates = sorted(Path(runs_dir).glob("*/best.pt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise UserError(
            f"no checkpoint given and none found under {runs_dir}/*/best.pt (train one first)"
        )
    return candidates[-1]
