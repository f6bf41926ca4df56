"""`edgemtl profile SOURCE --all-formats`: every format and precision of one head, one table.

Like `yolo benchmark`: from a checkpoint (or a run folder's best.pt) the
PyTorch model itself, plus its export bundle with FP32, FP16 and INT8 ONNX
(and TensorRT engines where TensorRT and a GPU exist), exported first when any
of them is missing; from a bundle folder, its missing precisions are derived
in place. Then everything is profiled together (interleaved, one report).

Why exporters are named, not imported: `export/` sits above `deploy/` and a
checkpoint needs the training side (PyTorch), while `edgemtl profile` must
import without either (docs/architecture.md). As with the runner registry
(`deploy/runtime/registry.py`), each source kind names its exporter as a
"module:function" string, imported only when an export is needed:
`function(source: Path, head: str | None, out: Path | None, quiet: bool) -> Path`
(the bundle folder it wrote or completed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

from edgemtl.core.errors import UserError
from edgemtl.core.manifest import MANIFEST_NAME, load_manifest
from edgemtl.deploy.runtime.base import CHECKPOINT_SUFFIXES
from edgemtl.deploy.runtime.registry import load_target

#: Source kind -> "module:function" of its exporter (see the module docstring).
EXPORTERS: dict[str, str] = {
    "bundle": "edgemtl.export.command:export_all_precisions",
    "checkpoint": "edgemtl.training.export.command:export_all_precisions",
}
#: What --all-formats profiles of a bundle: these ONNX precisions, and engines where TensorRT runs.
PRECISIONS = ("fp32", "fp16", "int8")
ENGINE_PRECISIONS = ("fp16", "int8")
#: Where `edgemtl export` puts a checkpoint's bundle by default: export/<run>-<head>.
EXPORT_DIR = Path("export")

Exporter = Callable[[Path, "str | None", "Path | None", bool], Path]


def register_exporter(kind: str, target: str) -> None:
    """Name the exporter of source `kind` ("bundle" or "checkpoint") as "module:function"."""
    if target.count(":") != 1 or not all(target.split(":")):
        raise ValueError(f"exporter registry: {target!r} is not 'module:function'")
    EXPORTERS[kind] = target


def missing(bundle: Path, engines: bool) -> list[str]:
    """What --all-formats would add to `bundle`: "onnx fp16", "trt int8", ... (all of
    them when the folder holds no bundle yet)."""
    wanted = [("onnx", p) for p in PRECISIONS]
    if engines:
        wanted += [("trt", p) for p in ENGINE_PRECISIONS]
    if not (bundle / MANIFEST_NAME).is_file():
        return [f"{fmt} {p}" for fmt, p in wanted]
    have = {(a.format, a.precision) for a in load_manifest(bundle).artifacts}
    return [f"{fmt} {p}" for fmt, p in wanted if (fmt, p) not in have]


def _present(bundle: Path) -> list[str]:
    return [a.file for a in load_manifest(bundle).artifacts]


def _engines_here() -> bool:
    from edgemtl.deploy.runtime.trt_env import tensorrt_status

    return tensorrt_status()[0]


def _source_kind(path: Path) -> tuple[str, Path]:
    """("bundle" | "checkpoint", the bundle folder or checkpoint file) of a command-line path."""
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        return "bundle", path
    if path.is_dir() and (path / "best.pt").is_file():
        return "checkpoint", path / "best.pt"
    if path.is_file() and path.suffix.lower() in CHECKPOINT_SUFFIXES:
        return "checkpoint", path
    raise UserError(
        f"--all-formats {path}: expected a checkpoint (.pt), a run folder holding best.pt, "
        "or an export bundle folder"
    )


def expand(paths: Sequence[str | Path], head: str | None, console: Any = None) -> list[Path]:
    """The artifacts to profile for `paths` under --all-formats, exporting what is missing.

    A checkpoint contributes itself (the PyTorch row) and its bundle
    `export/<run>-<head>` (`head`: --head, else the checkpoint's default head,
    read through the runner registry); a bundle contributes itself. Exports run
    quietly; `console` (a rich Console) says what is exported where. Raises
    `UserError` for any other path, and whatever the exporter raises (a failed
    parity gate leaves no bundle behind).
    """
    from edgemtl.deploy.runtime.resolve import resolve_artifacts

    engines = _engines_here()
    out: list[Path] = []
    for raw in paths:
        kind, source = _source_kind(Path(raw))
        if kind == "checkpoint":
            chosen = resolve_artifacts(source, head=head)[0].head
            bundle = EXPORT_DIR / f"{source.parent.name}-{chosen}"
            out.append(source)
        else:
            chosen, bundle = None, source
        todo = missing(bundle, engines)
        if todo:
            say = console.print if console is not None else (lambda *_: None)
            say(f"--all-formats: exporting {', '.join(todo)} to {bundle} (parity-gated; minutes)")
            target = EXPORTERS[kind]
            exporter: Exporter = load_target(target, "--all-formats", f"the {kind} exporter ")
            # Its closing table would mix with the report on stdout: the export runs quietly.
            bundle = exporter(source, chosen, bundle if kind == "checkpoint" else None, True)
            say(f"--all-formats: {bundle} holds {', '.join(_present(bundle))}")
        out.append(bundle)
    return out
