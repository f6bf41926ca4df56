"""Heads: their names and every rule about them, in one place.

A *trained* head owns parameters: the Teacher decoder or the Student head of
each task (SD-MTCNN, BMVC 2020; docs/methods.md). A *derived* head has none:
it combines the outputs of the trained heads it is built from, so a network,
checkpoint or bundle-to-be has it exactly when it has all of those (the
ensemble, Eq. 6, exists when both Teacher and Student do).

Why one module: commands, the trainer, the network and export all ask "which
heads are there, which is the default, is this name valid"; answering here
keeps them consistent, and a new head (e.g. decoder exits) is a new `Head`
record in `REGISTRY` and nothing else. Torch-free; checkpoints are read through
`CheckpointFacts`, which the typed `Checkpoint` that
`edgemtl.training.checkpoint.load_checkpoint` returns satisfies (docs/formats.md
"Checkpoint").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

from edgemtl.core.errors import UserError

TEACHER = "teacher"
STUDENT = "student"
ENSEMBLE = "ensemble"
#: Teacher decoder stages after which a decoder exit can branch (`model.exits`).
EXIT_STAGES: tuple[int, ...] = (1, 2, 3)
_EXIT_PREFIX = "exit"


def exit_name(stage: int) -> str:
    """The head of the decoder exit after Teacher decoder stage `stage` (1..3): "exit<stage>"."""
    return f"{_EXIT_PREFIX}{stage}"


def exit_stage(name: str) -> int | None:
    """The Teacher decoder stage an exit head branches after; None for any other head."""
    if name.startswith(_EXIT_PREFIX) and name[len(_EXIT_PREFIX) :].isdigit():
        stage = int(name[len(_EXIT_PREFIX) :])
        return stage if stage in EXIT_STAGES else None
    return None


#: Not a head: `edgemtl eval --head all` scores every head a checkpoint has.
ALL = "all"


@dataclass(frozen=True)
class Head:
    """One head: what it is and what it is built from.

    `built_from`: for a derived head, the trained heads it combines (empty for
    a trained head). `teacher_decoder`: its graph runs (part of) the Teacher
    decoder, so with `upsampling: unpool` it holds MaxUnpool, which TensorRT
    cannot parse (docs/export.md).
    """

    name: str
    kind: Literal["trained", "derived"]
    built_from: tuple[str, ...]
    teacher_decoder: bool
    summary: str

    @property
    def needs(self) -> tuple[str, ...]:
        """The trained heads whose outputs this head is computed from."""
        return self.built_from if self.kind == "derived" else (self.name,)


#: Every head, in the order tables, listings and help texts use.
REGISTRY: dict[str, Head] = {
    head.name: head
    for head in (
        Head(TEACHER, "trained", (), True, "the Teacher decoder of each task"),
        Head(STUDENT, "trained", (), False, "the light Student head of each task"),
        Head(ENSEMBLE, "derived", (TEACHER, STUDENT), True, "Teacher and Student combined (Eq. 6)"),
        *(
            Head(
                exit_name(k),
                "trained",
                (),
                True,
                f"decoder exit: Teacher decoder stages 1-{k}, then a light skip branch",
            )
            for k in EXIT_STAGES
        ),
    )
}
#: The default head when a run selected none: the first of these that exists.
DEFAULT_ORDER: tuple[str, ...] = (STUDENT, TEACHER)


def head_names() -> tuple[str, ...]:
    """Every known head name, in registry order."""
    return tuple(REGISTRY)


def get(name: str) -> Head:
    """The `Head` record; KeyError for an unknown name (validate user input with `parse_head`)."""
    return REGISTRY[name]


def _ordered(names: Iterable[str]) -> tuple[str, ...]:
    wanted = set(names)
    return tuple(name for name in REGISTRY if name in wanted)


def trained_of(heads: Iterable[str]) -> tuple[str, ...]:
    """The trained heads among `heads` (unknown names dropped), in registry order."""
    return tuple(name for name in _ordered(heads) if REGISTRY[name].kind == "trained")


def available(trained: Iterable[str]) -> tuple[str, ...]:
    """Every head a model with these trained heads can produce: the trained ones plus each
    derived head whose `built_from` heads are all there, in registry order."""
    have = set(trained_of(trained))
    return tuple(name for name, head in REGISTRY.items() if have.issuperset(head.needs))


def needs(heads: Iterable[str]) -> tuple[str, ...]:
    """The trained heads that must run to produce `heads` (registry order)."""
    return _ordered(need for name in heads for need in REGISTRY[name].needs)


def runs_teacher_decoder(name: str) -> bool:
    """Whether the head's graph runs the Teacher decoder (MaxUnpool under unpool upsampling)."""
    return REGISTRY[name].teacher_decoder


