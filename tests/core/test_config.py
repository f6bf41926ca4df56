"""Recipe loading, overrides and validation errors (one line naming the key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgemtl.core.config import load_recipe, recipe_from_dict, recipe_heads, set_override
from edgemtl.core.errors import UserError
from tests.helpers.cli import REPO

RECIPES = sorted((REPO / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_shipped_recipe_validates(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.name == path.stem or recipe.name
    assert recipe.tasks


def test_paper_recipes_carry_the_paper_settings() -> None:
    expected_batch = {"cityscapes": 8, "nyuv2": 2, "taskonomy": 4}
    for name, batch in expected_batch.items():
        recipe = load_recipe(REPO / "recipes" / f"{name}.yaml")
        assert recipe.train.optimizer.name == "adam" and recipe.train.optimizer.lr == 1e-4
        assert recipe.train.epochs == 200 and recipe.train.batch_size == batch
        assert recipe.train.scheduler.step_size == 100 and recipe.train.scheduler.gamma == 0.5
        assert recipe.method.lambda_ == 1.0  # type: ignore[union-attr]
        assert recipe.model.width == 1.0
    assert load_recipe(REPO / "recipes" / "taskonomy.yaml").data.size == (256, 256)
    assert list(load_recipe(REPO / "recipes" / "taskonomy.yaml").tasks) == [
        "seg",
        "depth",
        "normal",
        "keypoints",
        "edges",
    ]


def test_set_overrides_parse_yaml_values_and_nest() -> None:
    raw: dict = {"tasks": ["seg"]}
    set_override(raw, "train.epochs=3")
    set_override(raw, "data.size=[32, 64]")
    set_override(raw, "method={name: sd, lambda: 0}")
    recipe = recipe_from_dict(raw)
    assert recipe.train.epochs == 3
    assert recipe.data.size == (32, 64)
    assert recipe.method.lambda_ == 0.0  # type: ignore[union-attr]
    assert recipe_heads(recipe) == ("teacher", "student", "ensemble")


@pytest.mark.parametrize(
    ("raw", "overrides", "message"),
    [
        (
            {"tasks": ["seg"], "method": {"name": "sd", "lamda": 1}},
            [],
            "recipe r.yaml: method.lamda: unknown key",
        ),
        (
            {"tasks": ["seg"]},
            ["train.epochs=many"],
            "recipe r.yaml: train.epochs: Input should be a valid integer",
        ),
        (
            {"tasks": ["seg"]},
            ["train.optimizer.lr=-1"],
            "recipe r.yaml: train.optimizer.lr: Input should be greater than 0",
        ),
        (
            {"tasks": ["sag"]},
            [],
            "recipe r.yaml: tasks: unknown task 'sag' (expected one of: seg, depth, normal, "
            "keypoints, edges)",
        ),
        (
            {"tasks": ["seg"], "method": {"name": "magic"}},
            [],
            "recipe r.yaml: method: unknown method 'magic'",
        ),
        (
            {"tasks": ["seg"]},
            ["data.size=[60,128]"],
            "recipe r.yaml: data.size: each side must be a positive multiple of 16",
        ),
        ({}, [], "recipe r.yaml: tasks: required key is missing"),
        ({"tasks": ["seg"], "trian": {}}, [], "recipe r.yaml: trian: unknown key"),
        (
            {"tasks": ["seg"], "method": {"name": "vanilla"}},
            ["train.select.head=student"],
            "train.select.head is 'student' but method vanilla trains only: teacher",
        ),
    ],
)
def test_validation_errors_name_the_key(raw: dict, overrides: list[str], message: str) -> None:
    with pytest.raises(UserError) as info:
        recipe_from_dict(raw, "r.yaml", overrides)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"recipe .*missing.yaml: no such file"):
        load_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [seg\nmodel: {width: 1}\n")
    with pytest.raises(UserError, match=r"recipe .*bad.yaml: invalid YAML at line \d+, column \d+"):
        load_recipe(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(UserError, match="expected a mapping"):
        load_recipe(listy)
    with pytest.raises(UserError, match="expected key.path=value"):
        load_recipe(REPO / "recipes" / "synthetic.yaml", ["train.epochs"])
