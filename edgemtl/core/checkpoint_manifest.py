"""The export manifest of one checkpoint head, built from what the checkpoint records.

Why one function: `edgemtl export` writes this manifest into a bundle and the
PyTorch runner (profile / predict on a `.pt`) describes the checkpoint with
it, so both read the checkpoint's fields the same way (docs/formats.md,
"Checkpoint" and "Bundle"). Torch-free: the checkpoint is the plain dict
`edgemtl.training.checkpoint.load_checkpoint` returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgemtl import __version__
from edgemtl.core.heads import checkpoint_head
from edgemtl.core.io import sha256_file
from edgemtl.core.manifest import Manifest, Source, TaskEntry


def upsampling_of(ckpt: dict[str, Any]) -> str:
    """The decoder's upsampling: the checkpoint's top-level `upsampling` field, else
    `recipe.model.upsampling`, else "bilinear" (the recipe default)."""
    model = (ckpt.get("recipe") or {}).get("model") or {}
    return str(ckpt.get("upsampling") or model.get("upsampling") or "bilinear")


def manifest_from_checkpoint(ckpt: dict[str, Any], path: str | Path, head: str | None,
                             outputs: str = "raw", checksum: bool = True) -> Manifest:
    """The manifest's fixed part (no artifacts yet) for `head` of the checkpoint at `path`.

    `head` None is the checkpoint's default head (`heads.default_head`); a head
    it lacks is a UserError naming the method it was trained with. `checksum`
    adds the file's sha256 to `source` (export records it; a runner needs not).
    """
    path = Path(path)
    head = checkpoint_head(ckpt, head)
    recipe = ckpt.get("recipe") or {}
    return Manifest(
        edgemtl_version=__version__,
        head=head,
        outputs_mode=outputs,  # type: ignore[arg-type]
        tasks={key: TaskEntry(**spec) for key, spec in ckpt["tasks"].items()},
        source=Source(checkpoint=str(path), sha256=sha256_file(path) if checksum else None,
                      recipe=recipe.get("name"), epoch=ckpt.get("epoch")),
        input=dict(ckpt["input"]),  # type: ignore[arg-type]
        dataset=ckpt.get("data"),
        upsampling=upsampling_of(ckpt),
    )
