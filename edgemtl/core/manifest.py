"""The export bundle's `manifest.json` (schema_version 2; 1 reads) and its ONNX metadata mirror.

Why typed objects: the manifest is read on devices (profile, export from a bundle)
that must not guess. Every field a consumer relies on is validated once here and
a bad file becomes one `UserError` line naming the file and the field. Unknown
extra keys are kept (a newer writer's additions survive a rewrite).

Torch-free; `onnx` is imported only by the metadata helpers.

Why this size: the schema and its ONNX metadata mirror (`embed_metadata`,
`manifest_from_metadata`) must change together under one schema_version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgemtl.core.errors import UserError
from edgemtl.core.heads import HeadName
from edgemtl.core.io import atomic_write_json, sha256_file

#: The version written. 2: `head` may name a decoder exit (exit1..exit3) and the optional
#: `architecture` record says which Student/exits the bundle's graph holds.
SCHEMA_VERSION: Literal[2] = 2
#: Versions read (a version-1 bundle holds a teacher, student or ensemble head).
READS: tuple[int, ...] = (1, 2)
MANIFEST_NAME = "manifest.json"
METADATA_PREFIX = "edgemtl."

Format = Literal["onnx", "trt"]
Precision = Literal["fp32", "fp16", "int8"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class TaskEntry(_Model):
    """One task as the model outputs it (same fields as `tasks.TaskSpec.to_dict`)."""

    key: str
    kind: str
    channels: int
    class_names: list[str] | None = None
    units: str = ""


class InputEntry(_Model):
    """What the graph's input expects: the user's image goes through exactly this.

    Accepts `data.preprocess.InputSpec.to_dict()` as is; `height`/`width` are
    filled from `shape` (N x 3 x H x W) when absent.
    """

    name: str = "image"
    shape: list[int | str]  # N x 3 x H x W; N is a string ("N", "batch") when dynamic
    dtype: str = "float32"
    layout: str = "NCHW, RGB"
    height: int
    width: int
    mean: list[float]
    std: list[float]
    value_range: list[float] = Field(default_factory=lambda: [0.0, 1.0])
    resize: str = "bilinear (half-pixel) to HxW; targets nearest"

    @model_validator(mode="before")
    @classmethod
    def _size_from_shape(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and isinstance(data.get("shape"), list)
            and len(data["shape"]) == 4
        ):
            data = dict(data)
            data.setdefault("height", data["shape"][2])
            data.setdefault("width", data["shape"][3])
        return data

    def input_spec_dict(self) -> dict[str, Any]:
        """The dict `data.preprocess.InputSpec.from_dict` reads."""
        return {
            "name": self.name,
            "shape": ["N", 3, self.height, self.width],
            "dtype": self.dtype,
            "mean": list(self.mean),
            "std": list(self.std),
        }


class OutputEntry(_Model):
    name: str
    task: str
    shape: list[int | str]
    dtype: str
    meaning: str = ""


class BatchEntry(_Model):
    """Fixed batch: min == opt == max and dynamic False."""

    dynamic: bool = False
    min: int = 1
    opt: int = 1
    max: int = 1


class Check(_Model):
    """One gated number: `value` compared with `tolerance` by `op` ("<=" or ">=")."""

    value: float
    tolerance: float
    op: Literal["<=", ">="] = "<="
    passed: bool


class Parity(_Model):
    """How an artifact was proven: against what, on which inputs, with which checks."""

    reference: str  # "torch" or the reference artifact's file name
    inputs: Literal["dataset", "random"] = "dataset"
    samples: int = 0
    passed: bool
    checks: dict[str, dict[str, Check]] = Field(default_factory=dict)  # task -> metric -> check
    metrics: dict[str, Any] | None = None  # INT8: {"reference": {...}, "candidate": {...}}


class TrtInfo(_Model):
    version: str
    gpu: str
    compute_capability: str
    flags: list[str] = Field(default_factory=list)
    strategy: str = ""
    built_from: str = ""


class Artifact(_Model):
    file: str
    format: Format
    precision: Precision
    sha256: str
    size_bytes: int = 0
    opset: int | None = None
    outputs: list[OutputEntry] = Field(default_factory=list)
    batch: BatchEntry = Field(default_factory=BatchEntry)
    parity: Parity | None = None
    trt: TrtInfo | None = None
    built_from: str | None = None  # the artifact this one was derived from
    speedup: Speedup | None = None  # INT8 ONNX: measured against the FP32 ONNX at export


class Speedup(_Model):
    """How much faster an artifact ran than `reference` (a file of the bundle) where it was
    exported: ONNX Runtime CPU, `threads` intra-op threads, the two interleaved; `ratio` =
    the reference's median / this one's (> 1: faster). Optional: measured by `export`."""

    reference: str
    ratio: float
    median_ms: float
    reference_median_ms: float
    runtime: str = "onnxruntime cpu"
    threads: int = 1
    iterations: int = 0


class Source(_Model):
    checkpoint: str | None = None
    sha256: str | None = None
    recipe: str | None = None
    epoch: int | None = None


class Manifest(_Model):
    schema_version: Literal[1, 2] = SCHEMA_VERSION
    format: Literal["edgemtl-bundle"] = "edgemtl-bundle"
    edgemtl_version: str = ""
    head: HeadName
    outputs_mode: Literal["raw", "decoded"] = "raw"
    tasks: dict[str, TaskEntry]
    source: Source = Field(default_factory=Source)
    input: InputEntry
    dataset: dict[str, Any] | None = None
    upsampling: str = "bilinear"
    #: The head's architecture as the checkpoint's recipe states it: {"student": {kind, width,
    #: upsample, smooth, neck}, "exits": [k...]} (None in version 1: the paper Student).
    architecture: dict[str, Any] | None = None
    artifacts: list[Artifact] = Field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
    extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"field {where}: {err.get('msg', 'invalid')}{extra}"


def manifest_from_dict(data: Any, origin: str = MANIFEST_NAME) -> Manifest:
    """Validate a parsed manifest; `origin` names the file in the error."""
    if not isinstance(data, dict):
        raise UserError(f"{origin}: expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if version not in READS:
        raise UserError(
            f"{origin}: schema_version is {version!r}, this edgemtl reads "
            f"{' and '.join(map(str, READS))}"
        )
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{origin}: {_first_error(exc)}") from None


def load_manifest(bundle_dir: str | Path) -> Manifest:
    """Read and validate `<bundle_dir>/manifest.json`."""
    path = Path(bundle_dir) / MANIFEST_NAME
    if not path.is_file():
        raise UserError(f"{path}: no manifest.json here: expected an edgemtl export bundle folder")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    return manifest_from_dict(data, origin=str(path))


def write_manifest(bundle_dir: str | Path, manifest: Manifest) -> Path:
    """Write atomically; readers see the old manifest or the new one, never half."""
    path = Path(bundle_dir) / MANIFEST_NAME
    atomic_write_json(path, manifest.to_dict())
    return path


def find_artifact(manifest: Manifest, format: str, precision: str) -> Artifact | None:
    for art in manifest.artifacts:
        if art.format == format and art.precision == precision:
            return art
    return None


def upsert_artifact(manifest: Manifest, artifact: Artifact) -> None:
    """Replace the entry for the same file, or append. Callers decide on `--force`."""
    for i, art in enumerate(manifest.artifacts):
        if art.file == artifact.file:
            manifest.artifacts[i] = artifact
            return
    manifest.artifacts.append(artifact)


def verify_artifact(bundle_dir: str | Path, entry: Artifact) -> Path:
    """Return the artifact's path after checking it exists and its sha256 matches."""
    path = Path(bundle_dir) / entry.file
    if not path.is_file():
        raise UserError(f"{path}: listed in {MANIFEST_NAME} but missing from the bundle")
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise UserError(
            f"{path}: checksum mismatch (manifest sha256 {entry.sha256[:12]}..., file "
            f"{actual[:12]}...): "
            "the file was modified or corrupted; re-export it"
        )
    return path


