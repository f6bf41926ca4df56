"""Self-describing checkpoints: save, load (weights_only), validate, rebuild the model.

A checkpoint holds plain containers only (INTERFACES.md "Checkpoint"), so it
loads with `torch.load(weights_only=True)`: no pickled code runs on load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from edgemtl import __version__
from edgemtl.core.errors import UserError
from edgemtl.core.heads import trained_of
from edgemtl.core.io import atomic_file
from edgemtl.training.models.network import MultiTaskNet
from edgemtl.core.tasks import TaskSpec

FORMAT = "edgemtl-checkpoint"
SCHEMA_VERSION = 1
REQUIRED_KEYS = ("format", "schema_version", "recipe", "tasks", "heads", "model", "data", "input")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Atomically write a checkpoint (a crash mid-write keeps the previous file)."""
    payload = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "edgemtl_version": __version__, **payload}
    with atomic_file(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path}: no such file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UserError(f"checkpoint {path}: not a readable edgemtl checkpoint ({reason[:120]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"checkpoint {path}: not an edgemtl checkpoint (no format={FORMAT!r} field)")
    missing = [key for key in REQUIRED_KEYS if key not in ckpt]
    if missing:
        raise UserError(f"checkpoint {path}: missing field {missing[0]!r}")
    if int(ckpt["schema_version"]) > SCHEMA_VERSION:
        raise UserError(
            f"checkpoint {path}: schema_version {ckpt['schema_version']} is newer than this edgemtl "
            f"supports ({SCHEMA_VERSION}); upgrade edgemtl"
        )
    ckpt["_path"] = str(path)
    return ckpt


def task_specs(ckpt: dict[str, Any]) -> list[TaskSpec]:
    return [TaskSpec.from_dict(spec) for spec in ckpt["tasks"].values()]


def model_from_checkpoint(ckpt: dict[str, Any]) -> MultiTaskNet:
    """Rebuild the network in eval mode with the checkpoint's weights."""
    model_cfg = ckpt["recipe"]["model"]
    trained = trained_of(ckpt["heads"])
    net = MultiTaskNet(task_specs(ckpt), model_cfg["width"], model_cfg["upsampling"], model_cfg["decoder"], heads=trained)
    try:
        net.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"checkpoint {ckpt.get('_path', '?')}: weights do not match its recipe ({first[:120]})") from None
    return net.eval()


def latest_best(runs_dir: str | Path = "runs") -> Path:
    """The newest `runs/*/best.pt`, for commands whose checkpoint argument is optional."""
    candidates = sorted(Path(runs_dir).glob("*/best.pt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise UserError(f"no checkpoint given and none found under {runs_dir}/*/best.pt (train one first)")
    return candidates[-1]
