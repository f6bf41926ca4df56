"""The export manifest of one checkpoint head, built from what the checkpoint records.

Why one function: `edgemtl export` writes this manifest into a bundle and the
PyTorch runner (profile / predict on a `.pt`) describes the checkpoint with
it, so both read the checkpoint's fields the same way (docs/formats.md,
"Checkpoint" and "Bundle"). Torch-free: the checkpoint is the typed `Checkpoint`
`edgemtl.training.checkpoint.load_checkpoint` returns; its upsampling is read
one way only, `Checkpoint.upsampling_mode`.
"""

from __future__ import annotations

from pathlib import Path

from edgemtl import __version__
from edgemtl.core.checkpoint_schema import Checkpoint
from edgemtl.core.heads import checkpoint_head
from edgemtl.core.io import sha256_file
from edgemtl.core.manifest import InputEntry, Manifest, Source, TaskEntry


def manifest_from_checkpoint(
    ckpt: Checkpoint,
    path: str | Path,
    head: str | None,
    outputs: str = "raw",
    checksum: bool = True,
) -> Manifest:
    """The manifest's fixed part (no artifacts yet) for `head` of the checkpoint at `path`.

    `head` None is the checkpoint's default head (`heads.default_head`); an unknown
    name or a head it lacks is a UserError (the latter naming the method it was
    trained with). `checksum` adds the file's sha256 to `source` (export records
    it; a runner needs not).
    """
    path = Path(path)
    head = checkpoint_head(ckpt, head)
    return Manifest(
        edgemtl_version=__version__,
        head=head,
        outputs_mode=outputs,  # type: ignore[arg-type]
        tasks={key: TaskEntry(**task.model_dump()) for key, task in ckpt.tasks.items()},
        source=Source(
            checkpoint=str(path),
            sha256=sha256_file(path) if checksum else None,
            recipe=ckpt.recipe.name,
            epoch=ckpt.epoch,
        ),
        input=InputEntry.model_validate(ckpt.input.model_dump(mode="json")),
        dataset=ckpt.data.to_dict(),
        upsampling=ckpt.upsampling_mode,
    )