# ---- ONNX metadata_props: a lone .onnx file still describes itself -------------------

_META_KEYS = (
    "schema_version",
    "head",
    "outputs_mode",
    "tasks",
    "input",
    "upsampling",
    "dataset",
    "source",
    "precision",
    "outputs",
    "batch",
)


def metadata_dict(manifest: Manifest, artifact: Artifact) -> dict[str, str]:
    """The key facts as `metadata_props` strings (JSON values under `edgemtl.*` keys)."""
    facts: dict[str, Any] = {
        "schema_version": manifest.schema_version,
        "head": manifest.head,
        "outputs_mode": manifest.outputs_mode,
        "tasks": {k: t.model_dump(mode="json") for k, t in manifest.tasks.items()},
        "input": manifest.input.model_dump(mode="json"),
        "upsampling": manifest.upsampling,
        "dataset": manifest.dataset,
        "source": manifest.source.model_dump(mode="json"),
        "precision": artifact.precision,
        "outputs": [o.model_dump(mode="json") for o in artifact.outputs],
        "batch": artifact.batch.model_dump(mode="json"),
    }
    return {METADATA_PREFIX + k: json.dumps(v) for k, v in facts.items()}


def embed_metadata(model_proto: Any, manifest: Manifest, artifact: Artifact) -> Any:
    """Set the `edgemtl.*` metadata_props on an `onnx.ModelProto` in place (and return it)."""
    wanted = metadata_dict(manifest, artifact)
    kept = [p for p in model_proto.metadata_props if p.key not in wanted]
    del model_proto.metadata_props[:]
    for prop in kept:
        model_proto.metadata_props.add(key=prop.key, value=prop.value)
    for key, value in wanted.items():
        model_proto.metadata_props.add(key=key, value=value)
    return model_proto


