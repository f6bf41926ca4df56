"""Property-based tests (hypothesis) of the parsers that read outside text: recipes and `--set`
values, manifests, tegrastats lines and `jetson_clocks --show`, Taskonomy split files.

Whatever they are fed, they return a value or raise the project's one-line UserError
(at most 300 characters here, where the names in messages are short), never another
exception.
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgemtl.core.config import load_recipe, recipe_from_dict
from edgemtl.core.errors import UserError
from edgemtl.core.manifest import load_manifest, manifest_from_dict
from edgemtl.data.split_files import read_split_file
from edgemtl.deploy.profile.jetson_clocks import clocks_state
from edgemtl.deploy.profile.tegrastats import parse_line
from tests.helpers.cli import REPO
from tests.helpers.toy_bundle import toy_manifest

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASE = yaml.safe_load((REPO / "recipes" / "synthetic.yaml").read_text())


def user_error_or_value(call: Callable[[], Any]) -> Any:
    """`call()`'s value; a UserError must be one short line; anything else fails the test."""
    try:
        return call()
    except UserError as err:
        text = str(err)
        assert "\n" not in text and len(text) <= 300, text
        return err


# Values YAML and JSON can hold: scalars of every type, nested lists and maps.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
RECIPE_KEYS = [
    "name",
    "tasks",
    "tasks.seg",
    "tasks.seg.weight",
    "data",
    "data.kind",
    "data.size",
    "data.mean",
    "data.std",
    "data.synthetic.n_train",
    "data.augment.scale",
    "data.root",
    "model",
    "model.width",
    "model.exits",
    "model.student.smooth",
    "method",
    "method.name",
    "method.lambda",
    "method.teachers",
    "train",
    "train.epochs",
    "train.optimizer",
    "train.optimizer.lr",
    "train.select.head",
    "train.balancer",
    "train.reference",
]


@SETTINGS
@given(key=st.sampled_from(RECIPE_KEYS), value=values)
def test_set_any_value_at_any_key(key: str, value: Any) -> None:
    assignment = f"{key}={yaml.safe_dump(value, default_flow_style=True).strip()}"
    user_error_or_value(lambda: recipe_from_dict(BASE, "r.yaml", [assignment]))


@SETTINGS
@given(assignment=st.text(max_size=200))
def test_set_any_text(assignment: str) -> None:
    user_error_or_value(lambda: recipe_from_dict(BASE, "r.yaml", [assignment]))


@SETTINGS
@given(
    raw=st.dictionaries(
        st.sampled_from(["name", "data", "tasks", "model", "method", "train", "extra"]),
        values,
        max_size=6,
    )
)
def test_any_recipe_mapping(raw: dict[str, Any]) -> None:
    user_error_or_value(lambda: recipe_from_dict(raw, "r.yaml"))


@SETTINGS
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_any_recipe_file(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r.yaml"
        if isinstance(text, str):
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        else:
            path.write_bytes(text)
        user_error_or_value(lambda: load_recipe(path))


# ---- manifests ---------------------------------------------------------------------------

VALID_MANIFEST = toy_manifest("student", 16, 32).to_dict()
VALID_MANIFEST["artifacts"] = [
    {
        "file": "student.fp32.onnx",
        "format": "onnx",
        "precision": "fp32",
        "sha256": "0" * 64,
        "outputs": [{"name": "depth", "task": "depth", "shape": [1, 1, 16, 32], "dtype": "f"}],
    }
]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            found += _paths(child, (*prefix, i))
    return found


MANIFEST_PATHS = [p for p in _paths(VALID_MANIFEST) if p]


@SETTINGS
@given(where=st.sampled_from(MANIFEST_PATHS), value=values)
def test_manifest_any_value_at_any_field(where: tuple[Any, ...], value: Any) -> None:
    data = copy.deepcopy(VALID_MANIFEST)
    node = data
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    result = user_error_or_value(lambda: manifest_from_dict(data, "b/manifest.json"))
    if not isinstance(result, UserError):  # whatever validated is usable as a bundle file list
        for art in result.artifacts:
            assert "/" not in art.file and art.file not in ("", ".", "..")
            assert math.isfinite(result.input.height)


@SETTINGS
@given(data=st.one_of(values, st.binary(max_size=200)))
def test_manifest_any_file(data: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "manifest.json"
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(json.dumps(data))
        user_error_or_value(lambda: load_manifest(folder))


# ---- tegrastats and jetson_clocks --------------------------------------------------------

rail_names = st.from_regex(r"[A-Z][A-Z0-9_]{0,12}", fullmatch=True).filter(
    lambda n: n not in ("RAM", "SWAP", "IRAM", "LFB")
)


@SETTINGS
@given(line=st.text(max_size=300))
def test_tegrastats_any_text(line: str) -> None:
    sample = parse_line(line)
    if sample is not None:
        assert sample.rails and all(math.isfinite(v[0]) for v in sample.rails.values())
        assert sample.board_mw == sample.total(sample.terms)


@SETTINGS
@given(
    rails=st.dictionaries(
        rail_names, st.tuples(st.integers(-5000, 90000), st.integers(-5000, 90000)), min_size=1
    ),
    unit=st.sampled_from(["mW", ""]),
)
def test_tegrastats_rails_read_back(rails: dict[str, tuple[int, int]], unit: str) -> None:
    """Generated rail fields (signed, with or without units) come back exactly."""
    line = "RAM 1/2MB CPU [1%@729] " + " ".join(
        f"{name} {inst}{unit}/{avg}{unit}" for name, (inst, avg) in rails.items()
    )
    sample = parse_line(line)
    assert sample is not None
    assert sample.rails == {name: (float(i), float(a)) for name, (i, a) in rails.items()}
    board = [n for n in ("VDD_IN", "POM_5V_IN", "VIN") if n in rails]
    expected = rails[board[0]][0] if board else sum(i for i, _ in rails.values())
    assert sample.board_mw == expected


@SETTINGS
@given(text=st.text(max_size=400))
def test_jetson_clocks_any_text(text: str) -> None:
    assert clocks_state(text) in ("on", "off", "unknown")


# ---- split files ---------------------------------------------------------------------------


@SETTINGS
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.lists(
            st.lists(
                st.sampled_from(["b1", "id", "train", "val", "1", "0", "", " x "]), max_size=4
            ),
            max_size=6,
        ).map(lambda rows: "\n".join(",".join(r) for r in rows).encode()),
    ),
    split=st.sampled_from(["train", "val", "test"]),
)
def test_split_file_any_content(data: bytes, split: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "s.csv").write_bytes(data)
        result = user_error_or_value(lambda: read_split_file(Path(folder), "s.csv", split))
        if not isinstance(result, UserError):
            assert all(isinstance(b, str) and b for b in result[1])
