"""Recipes: YAML -> typed, validated config objects, with `--set a.b=c` overrides.

Why pydantic: every unknown key and wrong type must fail with the key path
(`method.lambda: ...`), and later issues add fields without touching a parser.
Deploy side: no torch here.

Why this size: the recipe schema is one tree of sections (every key of
docs/formats.md "Recipes"), and its loader sits beside it to name key paths.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgemtl.core.errors import UserError, excerpt, short
from edgemtl.core.heads import EXIT_STAGES, STUDENT, TEACHER, HeadName, available, exit_name
from edgemtl.core.paths import safe_folder_name
from edgemtl.core.tasks import kind_names

#: Largest recipe (or dataset.yaml) read, in bytes; the shipped recipes are under 4 KiB.
MAX_RECIPE_BYTES = 64 * 1024
#: Longest `--set` assignment, in characters.
MAX_SET_CHARS = 4096


class Section(BaseModel):
    """Base of every recipe section: unknown keys are errors, not silently kept."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SyntheticData(Section):
    n_train: int = Field(512, ge=1)
    n_val: int = Field(128, ge=1)
    seed: int = 0


class AugmentConfig(Section):
    """Training-split augmentation (off by default; eval/val splits are never augmented)."""

    #: Scale-crop factors drawn uniformly per sample; a crop of 1/s of each side is
    #: resized back and depth divided by s. [1.0] = no crop.
    scale: tuple[float, ...] = (1.0,)
    #: Horizontal flip with probability 1/2 (normals' x component negated).
    flip: bool = False
    #: Photometric jitter strength j: brightness, contrast, saturation factors in [1-j, 1+j].
    jitter: float = Field(0.0, ge=0, le=1)

    @field_validator("scale")
    @classmethod
    def _scales_at_least_one(cls, scale: tuple[float, ...]) -> tuple[float, ...]:
        if not scale or any(s < 1.0 or s > 4.0 for s in scale):
            raise ValueError(f"expected a non-empty list of scales in [1, 4], got {list(scale)}")
        return scale

    def enabled(self) -> bool:
        return self.flip or self.jitter > 0 or any(s != 1.0 for s in self.scale)