def default_opset(model_proto: Any) -> int | None:
    """The real opset of the default ONNX domain, as `opset_import` states it."""
    for entry in model_proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None


def read_metadata(onnx_path: str | Path) -> dict[str, Any]:
    """The `edgemtl.*` facts of an ONNX file, decoded, plus its real `opset`."""
    import onnx

    path = Path(onnx_path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 (onnx raises DecodeError / OSError variants)
        raise UserError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    facts: dict[str, Any] = {"opset": default_opset(proto)}
    for prop in proto.metadata_props:
        if prop.key.startswith(METADATA_PREFIX):
            name = prop.key[len(METADATA_PREFIX) :]
            try:
                facts[name] = json.loads(prop.value)
            except json.JSONDecodeError:
                raise UserError(f"{path}: metadata_props {prop.key} is not valid JSON") from None
    return facts


def manifest_from_metadata(onnx_path: str | Path) -> Manifest:
    """A one-artifact manifest rebuilt from a lone ONNX file's metadata_props.

    The checksum is computed from the file itself (nothing to verify against).
    """
    path = Path(onnx_path)
    facts = read_metadata(path)
    missing = [k for k in ("head", "tasks", "input", "precision", "outputs") if k not in facts]
    if missing:
        raise UserError(
            f"{path}: ONNX file carries no edgemtl metadata ({', '.join(missing)} missing): "
            "export it with `edgemtl export` or profile its bundle folder"
        )
    data = {
        k: facts[k] for k in _META_KEYS if k in facts and k not in ("precision", "outputs", "batch")
    }
    data["schema_version"] = facts.get("schema_version", SCHEMA_VERSION)
    data["artifacts"] = [
        {
            "file": path.name,
            "format": "onnx",
            "precision": facts["precision"],
            "sha256": sha256_file(path),
            "size_bytes": path.stat().st_size,
            "opset": facts["opset"],
            "outputs": facts["outputs"],
            "batch": facts.get("batch", {}),
        }
    ]
    return manifest_from_dict(data, origin=f"{path} (metadata_props)")