def default_head(heads: Sequence[str], selected: str | None = None) -> str:
    """The head a command uses when none is named.

    The run's selection head (`train.select.head` as the checkpoint records it)
    when it is one of `heads`, else the first of `DEFAULT_ORDER` present
    (Student when trained, else Teacher). Used by export, profile, predict and
    the trainer's selection default.
    """
    if selected is not None and selected in heads:
        return selected
    for name in DEFAULT_ORDER:
        if name in heads:
            return name
    return heads[0] if heads else DEFAULT_ORDER[-1]


# ---- user input --------------------------------------------------------------------------


def choices(extra: Sequence[str] = ()) -> str:
    """Readable list of valid values, e.g. "teacher, student or ensemble" (for errors and help)."""
    items = [*head_names(), *extra]
    return ", ".join(items[:-1]) + " or " + items[-1] if len(items) > 1 else items[0]


def parse_head(value: str, flag: str = "--head", allow_all: bool = False) -> str:
    """`value` when it names a head (or is `all` and `allow_all`); else a one-line UserError."""
    if value in REGISTRY or (allow_all and value == ALL):
        return value
    raise UserError(f"{flag} {value}: expected {choices((ALL,) if allow_all else ())}")


def _known(value: str) -> str:
    if value not in REGISTRY:
        raise ValueError(f"expected {choices()} (got {value!r})")
    return value


class _KnownHead:
    """Pydantic marker: a str that must name a registered head. pydantic is imported only
    when a model using it is built, so `import edgemtl.core.heads` stays light (the CLI)."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(_known, handler(str))


#: A head name as a pydantic field (recipes, manifests): validated against the registry.
HeadName = Annotated[str, _KnownHead]


def missing_message(head: str, have: Sequence[str], owner: str, why: str = "") -> str:
    """ "<owner> has no <head> head<why> (heads: ...)": the one wording for a missing head."""
    return f"{owner} has no {head} head{why} (heads: {', '.join(have) or 'none'})"


def require(head: str, have: Sequence[str], owner: str, why: str = "") -> None:
    """UserError (`missing_message`) unless `head` is one of `have`."""
    if head not in have:
        raise UserError(missing_message(head, have, owner, why))


# ---- checkpoints and bundles ---------------------------------------------------------------


class CheckpointFacts(Protocol):
    """What the head rules read from a checkpoint: the typed
    `edgemtl.core.checkpoint_schema.Checkpoint` (docs/formats.md "Checkpoint") has all of it.
    A protocol, not that class, because the schema imports the recipe model, which imports
    this module (no import cycle, and no pydantic at CLI start)."""

    @property
    def heads(self) -> Sequence[str]:
        """The heads the run recorded (`heads` field)."""

    @property
    def selected_head(self) -> str | None:
        """The head best.pt was selected by (`select.head`), None when not recorded."""

    @property
    def method_name(self) -> str:
        """The method the run was trained with (`recipe.method.name`)."""

    @property
    def path(self) -> str:
        """The file the checkpoint was read from."""


def checkpoint_heads(ckpt: CheckpointFacts) -> tuple[str, ...]:
    """The heads a checkpoint can produce: its trained heads plus the derived ones."""
    return available(ckpt.heads)


def checkpoint_default_head(ckpt: CheckpointFacts) -> str:
    """`default_head` of a checkpoint, with the run's recorded selection head."""
    return default_head(checkpoint_heads(ckpt), ckpt.selected_head)


def require_checkpoint_head(ckpt: CheckpointFacts, head: str) -> None:
    """UserError naming the checkpoint, the head and the method it was trained with, e.g.
    "checkpoint runs/v/best.pt has no student head: it was trained with method vanilla
    (heads: teacher)". The one check every reader of a checkpoint head goes through."""
    require(
        head,
        checkpoint_heads(ckpt),
        f"checkpoint {ckpt.path}",
        f": it was trained with method {ckpt.method_name}",
    )


def checkpoint_head(ckpt: CheckpointFacts, head: str | None, flag: str = "--head") -> str:
    """The head a command runs from a checkpoint: `head` validated and required, or the default."""
    if head is None:
        head = checkpoint_default_head(ckpt)
    else:
        parse_head(head, flag)
    require_checkpoint_head(ckpt, head)
    return head


def bundle_head(bundle: Any, manifest_head: str, head: str | None, flag: str = "--head") -> str:
    """The head of an export bundle (it holds exactly one); `head`, when given, must be it."""
    if head is not None:
        parse_head(head, flag)
        require(
            head,
            (manifest_head,),
            f"bundle {bundle}",
            ": a bundle holds one head; export that one from its checkpoint",
        )
    return manifest_head
