"""The export bundle's `manifest.json` (schema_version 2; 1 reads) and its ONNX metadata mirror.

Why typed objects: the manifest is read on devices (profile, export from a bundle)
that must not guess. Every field a consumer relies on is validated once here and
a bad file becomes one `UserError` line naming the file and the field. Unknown
extra keys are kept (a newer writer's additions survive a rewrite).

Torch-free; `onnx` is imported only by the metadata helpers.

The graph itself is checked against the manifest here too (`check_graph_io`:
input size, output names), for a bundle and for a lone file's metadata alike.

Why this size: the schema, its ONNX metadata mirror (`embed_metadata`,
`manifest_from_metadata`) and the graph check must change together under one
schema_version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgemtl.core.errors import UserError, excerpt
from edgemtl.core.heads import HeadName
from edgemtl.core.io import atomic_write_json, sha256_file
from edgemtl.core.paths import inside, name_problem
from edgemtl.core.records import Finite, RGBMeanList, RGBStdList, Side, TaskRecord

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


def _file_name(name: str | None) -> str | None:
    """A file of the bundle: a plain name (no folder part, not `..`), so reading, replacing
    or deleting it never reaches outside the bundle (`edgemtl.core.paths.inside`)."""
    problem = name_problem(name) if name is not None else None
    if problem is not None:
        raise ValueError(problem)
    return name


class TaskEntry(TaskRecord):
    """One task as the model outputs it: the checkpoint's task record (`core/records.py`)."""


class InputEntry(_Model):
    """What the graph's input expects: the user's image goes through exactly this.

    Accepts `data.preprocess.InputSpec.to_dict()` as is; `height`/`width` are
    filled from `shape` (N x 3 x H x W) when absent.
    """

    name: str = "image"
    # N x 3 x H x W; N is a string ("N", "batch") when dynamic
    shape: list[int | str] = Field(min_length=4, max_length=4)
    dtype: str = "float32"
    layout: str = "NCHW, RGB"
    height: Side
    width: Side
    mean: RGBMeanList
    std: RGBStdList
    value_range: Annotated[list[Finite], Field(min_length=2, max_length=2)] = [0.0, 1.0]
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

    @model_validator(mode="after")
    def _shape_matches_size(self) -> InputEntry:
        _, channels, height, width = self.shape
        if channels != 3:
            raise ValueError(f"shape {self.shape}: expected 3 (RGB) channels")
        if (height, width) != (self.height, self.width):
            raise ValueError(
                f"shape {self.shape} disagrees with height x width {self.height}x{self.width}"
            )
        if self.value_range[0] >= self.value_range[1]:
            raise ValueError(f"value_range {list(self.value_range)}: expected [low, high]")
        return self

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
    name: str = Field(min_length=1)
    task: str
    shape: list[int | str]
    dtype: str
    meaning: str = ""


class BatchEntry(_Model):
    """Fixed batch: min == opt == max and dynamic False."""

    dynamic: bool = False
    min: int = Field(1, ge=1)
    opt: int = Field(1, ge=1)
    max: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> BatchEntry:
        if not self.min <= self.opt <= self.max:
            raise ValueError(f"expected min <= opt <= max, got {self.min}, {self.opt}, {self.max}")
        return self


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

    @field_validator("reference")
    @classmethod
    def _reference_name(cls, reference: str) -> str:
        return reference if reference == "torch" else _file_name(reference)  # type: ignore[return-value]


class TrtInfo(_Model):
    version: str
    gpu: str
    compute_capability: str
    flags: list[str] = Field(default_factory=list)
    strategy: str = ""
    built_from: str = ""

    @field_validator("built_from")
    @classmethod
    def _built_from_name(cls, name: str) -> str:
        return name and _file_name(name)  # type: ignore[return-value]


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

    @field_validator("reference")
    @classmethod
    def _plain_reference(cls, name: str) -> str:
        return _file_name(name) or name