class DataConfig(Section):
    #: A registered dataset kind (`edgemtl.data.readers.dataset_kinds()`: synthetic, nyuv2,
    #: cityscapes, taskonomy, folder, or one a plugin registers); checked when the data is
    #: opened (`edgemtl.data.registry.dataset_record`), as core cannot see the readers.
    kind: str = Field("synthetic", pattern=r"^[a-z_][a-z0-9_]*$")
    #: Dataset folder. For synthetic data, None means "generate into the cache".
    root: str | None = None
    #: Environment variable that names the root when `root` is not set.
    root_env: str | None = None
    #: Model input size (H, W); both divisible by 16 (four 2x2 pools).
    size: tuple[int, int] = (64, 128)
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    synthetic: SyntheticData = SyntheticData()
    #: DataLoader worker processes; None = chosen per run with the threads
    #: (edgemtl.core.threads: none on CPU, up to 4 beside a GPU).
    workers: int | None = Field(None, ge=0)
    #: Run `data check`'s per-sample checks as training reads (edgemtl/data/checked.py);
    #: false only for a dataset already checked, or to test what stands behind them.
    check: bool = True
    #: Cityscapes: label folder (label_7, label_19, label_2, or label = 7 classes).
    label_folder: str = "label_7"
    #: Taskonomy: split file (relative to root unless absolute); default {root}/splits.csv.
    split_file: str | None = None
    #: Taskonomy folder layout: {building}/{domain}/, {domain}/{building}/, or auto-detected.
    layout: Literal["auto", "building_domain", "domain_building"] = "auto"
    augment: AugmentConfig = AugmentConfig()
    #: Options of a reader a plugin registers (`edgemtl.data.readers.DatasetKind.options`);
    #: the built-in kinds take the keys above instead.
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("size")
    @classmethod
    def _divisible_by_16(cls, size: tuple[int, int]) -> tuple[int, int]:
        if any(s <= 0 or s % 16 for s in size):
            raise ValueError(f"each side must be a positive multiple of 16, got {list(size)}")
        return size

    @field_validator("std")
    @classmethod
    def _positive_std(cls, std: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(s <= 0 for s in std):
            raise ValueError("every std must be > 0")
        return std

    def resolved_root(self) -> str | None:
        if self.root:
            return self.root
        if self.root_env:
            return os.environ.get(self.root_env) or None
        return None


class TaskConfig(Section):
    """Per-task options. The task's kind is its key (seg, depth, normal, keypoints, edges)."""

    weight: float = Field(1.0, ge=0)


class StudentConfig(Section):
    """The Student head's architecture (docs/methods.md "Student kinds").

    A recipe or checkpoint without `model.student` means `paper`, the SD-MTCNN
    Student, so every older checkpoint loads, evaluates and exports unchanged.
    `width`, `upsample`, `smooth` and `shared_stages` shape the `skip` Student (and the
    branches of decoder exits); `paper` ignores them.
    """

    kind: Literal["paper", "skip"] = "paper"
    #: Multiplier on `model.width` for the Student's (and exits') channels only.
    width: float = Field(1.0, gt=0, le=4)
    #: x2 up-stages: ConvTranspose(k2, s2), or conv1x1 then a bilinear Resize.
    upsample: Literal["transpose", "resize"] = "transpose"
    #: Up-stages (1 = coarsest .. 4 = full size) with a conv3x3-BN-ReLU after the encoder-skip
    #: addition; true = all, false = none.
    smooth: tuple[int, ...] = (1, 2, 3, 4)
    #: The first N up-stages are one neck shared by every task, the rest per task
    #: (0: per-task branches; 4: a shared neck with per-task output convs).
    shared_stages: int = Field(0, ge=0, le=4)

    @field_validator("smooth", mode="before")
    @classmethod
    def _smooth_stages(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return (1, 2, 3, 4) if value else ()
        return value

    @field_validator("smooth")
    @classmethod
    def _known_stages(cls, smooth: tuple[int, ...]) -> tuple[int, ...]:
        if any(s not in (1, 2, 3, 4) for s in smooth) or len(set(smooth)) != len(smooth):
            raise ValueError(
                f"expected true, false or distinct up-stages among [1, 2, 3, 4], got {list(smooth)}"
            )
        return tuple(sorted(smooth))


class ModelConfig(Section):
    width: float = Field(1.0, gt=0, le=4)
    upsampling: Literal["bilinear", "nearest", "unpool"] = "bilinear"
    #: Teacher decoder skips: attention-gated (paper), none (Baseline-4) or U-Net concatenation.
    decoder: Literal["attention", "plain", "unet"] = "attention"
    student: StudentConfig = StudentConfig()
    #: Decoder exits (heads exit1..exit3): exit k = Teacher decoder stages 1..k, then the
    #: remaining up-stages with encoder skips and an output conv (docs/methods.md "Exits").
    exits: tuple[int, ...] = ()

    @field_validator("exits")
    @classmethod
    def _exit_stages(cls, exits: tuple[int, ...]) -> tuple[int, ...]:
        if any(k not in EXIT_STAGES for k in exits) or len(set(exits)) != len(exits):
            raise ValueError(
                f"expected distinct stages among {list(EXIT_STAGES)}, got {list(exits)}"
            )
        return tuple(sorted(exits))


class MethodBase(Section):
    tau: float = Field(1.0, gt=0)
    detach_teacher: bool = True


class VanillaMethod(MethodBase):
    """Baseline-1: the Teacher network alone (no Student head)."""

    name: Literal["vanilla"] = "vanilla"


class FeatureDistill(Section):
    """Feature self-distillation (docs/methods.md "Feature distillation"; off at weight 0).

    Each tapped Student up-stage (1 = the coarsest, 1/8 scale; 4 = full
    resolution), and each exit's own stages among them, regresses the Teacher
    decoder's feature at the same scale through a training-only 1x1 adaptor:
    the KD4MTL distance (ECCVW 2020, §3) with the Teacher side detached.
    """

    weight: float = Field(0.0, ge=0)
    taps: tuple[int, ...] = (1, 2, 3, 4)

    @field_validator("taps")
    @classmethod
    def _tap_stages(cls, taps: tuple[int, ...]) -> tuple[int, ...]:
        if not taps or any(t not in (1, 2, 3, 4) for t in taps) or len(set(taps)) != len(taps):
            raise ValueError(f"expected distinct up-stages among [1, 2, 3, 4], got {list(taps)}")
        return tuple(sorted(taps))


class SDMethod(MethodBase):
    """Eq. 5: Teacher and Student task losses + lambda * distillation."""

    name: Literal["sd"] = "sd"
    lambda_: float = Field(1.0, alias="lambda", ge=0)
    feature_distill: FeatureDistill = FeatureDistill()


class SDEnsembleMethod(MethodBase):
    """Eq. 6: task losses on the ensemble of both heads + lambda * distillation."""

    name: Literal["sd_ensemble"] = "sd_ensemble"
    lambda_: float = Field(1.0, alias="lambda", ge=0)
    feature_distill: FeatureDistill = FeatureDistill()


class KDTwoStageMethod(MethodBase):
    """Baseline-3: stage 1 trains the Teacher network (vanilla); stage 2 trains a separate
    Student network (own encoder, fresh init) with task + lambda * KD against the frozen Teacher.
    `teacher: CKPT` skips stage 1."""

    name: Literal["kd_two_stage"] = "kd_two_stage"
    lambda_: float = Field(1.0, alias="lambda", ge=0)
    teacher: str | None = None
    #: Which head of the teacher checkpoint gives the targets.
    teacher_head: HeadName = TEACHER


class AdaptorOptimizer(Section):
    """The adaptors' own optimizer settings (a parameter group of the run's optimizer)."""

    lr: float = Field(0.1, gt=0)
    weight_decay: float = Field(5e-4, ge=0)


class KD4MTLMethod(MethodBase):
    """KD4MTL: frozen single-task checkpoints as feature teachers through per-task adaptors."""

    name: Literal["kd4mtl"] = "kd4mtl"
    #: task key -> checkpoint holding that task (normally a single-task run).
    teachers: dict[str, str]
    adaptor: Literal["linear", "nonlinear", "none"] = "linear"
    layers: Literal["last", "mid+last"] = "last"
    #: Per-task distillation weights (missing tasks weigh 1).
    weights: dict[str, float] = Field(default_factory=dict)
    adaptor_optimizer: AdaptorOptimizer = AdaptorOptimizer()


class BAMMethod(MethodBase):
    """BAM: prediction distillation from single-task teachers with teacher annealing."""

    name: Literal["bam"] = "bam"
    teachers: dict[str, str]
    #: Head of each teacher checkpoint to distil from (None: the head that run selected).
    teacher_head: HeadName | None = None
    #: Share of ground truth at the start and the end of training (linear in between).
    anneal_start: float = Field(0.0, ge=0, le=1)
    anneal_end: float = Field(1.0, ge=0, le=1)


MethodConfig = Annotated[
    Union[VanillaMethod, SDMethod, SDEnsembleMethod, KDTwoStageMethod, KD4MTLMethod, BAMMethod],
    Field(discriminator="name"),
]


#: The balancers' names: the one list. Recipe validation needs it without torch, so it
#: lives here; `edgemtl.training.methods.balancers` registers one class per name and
#: checks at import that the two agree. Loss balancers are edgemtl's own (the papers'
#: baselines); aggregators combine the per-task gradient matrix through torchjd
#: (`edgemtl.training.methods.aggregators`).
LossBalancerName = Literal["equal", "uncertainty", "dwa", "gradnorm", "mgda", "pcgrad"]
AggregatorName = Literal[
    "upgrad",
    "aligned_mtl",
    "cagrad",
    "dualproj",
    "imtl_g",
    "nash_mtl",
    "graddrop",
    "config",
    "gradvac",
    "fairgrad",
    "excess_mtl",
    "rlw",
]
BalancerName = Literal[LossBalancerName, AggregatorName]
LOSS_BALANCER_NAMES: tuple[str, ...] = get_args(LossBalancerName)
AGGREGATOR_NAMES: tuple[str, ...] = get_args(AggregatorName)
BALANCER_NAMES: tuple[str, ...] = (*LOSS_BALANCER_NAMES, *AGGREGATOR_NAMES)


class BalancerConfig(Section):
    """How per-task losses become one update (see edgemtl/training/methods/balancers.py)."""

    name: BalancerName = "equal"
    #: DWA temperature.
    temperature: float = Field(2.0, gt=0)
    #: GradNorm asymmetry alpha and the learning rate of its task weights.
    alpha: float = Field(1.5, ge=0)
    lr: float = Field(0.025, gt=0)
    #: Random draws (PCGrad's task orders; GradDrop, GradVac, RLW) come from this seed
    #: and the step count, the same on every rank and after a resume.
    seed: int = 0
    #: CAGrad: radius scale c of the ball around the mean gradient (Liu et al. 2021: 0.4).
    c: float = Field(0.4, ge=0)
    #: Nash-MTL: the combined gradient's norm is clipped to this (0 = no clipping).
    max_norm: float = Field(1.0, ge=0)
    #: FairGrad: alpha of alpha-fairness (1 = proportional fairness, 2 = min delay).
    fairgrad_alpha: float = Field(1.0, gt=0)


class OptimizerConfig(Section):
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0)


class SchedulerConfig(Section):
    name: Literal["step", "none"] = "step"
    step_size: int = Field(100, ge=1)
    gamma: float = Field(0.5, gt=0)


class SelectConfig(Section):
    head: HeadName | None = None
    metric: str = "delta_m"


class TrainConfig(Section):
    epochs: int = Field(200, ge=1)
    batch_size: int = Field(8, ge=1)
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    seed: int = 0
    select: SelectConfig = SelectConfig()
    #: Cap on validation images per evaluation (None = the whole split).
    eval_limit: int | None = Field(None, ge=1)
    #: Write last.pt every N optimizer steps as well as at each epoch end (0 = epoch ends only).
    checkpoint_every: int = Field(0, ge=0)
    grad_clip: float | None = Field(None, gt=0)
    #: PyTorch intra-op threads; None = chosen per run from the free CPUs (edgemtl.core.threads)
    #: and reused on --resume.
    threads: int | None = Field(None, ge=1)
    #: Chunks per process of each (global) batch: BN statistics and loss means per chunk,
    #: gradients averaged over chunks (gradient accumulation; see docs/deploy.md).
    micro_batches: int = Field(1, ge=1)
    #: Mixed precision of training steps (evaluation stays fp32).
    amp: Literal["off", "bf16", "fp16"] = "off"
    channels_last: bool = False
    #: torch.compile the network (first steps pay the compile time).
    compile: bool = False
    #: SyncBatchNorm across processes under torchrun (CUDA only).
    sync_bn: bool = False
    balancer: BalancerConfig = BalancerConfig()
    #: Δm reference: run folders, summary/eval JSON or checkpoints (merged task-wise);
    #: None = the selected head's first evaluation.
    reference: list[str] | None = None

    @field_validator("reference", mode="before")
    @classmethod
    def _reference_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class Recipe(Section):
    #: Also the run folder's name (`runs/<name>-<time>`), so it is made a safe folder name.
    name: str = "recipe"
    data: DataConfig = DataConfig()
    tasks: dict[str, TaskConfig]
    model: ModelConfig = ModelConfig()
    method: MethodConfig = Field(default_factory=SDMethod)
    train: TrainConfig = TrainConfig()

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        return safe_folder_name(name)

    @field_validator("tasks", mode="before")
    @classmethod
    def _tasks_known(cls, tasks: Any) -> Any:
        if isinstance(tasks, list):  # `tasks: [seg, depth]` shorthand
            odd = [key for key in tasks if not isinstance(key, str)]
            if odd:
                raise ValueError(f"expected a list of task names, got {excerpt(odd[0])}")
            tasks = {key: {} for key in tasks}
        if isinstance(tasks, dict):
            for key, value in list(tasks.items()):
                if key not in kind_names():
                    known = ", ".join(kind_names())
                    raise ValueError(f"unknown task {excerpt(key)} (expected one of: {known})")
                if value is None:
                    tasks[key] = {}
            if not tasks:
                raise ValueError("at least one task is needed")
        return tasks

    @model_validator(mode="after")
    def _exits_need_a_teacher_network(self) -> Recipe:
        if self.model.exits and self.method.name not in EXIT_METHODS:
            raise ValueError(
                f"model.exits: method {self.method.name} cannot train decoder exits "
                f"(exits train with methods {', '.join(EXIT_METHODS)}; kd_two_stage's Student "
                "network has no Teacher decoder to branch from)"
            )
        return self

    @model_validator(mode="after")
    def _select_head_exists(self) -> Recipe:
        heads = recipe_heads(self)
        if self.train.select.head is not None and self.train.select.head not in heads:
            raise ValueError(
                f"train.select.head is {self.train.select.head!r} but method "
                f"{self.method.name} trains only: {', '.join(heads)}"
            )
        return self

    @model_validator(mode="after")
    def _method_tasks_exist(self) -> Recipe:
        for field in ("teachers", "weights"):
            keys = getattr(self.method, field, None) or {}
            unknown = [key for key in keys if key not in self.tasks]
            if unknown:
                raise ValueError(
                    f"method.{field} names task {excerpt(unknown[0])}, which is not in tasks "
                    f"({', '.join(self.tasks)})"
                )
        return self

    def dump(self) -> dict[str, Any]:
        """Plain dict of the resolved recipe (YAML/JSON/checkpoint friendly)."""
        return self.model_dump(mode="json", by_alias=True)


#: Methods whose network also trains decoder exits when `model.exits` asks for them.
EXIT_METHODS: tuple[str, ...] = ("vanilla", "sd", "sd_ensemble")


def recipe_heads(recipe: Recipe) -> tuple[str, ...]:
    """The heads a recipe's method gives: the ones it trains plus the derived ones
    (`edgemtl.core.heads.available`; the methods declare the same in `model_heads`)."""
    exits = tuple(exit_name(k) for k in recipe.model.exits)
    if recipe.method.name in ("vanilla", "kd4mtl", "bam"):
        return available((TEACHER, *exits))
    if recipe.method.name == "kd_two_stage":
        return available((STUDENT,))
    return available((TEACHER, STUDENT, *exits))


def _format_loc(loc: tuple[Any, ...], method_names: set[str]) -> str:
    parts: list[str] = []
    for i, item in enumerate(loc):
        # Discriminated unions insert the tag ("sd") after "method": drop it.
        if i == 1 and loc[0] == "method" and item in method_names:
            continue
        parts.append(short(item))
    return ".".join(parts) or "(top level)"


def _method_names() -> set[str]:
    members = get_args(get_args(MethodConfig)[0])
    return {member.model_fields["name"].default for member in members}


def error_location(loc: tuple[Any, ...]) -> str:
    """A pydantic error location inside a recipe as its key path (`method.lambda`)."""
    return _format_loc(loc, _method_names())


def _validation_message(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = _format_loc(tuple(first["loc"]), _method_names())
    kind = first["type"]
    if kind == "extra_forbidden":
        what = "unknown key"
    elif kind == "union_tag_invalid":
        got = (
            first["input"].get("name")
            if isinstance(first.get("input"), dict)
            else first.get("input")
        )
        what = (
            f"unknown method {excerpt(got)} "
            f"(expected one of: {first.get('ctx', {}).get('expected_tags')})"
        )
    elif kind == "value_error":
        what = str(first["msg"]).removeprefix("Value error, ")
    elif kind == "missing":
        what = "required key is missing"
    else:
        what = f"{first['msg']} (got {excerpt(first.get('input'))})"
    more = len(err.errors()) - 1
    suffix = f" (+{more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"recipe {source}: {loc}: {what}{suffix}"


class _AliasRefused(yaml.MarkedYAMLError):
    """An anchor (`&a`) or alias (`*a`): refused before anything is expanded."""


class _PlainLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader without anchors and aliases.

    No recipe needs them, and nested aliases expand exponentially (a few hundred
    bytes became a 39 MB error line at 7 levels, gigabytes at 9), so the first
    anchor or alias ends parsing.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AliasRefused(
                problem="anchors and aliases (&name, *name) are not allowed",
                problem_mark=event.start_mark,
            )
        return super().compose_node(parent, index)


def parse_yaml(text: str) -> Any:
    """`text` as plain YAML data (safe tags only, no anchors or aliases).

    Raises ValueError with a short reason ("invalid YAML at line L, column C:
    ...", or "nested too deeply"); never echoes the input.
    """
    try:
        return yaml.load(text, Loader=_PlainLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = str(getattr(exc, "problem", None) or exc.__class__.__name__)[:120]
        raise ValueError(f"invalid YAML{where}: {problem}") from None
    except RecursionError:
        raise ValueError("invalid YAML: nested too deeply") from None


def read_yaml_file(path: str | Path, what: str) -> Any:
    """Parse the YAML file at `path` (at most MAX_RECIPE_BYTES); `what` names it in errors
    ("recipe", "dataset spec"). Every failure is a one-line UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {path}: no such file")
    if not path.is_file():
        raise UserError(f"{what} {path}: not a regular file")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_RECIPE_BYTES + 1)
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{what} {path}: cannot read ({exc.__class__.__name__})") from None
    if len(data) > MAX_RECIPE_BYTES:
        raise UserError(
            f"{what} {path}: larger than {MAX_RECIPE_BYTES // 1024} KiB, the limit for "
            "a YAML file edgemtl reads (docs/formats.md)"
        )
    try:
        return parse_yaml(text)
    except ValueError as exc:
        raise UserError(f"{what} {path}: {exc}") from None


def set_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one `a.b.c=value` to a raw recipe dict; the value is parsed as YAML
    (`parse_yaml`: no anchors or aliases), the assignment is at most MAX_SET_CHARS."""
    if len(assignment) > MAX_SET_CHARS:
        raise UserError(f"--set {excerpt(assignment)}: longer than {MAX_SET_CHARS} characters")
    if "=" not in assignment:
        raise UserError(f"--set {excerpt(assignment)}: expected key.path=value")
    path, _, text = assignment.partition("=")
    keys = [k.strip() for k in path.strip().split(".") if k.strip()]
    if not keys:
        raise UserError(f"--set {excerpt(assignment)}: empty key path")
    try:
        value = parse_yaml(text) if text.strip() else None
    except ValueError as exc:
        raise UserError(f"--set {excerpt(path)}: value {excerpt(text)}: {exc}") from None
    node = raw
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = {}
            node[key] = child
        if not isinstance(child, dict):
            where = short(".".join(keys[: depth + 1]))
            raise UserError(f"--set {excerpt(path)}: {where} is not a section")
        node = child
    node[keys[-1]] = value


def recipe_from_dict(
    raw: dict[str, Any], source: str = "<dict>", overrides: list[str] | tuple[str, ...] = ()
) -> Recipe:
    """Validate a raw recipe dict after applying `overrides` (`set_override`); every
    problem is a one-line UserError naming `source` and the key path."""
    try:
        raw = copy.deepcopy(raw)
    except RecursionError:
        raise UserError(f"recipe {source}: nested too deeply") from None
    for assignment in overrides:
        set_override(raw, assignment)
    try:
        return Recipe.model_validate(raw)
    except ValidationError as err:
        raise UserError(_validation_message(source, err)) from None
    except RecursionError:
        raise UserError(f"recipe {source}: nested too deeply") from None


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read, override and validate a recipe file; every failure is a one-line UserError."""
    path = Path(path)
    raw = read_yaml_file(path, "recipe")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(
            f"recipe {path}: expected a mapping with sections data, tasks, model, method, train"
        )
    raw.setdefault("name", path.stem)
    return recipe_from_dict(raw, str(path), overrides)


def dump_yaml(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.dump(), sort_keys=False)
