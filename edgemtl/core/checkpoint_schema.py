"""The checkpoint's typed schema (format "edgemtl-checkpoint", schema_version 2; 1 still reads).

Why typed: `eval`, `export`, the torch runner of `profile`/`predict`, the frozen
teachers of kd_two_stage / KD4MTL / BAM and `--resume` all read checkpoints. Every
field one of them relies on is validated here once, and a malformed file becomes
one `UserError` line naming the file and the field ("checkpoint runs/x/best.pt:
field input.std: ..."), never a KeyError traceback in whichever reader touched it
first. The fields are those of docs/formats.md "Checkpoint"; `recipe` is validated
with the recipe model itself (`edgemtl.core.config.Recipe`); the task and
input records are the ones manifests use too (`edgemtl.core.records`).

Tensors and state dicts (`model`, `extra`, `optimizer`, `scheduler`, `rng`,
`amp_scaler`, the balancer's `state`) are opaque here: torch checks them when it
loads them. Unknown keys are kept, so a newer writer's additions survive. Fields
that older edgemtl did not write (e.g. `optimizer` in tests/fixtures/legacy_v1)
are optional; a reader that needs one asks `require(...)`.

Torch-free: `edgemtl.training.checkpoint` reads and writes the file.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PrivateAttr,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from edgemtl.core.config import Recipe, error_location
from edgemtl.core.errors import UserError
from edgemtl.core.records import RGBMean, RGBStd, TaskRecord
from edgemtl.core.tasks import TaskSpec

FORMAT = "edgemtl-checkpoint"
#: The newest schema this edgemtl reads and the one it writes. 2 added `recipe.model.student`
#: and `recipe.model.exits` (heads exit1..exit3); a version-1 file means the paper Student and
#: no exits, and still loads (docs/formats.md "Checkpoint").
SCHEMA_VERSION = 2

#: Opaque payloads (tensors, state dicts): typed `Any` on purpose, torch validates them.
Opaque = Any


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class InputRecord(_Record):
    """The network input (`data.preprocess.InputSpec.to_dict`): N x 3 x H x W, (x - mean) / std."""

    name: str = "image"
    shape: list[int | str] = Field(min_length=4, max_length=4)
    dtype: str = "float32"
    mean: RGBMean
    std: RGBStd

    @field_validator("shape")
    @classmethod
    def _nchw(cls, shape: list[int | str]) -> list[int | str]:
        _, channels, height, width = shape
        if channels != 3 or not all(isinstance(s, int) and s > 0 for s in (height, width)):
            raise ValueError(f"expected [N, 3, H, W] with positive H and W, got {shape}")
        return shape

    @property
    def height(self) -> int:
        return int(self.shape[2])

    @property
    def width(self) -> int:
        return int(self.shape[3])


class DataRecord(_Record):
    """What `data.registry.open_split` needs to rebuild the splits (`dataset_record`)."""

    kind: str
    root: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="python")


class SelectRecord(_Record):
    """How best.pt was chosen (`training.selection.Selection.to_dict`)."""

    head: str
    metric: str
    reference: dict[str, dict[str, float]] | None = None
    best_value: float | None = None
    best_epoch: NonNegativeInt | None = None


class Position(_Record):
    """Where training stands: `batch` batches of `epoch` are done (0-based epoch)."""

    model_config = ConfigDict(extra="forbid")

    epoch: NonNegativeInt = 0
    batch: NonNegativeInt = 0
    global_step: NonNegativeInt = 0


class EpochRow(_Record):
    """One metrics.jsonl row (docs/formats.md "metrics.jsonl")."""

    epoch: NonNegativeInt
    heads: dict[str, dict[str, Any]]


class BalancerRecord(_Record):
    name: str
    state: dict[str, Opaque] = Field(default_factory=dict)


class DistributedRecord(_Record):
    world_size: int = Field(1, ge=1)
    micro_batches: int = Field(1, ge=1)


class ThreadsRecord(_Record):
    """The run's thread choice (`edgemtl.core.threads.ThreadChoice.to_dict`); optional: a
    resumed run reuses it, since the thread count changes results in the last bits."""

    threads: int = Field(ge=1)
    workers: int = Field(0, ge=0)
    spin: bool = False
    source: str = "auto"
    facts: dict[str, Any] | None = None


class Checkpoint(_Record):
    """A validated checkpoint. `path` (not a field) names the file it came from."""

    format: Literal["edgemtl-checkpoint"]
    schema_version: StrictInt = Field(ge=1)
    edgemtl_version: str = ""
    recipe: Recipe
    tasks: dict[str, TaskRecord] = Field(min_length=1)
    heads: list[str] = Field(min_length=1)
    model: dict[str, Opaque]
    data: DataRecord
    input: InputRecord
    select: SelectRecord | None = None
    epoch: NonNegativeInt | None = None
    position: Position | None = None
    upsampling: Literal["bilinear", "nearest", "unpool"] | None = None
    metrics: EpochRow | None = None
    extra: Opaque = None
    balancer: BalancerRecord | None = None
    optimizer: dict[str, Opaque] | None = None
    scheduler: Opaque = None
    rng: dict[str, Opaque] | None = None
    amp_scaler: Opaque = None
    distributed: DistributedRecord | None = None
    threads: ThreadsRecord | None = None

    _path: str = PrivateAttr(default="?")

    @model_validator(mode="after")
    def _tasks_consistent(self) -> Checkpoint:
        for key, task in self.tasks.items():
            if task.key != key:
                raise ValueError(f"tasks.{key}.key: is {task.key!r}, expected {key!r}")
        if set(self.tasks) != set(self.recipe.tasks):
            raise ValueError(
                f"tasks: {sorted(self.tasks)} differ from recipe.tasks {sorted(self.recipe.tasks)}"
            )
        return self

    @property
    def path(self) -> str:
        return self._path

    def task_specs(self) -> list[TaskSpec]:
        return [task.spec() for task in self.tasks.values()]

    @property
    def selected_head(self) -> str | None:
        """The head this run selected best.pt by (None when not recorded)."""
        return self.select.head if self.select is not None else None

    @property
    def upsampling_mode(self) -> str:
        """The decoders' upsampling: the top-level record, else the recipe's."""
        return self.upsampling or self.recipe.model.upsampling

    @property
    def method_name(self) -> str:
        """The method the run was trained with. Whether the checkpoint has a head is asked
        of `edgemtl.core.heads.require_checkpoint_head`, where the head rules live."""
        return self.recipe.method.name

    def require(self, *fields: str, purpose: str) -> None:
        """Fail with one line when an optional field `purpose` needs is absent (older writers)."""
        for name in fields:
            if getattr(self, name) is None:
                raise UserError(f"checkpoint {self.path}: field {name}: missing, needed {purpose}")

    def without_tensors(self) -> Checkpoint:
        """A copy holding the facts only (no weights, optimizer or RNG state): cheap to keep."""
        copy = self.model_copy(
            update={
                "model": {},
                "extra": None,
                "optimizer": None,
                "rng": None,
                "scheduler": None,
                "amp_scaler": None,
            }
        )
        copy._path = self._path
        return copy


def _first_error(exc: ValidationError) -> str:
    """ "field <path>: <what>" of the first error (checks across fields name their path first)."""
    err = exc.errors()[0]
    loc = tuple(err.get("loc", ()))
    if loc[:1] == ("recipe",) and len(loc) > 1:
        where = "recipe." + error_location(loc[1:])  # without the method union's tag
    else:
        where = ".".join(str(p) for p in loc)
    message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if err.get("type") not in ("missing", "value_error") and "input" in err:
        message += f" (got {_short(err['input'])})"
    extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"field {where + ': ' if where else ''}{message}{extra}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def checkpoint_from_dict(data: Any, origin: str) -> Checkpoint:
    """Validate a loaded checkpoint; every failure is one `UserError` naming `origin` and the field.

    Raises `UserError` when `data` is not an edgemtl checkpoint (no `format`), its
    `schema_version` is newer than `SCHEMA_VERSION`, or a field is missing or malformed.
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(
            f"checkpoint {origin}: not an edgemtl checkpoint (no format={FORMAT!r} field)"
        )
    version = data.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise UserError(
            f"checkpoint {origin}: schema_version {version} is newer than this edgemtl "
            f"supports ({SCHEMA_VERSION}); upgrade edgemtl"
        )
    try:
        ckpt = Checkpoint.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"checkpoint {origin}: {_first_error(exc)}") from None
    ckpt._path = origin
    return ckpt
