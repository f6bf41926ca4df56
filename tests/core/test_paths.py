"""`edgemtl.core.paths`: plain artifact names, folder names from recipe names, output checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgemtl.core.errors import UserError
from edgemtl.core.paths import (
    check_output_dir,
    check_output_file,
    inside,
    name_problem,
    safe_folder_name,
)


@pytest.mark.parametrize(
    "name", ["", ".", "..", "a/b", "../x", "/etc/passwd", "a\\b", "a\x00b", "x" * 256]
)
def test_names_that_are_not_plain(name: str) -> None:
    assert name_problem(name) is not None
    with pytest.raises(UserError, match="not a plain file name"):
        inside("bundle", name, "manifest")


def test_plain_names_resolve_inside(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "outside.onnx").write_text("x")
    assert inside(tmp_path / "b", "m.onnx", "m") == tmp_path / "b" / "m.onnx"
    assert name_problem("student.fp32.onnx") is None and name_problem("é" * 100) is None
    (tmp_path / "b" / "link.onnx").symlink_to(tmp_path / "outside.onnx")
    with pytest.raises(UserError, match="outside"):
        inside(tmp_path / "b", "link.onnx", "m")
    (tmp_path / "b" / "real.onnx").write_text("x")
    (tmp_path / "b" / "alias.onnx").symlink_to("real.onnx")  # a link within the bundle is fine
    assert inside(tmp_path / "b", "alias.onnx", "m").name == "alias.onnx"


def test_safe_folder_names() -> None:
    assert safe_folder_name("synthetic") == "synthetic"
    assert safe_folder_name("nyuv2-sd_v1.2+aug") == "nyuv2-sd_v1.2+aug"
    assert safe_folder_name("../../../etc") == "etc"
    assert safe_folder_name("a b\tc") == "a-b-c"
    assert safe_folder_name("...") == "recipe"


def test_output_checks(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    assert check_output_file(tmp_path / "new" / "deeper" / "r.json", "--json")
    assert check_output_file(tmp_path / "f", "--json")  # replacing a file is fine
    assert check_output_dir(tmp_path / "d", "--out") and check_output_dir(tmp_path / "n", "--out")
    with pytest.raises(UserError, match="is a folder; expected a file path"):
        check_output_file(tmp_path / "d", "--json")
    with pytest.raises(UserError, match="is a file; expected a folder"):
        check_output_dir(tmp_path / "f", "--out")
    with pytest.raises(UserError, match=r"f is a file, not a folder"):
        check_output_dir(tmp_path / "f" / "x" / "y", "--out")
    with pytest.raises(UserError, match=r"unsupported suffix '\.txt' \(expected \.png, \.svg"):
        check_output_file(tmp_path / "p.txt", "--plot", (".png", ".svg"))
    with pytest.raises(UserError, match="not a usable path"):
        check_output_file(str(tmp_path) + "/a\x00b", "--json")
    if not os.access("/proc/sys", os.W_OK):
        with pytest.raises(UserError, match="/proc/sys"):
            check_output_dir("/proc/sys/x", "--out")