class Artifact(_Model):
    file: str
    format: Format
    precision: Precision
    sha256: str
    size_bytes: int = Field(0, ge=0)
    opset: int | None = None
    outputs: list[OutputEntry] = Field(default_factory=list)
    batch: BatchEntry = Field(default_factory=BatchEntry)
    parity: Parity | None = None
    trt: TrtInfo | None = None
    built_from: str | None = None  # the artifact this one was derived from
    speedup: Speedup | None = None  # INT8 ONNX: measured against the FP32 ONNX at export

    @field_validator("file", "built_from")
    @classmethod
    def _plain_file_names(cls, name: str | None) -> str | None:
        return _file_name(name)


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

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if not self.tasks:
            raise ValueError("tasks: at least one task is needed")
        for key, task in self.tasks.items():
            if task.key != key:
                raise ValueError(f"tasks.{key}.key: is {task.key!r}, expected {key!r}")
        for i, art in enumerate(self.artifacts):
            for j, out in enumerate(art.outputs):
                if out.task not in self.tasks:
                    raise ValueError(
                        f"artifacts.{i}.outputs.{j}.task: {out.task!r} is not one of the "
                        f"tasks ({', '.join(self.tasks)})"
                    )
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _first_error(exc: ValidationError) -> str:
    """ "field <path>: <what>" of the first error (checks across fields name their path first)."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if err.get("type") not in ("missing", "value_error") and "input" in err:
        got = repr(err["input"])
        message += f" (got {got if len(got) <= 60 else got[:57] + '...'})"
    extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"field {where + ': ' if where else ''}{message}{extra}"


def manifest_from_dict(data: Any, origin: str = MANIFEST_NAME) -> Manifest:
    """Validate a parsed manifest; `origin` names the file in the error."""
    if not isinstance(data, dict):
        raise UserError(f"{origin}: expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if version not in READS:
        raise UserError(
            f"{origin}: schema_version is {excerpt(version)}, this edgemtl reads "
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


def artifact_path(bundle_dir: str | Path, name: str) -> Path:
    """`bundle_dir / name` for a file the manifest names, checked to stay inside the bundle
    (`edgemtl.core.paths.inside`); every read, replace or delete goes through here."""
    return inside(bundle_dir, name, f"{Path(bundle_dir) / MANIFEST_NAME}: file {excerpt(name)}")


def verify_artifact(bundle_dir: str | Path, entry: Artifact) -> Path:
    """Return the artifact's path after checking it exists and its sha256 matches."""
    path = artifact_path(bundle_dir, entry.file)
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


# ---- the graph itself against what the manifest says ---------------------------------------


def onnx_graph_io(onnx_path: str | Path) -> tuple[list[tuple[str, list[int | str]]], list[str]]:
    """([(input name, shape)], [output names]) of an ONNX graph; initializers are not inputs.

    A dimension is its int size, or its symbolic name ("N") when dynamic. Raises
    `UserError` when the file is not a readable ONNX model.
    """
    import onnx

    path = Path(onnx_path)
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # noqa: BLE001 (onnx raises DecodeError / OSError variants)
        raise UserError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    weights = {init.name for init in graph.initializer}
    inputs = []
    for value in graph.input:
        if value.name in weights:
            continue
        dims = value.type.tensor_type.shape.dim
        inputs.append(
            (value.name, [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims])
        )
    return inputs, [value.name for value in graph.output]


def check_graph_io(
    origin: str,
    manifest: Manifest,
    artifact: Artifact,
    inputs: list[tuple[str, list[int | str]]],
    outputs: list[str],
) -> None:
    """Refuse (one `UserError` naming `origin` and the field) a manifest that disagrees
    with its graph: the one image input N x 3 x H x W at `input.height` x `input.width`,
    and every output name of the artifact's `outputs` present in the graph.

    `inputs`/`outputs` as `onnx_graph_io` returns them (or a runtime's own view of the
    graph, e.g. a TensorRT engine's bindings).
    """
    if len(inputs) != 1:
        raise UserError(
            f"{origin}: field input: the graph has {len(inputs)} inputs, expected one image input"
        )
    name, shape = inputs[0]
    if len(shape) != 4:
        raise UserError(f"{origin}: field input.shape: the graph's input {name!r} is {shape}")
    want = (manifest.input.height, manifest.input.width)
    graph_hw = (shape[2], shape[3])
    if all(isinstance(d, int) and d > 0 for d in graph_hw) and graph_hw != want:
        raise UserError(
            f"{origin}: field input.height/width: {want[0]}x{want[1]} disagrees with the "
            f"graph's input {graph_hw[0]}x{graph_hw[1]}"
        )
    if isinstance(shape[1], int) and shape[1] not in (0, 3):
        raise UserError(f"{origin}: field input.shape: the graph's input has {shape[1]} channels")
    index = next((i for i, a in enumerate(manifest.artifacts) if a.file == artifact.file), 0)
    for j, out in enumerate(artifact.outputs):
        if out.name not in outputs:
            raise UserError(
                f"{origin}: field artifacts.{index}.outputs.{j}.name: {out.name!r} is not an "
                f"output of {artifact.file} (it has: {', '.join(outputs)[:80]})"
            )


def check_onnx_artifact(origin: str, manifest: Manifest, artifact: Artifact, path: Path) -> None:
    """`check_graph_io` for an ONNX artifact at `path` (read once, weights included)."""
    inputs, outputs = onnx_graph_io(path)
    check_graph_io(origin, manifest, artifact, inputs, outputs)
