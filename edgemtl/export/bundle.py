"""Writing a bundle: stage every file beside the final folder, gate, then move in.

Why: a failed parity gate, a crash or Ctrl-C must leave nothing in the final
place (a new bundle appears whole or not at all) and must not damage an
existing bundle (its files are replaced one atomic rename at a time, the
manifest last). A later export adds artifacts; content that differs from what
the bundle already holds is refused unless `force`. Torch-free.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgemtl.core.errors import UserError
from edgemtl.core.io import TempDir, dir_mode, sweep_temporaries
from edgemtl.core.manifest import (
    MANIFEST_NAME,
    Artifact,
    Manifest,
    artifact_path,
    load_manifest,
    write_manifest,
)


class BundleWriter:
    """Collects staged artifacts for `final`; `commit()` publishes them, `discard()` drops them."""

    def __init__(self, final: Path, manifest: Manifest, force: bool = False) -> None:
        self.final = Path(final)
        self.manifest = manifest
        self.force = force
        self.final.parent.mkdir(parents=True, exist_ok=True)
        # Staging folders and manifest temporaries of killed exports of this bundle go first
        # (only those no live process owns: core/io.py).
        sweep_temporaries(self.final.parent, self.final.name)
        sweep_temporaries(self.final)
        self._staging = TempDir(self.final.parent, f".{self.final.name}.staging")
        self.stage = self._staging.path
        self.staged: list[str] = []  # files to move in
        self.removed: list[str] = []  # files of dropped artifacts
        self.status: dict[str, str] = {}  # file -> "new" | "replaced" | "unchanged"
        self.old_files = (
            {a.file for a in load_manifest(self.final).artifacts} if self.exists else set()
        )

    @property
    def exists(self) -> bool:
        return (self.final / MANIFEST_NAME).is_file()

    def path(self, name: str) -> Path:
        """Where to write `name` now (the staging folder)."""
        return artifact_path(self.stage, name)

    def existing(self, file: str) -> Artifact | None:
        return next((a for a in self.manifest.artifacts if a.file == file), None)

    def add(self, artifact: Artifact, extra_files: tuple[str, ...] = ()) -> str:
        """Register a staged artifact; returns its status. Different content needs `force`."""
        old = self.existing(artifact.file)
        if old is not None and old.sha256 == artifact.sha256:
            self.status[artifact.file] = "unchanged"
            self.path(artifact.file).unlink(missing_ok=True)
            return "unchanged"
        if old is not None and not self.force:
            raise UserError(
                f"{self.final / artifact.file}: the bundle already holds a different "
                f"{artifact.file} "
                f"(sha256 {old.sha256[:12]}..., new {artifact.sha256[:12]}...): pass --force to "
                "replace it"
            )
        self.manifest.artifacts = [a for a in self.manifest.artifacts if a.file != artifact.file]
        self.manifest.artifacts.append(artifact)
        self.staged.append(artifact.file)
        self.staged.extend(f for f in extra_files if f not in self.staged)
        self.status[artifact.file] = "replaced" if old is not None else "new"
        return self.status[artifact.file]

    def drop_derived_from(self, file: str) -> None:
        """With --force replacing `file`, artifacts built from the old one are stale: drop them."""
        stale = [
            a for a in self.manifest.artifacts if a.built_from == file and a.file not in self.staged
        ]
        for art in stale:
            self.manifest.artifacts.remove(art)
            self.removed.append(art.file)

    def commit(self) -> None:
        """Publish: a new bundle by one folder rename; an existing one file by file, manifest
        last."""
        order = {"fp32": 0, "fp16": 1, "int8": 2}
        self.manifest.artifacts.sort(
            key=lambda a: (a.format != "onnx", order.get(a.precision, 9), a.file)
        )
        if not self.exists:
            if self.final.exists() and any(self.final.iterdir()):
                raise UserError(
                    f"{self.final}: folder exists and is not an edgemtl bundle (no "
                    f"{MANIFEST_NAME}); "
                    "choose another --out"
                )
            write_manifest(self.stage, self.manifest)
            os.chmod(self.stage, dir_mode())  # mkdtemp made it private; a bundle is shared
            if self.final.exists():
                self.final.rmdir()
            os.rename(self.stage, self.final)
            self._staging.release(remove=False)
            return
        for name in self.staged:
            src = self.path(name)
            if src.exists():
                os.replace(src, artifact_path(self.final, name))
        write_manifest(self.final, self.manifest)
        listed = {a.file for a in self.manifest.artifacts}
        for name in sorted(set(self.removed) | (self.old_files - listed)):
            artifact_path(self.final, name).unlink(missing_ok=True)
        self.discard()

    def discard(self) -> None:
        """Delete the staging folder (whatever it holds) and release it."""
        self._staging.release()


def open_existing(final: Path, fresh: Manifest, force: bool) -> Manifest:
    """The manifest to extend: the bundle's own if compatible with `fresh`, else `fresh`.

    Compatible = same head, outputs mode, input and (when both know it) source
    checkpoint. An incompatible bundle is refused unless `force`, which starts over.
    """
    if not (final / MANIFEST_NAME).is_file():
        if final.exists() and final.is_dir() and any(final.iterdir()):
            raise UserError(
                f"{final}: folder exists and is not an edgemtl bundle (no {MANIFEST_NAME}); "
                "choose another --out"
            )
        return fresh
    old = load_manifest(final)
    reasons = []
    if old.head != fresh.head:
        reasons.append(f"head {old.head} != {fresh.head}")
    if old.outputs_mode != fresh.outputs_mode:
        reasons.append(f"outputs {old.outputs_mode} != {fresh.outputs_mode}")
    if (old.input.height, old.input.width) != (fresh.input.height, fresh.input.width):
        reasons.append(
            f"input {old.input.height}x{old.input.width} != "
            f"{fresh.input.height}x{fresh.input.width}"
        )
    if old.source.sha256 and fresh.source.sha256 and old.source.sha256 != fresh.source.sha256:
        reasons.append(
            f"source checkpoint sha256 {old.source.sha256[:12]}... != {fresh.source.sha256[:12]}..."
        )
    if not reasons:
        return old
    if not force:
        raise UserError(
            f"{final}: existing bundle differs ({'; '.join(reasons)}): pass --force to rebuild it, "
            "or choose another --out"
        )
    return fresh
