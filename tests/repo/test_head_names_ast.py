"""Head names live in `edgemtl/core/heads.py` only, and its rules hold.

The AST walk keeps head-name tuples and comparisons from creeping back into
other modules: a `("teacher", "student")` or `head == "ensemble"` anywhere
else restates a rule that adding a head (e.g. decoder exits) would then have
to find and change. The unit tests pin the rules themselves.
"""

from __future__ import annotations

import ast

import pytest

from edgemtl.core import heads
from edgemtl.core.checkpoint_schema import Checkpoint, checkpoint_from_dict
from edgemtl.core.config import recipe_from_dict
from edgemtl.core.errors import UserError
from tests.helpers.cli import REPO

PACKAGE = REPO / "edgemtl"
HOME = PACKAGE / "core" / "heads.py"
NAMES = set(heads.head_names())


def _is_head_name(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value in NAMES


def offences(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for each head-name collection literal or comparison in `tree`."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(map(_is_head_name, node.elts)):
            found.append((node.lineno, f"{type(node).__name__.lower()} literal with a head name"))
        elif isinstance(node, ast.Compare) and any(
            map(_is_head_name, [node.left, *node.comparators])
        ):
            found.append((node.lineno, "comparison against a head-name literal"))
    return found


def test_the_walk_catches_what_it_should() -> None:
    code = (
        'HEADS = ("teacher", "student")\n'
        'ok = head == "ensemble"\n'
        'also = "student" in heads\n'
        'fine = {"teacher": 1}\n'
        'x: Literal["teacher", "student"]\n'
    )
    assert [line for line, _ in offences(ast.parse(code))] == [1, 2, 3, 5]


def test_no_head_name_literals_outside_core_heads() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == HOME:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        problems += [
            f"{path.relative_to(PACKAGE.parent)}:{line}: {what}" for line, what in offences(tree)
        ]
    assert not problems, "use edgemtl.core.heads instead:\n" + "\n".join(problems)


# ---- the rules ---------------------------------------------------------------------------


def checkpoint(
    trained: list[str],
    method: str = "sd",
    select: str | None = None,
    path: str = "runs/v/best.pt",
    **extra: object,
) -> Checkpoint:
    """A real typed checkpoint (no weights), validated as `load_checkpoint` validates a file."""
    recipe = recipe_from_dict(
        {
            "name": "r",
            "tasks": ["depth"],
            "method": {"name": method},
            "model": {"upsampling": "nearest"},
        }
    )
    raw = {
        "format": "edgemtl-checkpoint",
        "schema_version": 1,
        "recipe": recipe.model_dump(mode="json", by_alias=True),
        "tasks": {"depth": {"key": "depth", "kind": "depth", "channels": 1}},
        "heads": trained,
        "model": {},
        "data": {"kind": "synthetic"},
        "epoch": 3,
        "input": {"shape": ["N", 3, 32, 64], "mean": [0.5] * 3, "std": [0.25] * 3},
        **({"select": {"head": select, "metric": "delta_m"}} if select else {}),
        **extra,
    }
    return checkpoint_from_dict(raw, path)


def test_registry_names_and_kinds() -> None:
    assert heads.head_names() == ("teacher", "student", "ensemble", "exit1", "exit2", "exit3")
    assert [heads.get(n).kind for n in heads.head_names()] == [
        "trained",
        "trained",
        "derived",
        "trained",
        "trained",
        "trained",
    ]
    assert heads.get("ensemble").needs == ("teacher", "student")
    assert heads.get("student").needs == ("student",)
    assert heads.runs_teacher_decoder("teacher") and heads.runs_teacher_decoder("ensemble")
    assert not heads.runs_teacher_decoder("student")
    assert all(heads.runs_teacher_decoder(heads.exit_name(k)) for k in heads.EXIT_STAGES)
    assert [heads.exit_stage(n) for n in ("exit1", "exit3", "exit4", "exitx", "student")] == [
        1,
        3,
        None,
        None,
        None,
    ]
    assert heads.available(["teacher", "exit2"]) == ("teacher", "exit2")


@pytest.mark.parametrize(
    ("trained", "have"),
    [
        (["teacher", "student"], ("teacher", "student", "ensemble")),
        (["student", "teacher"], ("teacher", "student", "ensemble")),
        (["teacher"], ("teacher",)),
        (["student"], ("student",)),
        (["teacher", "student", "ensemble"], ("teacher", "student", "ensemble")),
        ([], ()),
    ],
)
def test_ensemble_exists_exactly_when_both_heads_do(
    trained: list[str], have: tuple[str, ...]
) -> None:
    assert heads.available(trained) == have
    if trained:  # a checkpoint records at least one head
        assert heads.checkpoint_heads(checkpoint(trained)) == have


def test_needs_and_trained_of() -> None:
    assert heads.needs(["ensemble"]) == ("teacher", "student")
    assert heads.needs(["student", "teacher"]) == ("teacher", "student")
    assert heads.trained_of(["ensemble", "student", "exit9"]) == ("student",)


@pytest.mark.parametrize(
    ("have", "selected", "want"),
    [
        (("teacher", "student", "ensemble"), None, "student"),
        (("teacher", "student", "ensemble"), "ensemble", "ensemble"),
        (("teacher", "student", "ensemble"), "teacher", "teacher"),
        (("teacher",), None, "teacher"),
        (("teacher",), "student", "teacher"),  # a selection the checkpoint lacks is ignored
        (("student",), None, "student"),
    ],
)
def test_default_head(have: tuple[str, ...], selected: str | None, want: str) -> None:
    assert heads.default_head(have, selected) == want


def test_checkpoint_default_is_the_run_selection() -> None:
    ckpt = checkpoint(["teacher", "student", "ensemble"], select="teacher")
    assert heads.checkpoint_default_head(ckpt) == "teacher"
    assert heads.checkpoint_head(ckpt, None) == "teacher"
    assert heads.checkpoint_default_head(checkpoint(["teacher", "student"])) == "student"


def test_missing_head_error_names_checkpoint_method_and_heads() -> None:
    ckpt = checkpoint(["teacher"], method="vanilla")
    with pytest.raises(UserError) as info:
        heads.checkpoint_head(ckpt, "student")
    assert str(info.value) == (
        "checkpoint runs/v/best.pt has no student head: it was trained with "
        "method vanilla (heads: teacher)"
    )
    with pytest.raises(UserError, match="has no ensemble head"):
        heads.require_checkpoint_head(ckpt, "ensemble")
    assert heads.checkpoint_head(ckpt, "teacher") == "teacher"


def test_head_value_validation() -> None:
    assert heads.parse_head("ensemble") == "ensemble"
    with pytest.raises(
        UserError,
        match=r"^--head tutor: expected teacher, student, ensemble, exit1, exit2 or exit3$",
    ):
        heads.parse_head("tutor")
    assert heads.parse_head("all", allow_all=True) == "all"
    with pytest.raises(
        UserError, match="expected teacher, student, ensemble, exit1, exit2, exit3 or all"
    ):
        heads.parse_head("tutor", allow_all=True)
    with pytest.raises(
        UserError, match="--head all: expected teacher, student, ensemble, exit1, exit2 or exit3"
    ):
        heads.parse_head("all")
    ckpt = checkpoint(["teacher"], method="vanilla")
    with pytest.raises(UserError, match="--head tutor"):  # the name is checked before presence
        heads.checkpoint_head(ckpt, "tutor")


def test_bundle_holds_one_head() -> None:
    assert heads.bundle_head("b", "student", None) == "student"
    assert heads.bundle_head("b", "student", "student") == "student"
    with pytest.raises(UserError, match="bundle b has no teacher head.*heads: student"):
        heads.bundle_head("b", "student", "teacher")


def test_head_name_field_in_recipes_and_manifests() -> None:
    from edgemtl.core.config import recipe_from_dict

    with pytest.raises(
        UserError,
        match="train.select.head: expected teacher, student, ensemble, exit1, exit2 or exit3",
    ):
        recipe_from_dict({"tasks": ["seg"], "train": {"select": {"head": "tutor"}}}, "r.yaml")
    recipe = recipe_from_dict({"tasks": ["seg"], "train": {"select": {"head": "ensemble"}}})
    assert recipe.train.select.head == "ensemble"


def test_manifest_from_checkpoint_reads_upsampling_one_way() -> None:
    from edgemtl.core.checkpoint_manifest import manifest_from_checkpoint

    ckpt = checkpoint(["teacher", "student", "ensemble"], select="student")
    assert ckpt.upsampling_mode == "nearest"  # recipe.model.upsampling
    unpool = checkpoint(["teacher", "student", "ensemble"], select="student", upsampling="unpool")
    assert unpool.upsampling_mode == "unpool"  # the top-level record first
    manifest = manifest_from_checkpoint(unpool, "x/best.pt", None, checksum=False)
    assert manifest.head == "student" and manifest.upsampling == "unpool"
    assert (manifest.input.height, manifest.input.width) == (32, 64)
    assert manifest.source.checkpoint == "x/best.pt" and manifest.source.epoch == 3
    assert manifest.source.recipe == "r" and manifest.dataset == {"kind": "synthetic", "root": None}
    chosen = manifest_from_checkpoint(ckpt, "x/best.pt", "ensemble", checksum=False)
    assert chosen.head == "ensemble" and chosen.upsampling == "nearest"
