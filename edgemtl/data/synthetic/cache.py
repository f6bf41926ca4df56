"""Dataset files: the NYUv2-release layout on disk, and the per-parameters cache.

`ensure_dataset` is what recipes and checkpoints use: the cache folder is keyed
by the parameters and `GENERATOR_VERSION`, built once under a file lock and
appears whole (atomic rename) or not at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.core.io import TempDir, atomic_dir, atomic_write_json, sweep_temporaries
from edgemtl.core.paths import check_output_dir
from edgemtl.data.sample import Sample
from edgemtl.data.synthetic.params import CLASS_NAMES, GENERATOR_VERSION, SPLITS, SynthParams
from edgemtl.data.synthetic.render import render_sample

#: Folder names of the NYUv2-release layout, per stored array.
LAYOUT_FOLDERS = ("image", "label", "depth", "normal", "keypoints", "edges")


def _manifest(params: SynthParams) -> dict[str, Any]:
    return {
        "generator_version": GENERATOR_VERSION,
        "params": params.to_dict(),
        "class_names": list(CLASS_NAMES),
    }


def _layout_arrays(sample: Sample) -> dict[str, np.ndarray]:
    """A Sample as the NYUv2 release stores it (label float with -1, HxWx1 maps)."""
    t = sample.targets
    return {
        "image": sample.image.astype(np.float32),
        "label": t["seg"].astype(np.float32),
        "depth": t["depth"][..., None].astype(np.float32),
        "normal": t["normal"].astype(np.float32),
        "keypoints": t["keypoints"][..., None].astype(np.float32),
        "edges": t["edges"][..., None].astype(np.float32),
    }


def _is_complete(root: Path, params: SynthParams) -> bool:
    meta = root / "synthetic.json"
    try:
        if json.loads(meta.read_text()) != _manifest(params):
            return False
    except (OSError, ValueError):
        return False
    for split in SPLITS:
        n = params.count(split)
        for folder in LAYOUT_FOLDERS:
            if not (root / split / folder / f"{n - 1}.npy").is_file():
                return False
    return True


def _write_into(
    tmp: Path, params: SynthParams, progress: Callable[[int, int], None] | None
) -> None:
    total = params.n_train + params.n_val
    done = 0
    for split in SPLITS:
        for folder in LAYOUT_FOLDERS:
            (tmp / split / folder).mkdir(parents=True)
        for i in range(params.count(split)):
            for folder, arr in _layout_arrays(render_sample(params, split, i)).items():
                np.save(tmp / split / folder / f"{i}.npy", arr)
            done += 1
            if progress is not None:
                progress(done, total)
    # Written last: its presence inside the folder marks the content complete.
    atomic_write_json(tmp / "synthetic.json", _manifest(params))


def write_dataset(
    out: Path, params: SynthParams, progress: Callable[[int, int], None] | None = None
) -> Path:
    """Write `{out}/{train,val}/{image,label,depth,normal,keypoints,edges}/{i}.npy`
    and `{out}/synthetic.json`; the folder appears whole or not at all.

    An existing complete copy with the same parameters is kept as is; any other
    existing non-empty `out` is refused rather than overwritten.
    """
    out = Path(out)
    if out.exists():
        if _is_complete(out, params):
            return out
        if not out.is_dir() or any(out.iterdir()):
            raise UserError(
                f"{out} already exists and is not this synthetic dataset; "
                "expected a new or empty folder"
            )
        out.rmdir()
    sweep_temporaries(out.parent, out.name)  # a killed earlier build's (core/io.py)
    with atomic_dir(out) as tmp:
        _write_into(tmp, params, progress)
    if not _is_complete(out, params):
        raise UserError(f"{out} appeared while writing and is not this synthetic dataset")
    return out


def cache_root() -> Path:
    """`$EDGEMTL_CACHE` or `~/.cache/edgemtl`."""
    env = os.environ.get("EDGEMTL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgemtl"


def dataset_key(params: SynthParams) -> str:
    """16 hex digits of sha256 over the parameters and the generator version."""
    blob = json.dumps(
        {"params": params.to_dict(), "generator_version": GENERATOR_VERSION}, sort_keys=True
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive advisory lock so parallel workers build a dataset once; where
    fcntl is missing, the atomic rename alone keeps the result correct."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_dataset(params: SynthParams, progress: Callable[[int, int], None] | None = None) -> Path:
    """Return the cached dataset folder for `params`, generating it once if needed.

    Safe when several processes call it at once (file lock + atomic rename).
    """
    final = cache_root() / "synthetic" / dataset_key(params)
    # Builds killed earlier left temp folders; those of live builders are locked and kept.
    sweep_temporaries(final.parent)
    if _is_complete(final, params):
        return final
    check_output_dir(cache_root(), "EDGEMTL_CACHE")
    with _locked(final.parent / f".{final.name}.lock"):
        if _is_complete(final, params):
            return final
        if final.exists():
            # A damaged copy (hand-edited?): move it aside, then rebuild.
            trash = TempDir(final.parent, f".{final.name}.stale")
            os.replace(final, trash.path / "old")
            trash.release()
        return write_dataset(final, params, progress)
