"""`--reference` means one thing in `eval` and `profile`: the results Δm and deltas are
measured against. Real toy ONNX bundles, real ONNX Runtime, real synthetic scenes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgemtl.core.errors import UserError
from edgemtl.core.options import DataSource, OutputFiles
from edgemtl.deploy.profile.command import profile_command
from edgemtl.evaluation.metrics import delta_m
from edgemtl.evaluation.reference import Measured, resolve_reference
from tests.helpers.cli import run_cli
from tests.helpers.profiling import fast
from tests.helpers.toy_bundle import make_toy_bundle


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, dict]]:
    """A Student and a Teacher toy bundle on the same synthetic split, profiled with accuracy."""
    from edgemtl.data.synthetic import CLASS_NAMES, SynthParams

    root = tmp_path_factory.mktemp("ref")
    params = SynthParams(n_train=1, n_val=4, height=16, width=32, seed=5).to_dict()
    record = {"kind": "synthetic", "params": params}
    student = make_toy_bundle(root / "s", "student", dataset=record, classes=list(CLASS_NAMES))
    teacher = make_toy_bundle(root / "t", "teacher", dataset=record, classes=list(CLASS_NAMES))
    report = root / "plain.json"
    with pytest.MonkeyPatch.context() as patch:  # the scenes render into this module's cache
        patch.setenv("EDGEMTL_CACHE", str(root / "cache"))
        options = fast(accuracy=True, output=OutputFiles(json=str(report)))
        profile_command([student, teacher], options)
        yield student, teacher, json.loads(report.read_text())


def _scores(result: dict, label: str) -> dict:
    art = next(a for a in result["artifacts"] if a["label"] == label)
    return art["heads"][art["head"]]


def test_profiled_artifact_by_label_or_path(scored: tuple[Path, Path, dict]) -> None:
    student, teacher, plain = scored
    for name in ("teacher fp32 onnx", str(teacher), str(teacher / "teacher.fp32.onnx")):
        result = profile_command([student, teacher], fast(accuracy=True, reference=[name]))
        mine, theirs = _scores(result, "student fp32 onnx"), _scores(result, "teacher fp32 onnx")
        art = result["artifacts"][0]
        assert art["reference"] == "teacher fp32 onnx", name
        assert art["deltas"]["delta_m"] == pytest.approx(delta_m(mine, theirs))
        seg_delta = mine["seg"]["miou"] - theirs["seg"]["miou"]
        assert art["deltas"]["seg"]["miou"] == pytest.approx(seg_delta)
        assert result["artifacts"][1]["deltas"]["delta_m"] == pytest.approx(0.0)
        assert result["conditions"]["reference"] == [name]
    # The same numbers as the plain run: a reference changes deltas, not scores.
    assert _scores(result, "student fp32 onnx") == _scores(plain, "student fp32 onnx")


def test_stored_results_as_profile_reference(
    scored: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    student, _, plain = scored
    theirs = _scores(plain, "teacher fp32 onnx")
    eval_json = tmp_path / "eval.json"
    eval_json.write_text(json.dumps({"heads": {"teacher": theirs}}))
    result = profile_command([student], fast(accuracy=True, reference=[str(eval_json)]))
    art = result["artifacts"][0]
    assert art["reference"] == str(eval_json)
    assert art["deltas"]["delta_m"] == pytest.approx(delta_m(art["heads"]["student"], theirs))


def test_profile_json_is_a_source(scored: tuple[Path, Path, dict], tmp_path: Path) -> None:
    *_, plain = scored
    report = tmp_path / "p.json"
    report.write_text(json.dumps(plain))
    teacher = _scores(plain, "teacher fp32 onnx")
    got = resolve_reference([f"{report}#teacher fp32 onnx"])
    assert got.metrics == {t: m for t, m in teacher.items() if isinstance(m, dict)}
    assert resolve_reference([f"{report}#teacher"]).metrics == got.metrics  # a head also names it
    with pytest.raises(UserError, match="several scored artifacts .*name one as"):
        resolve_reference([str(report)])
    with pytest.raises(UserError, match="no scored artifact labelled 'ensemble'"):
        resolve_reference([f"{report}#ensemble"])


def test_measured_wins_and_sources_merge_task_wise(tmp_path: Path) -> None:
    seg_only = tmp_path / "seg.json"
    seg_only.write_text(json.dumps({"seg": {"miou": 10.0}}))
    measured = [
        Measured(
            "teacher fp32 onnx",
            (tmp_path.resolve(),),
            {"seg": {"miou": 40.0}, "depth": {"abs_err": 0.5}, "delta_m": 1.0},
        )
    ]
    got = resolve_reference(["teacher fp32 onnx", str(seg_only)], measured)
    assert got.metrics == {"seg": {"miou": 40.0}, "depth": {"abs_err": 0.5}}
    assert got.label == f"teacher fp32 onnx, {seg_only}"
    got = resolve_reference([str(seg_only), str(tmp_path)], measured)  # by path; first source wins
    assert got.metrics == {"seg": {"miou": 10.0}, "depth": {"abs_err": 0.5}}


def test_a_model_that_is_not_profiled_is_not_results(scored: tuple[Path, Path, dict]) -> None:
    student, teacher, _ = scored
    with pytest.raises(UserError, match=r"reference .*: a model, not results: profile it"):
        profile_command(
            [student], fast(accuracy=True, data=DataSource(limit=2), reference=[str(teacher)])
        )
    with pytest.raises(UserError, match="a model, not results"):
        resolve_reference([str(teacher / "teacher.fp32.onnx")])


def test_cli_reference_is_repeatable_and_recorded(
    scored: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    student, teacher, _ = scored
    seg_only = tmp_path / "seg.json"
    seg_only.write_text(json.dumps({"seg": {"miou": 1.0, "pixel_acc": 1.0}}))
    out = tmp_path / "r.json"
    proc = run_cli(
        "profile",
        str(student),
        str(teacher),
        "--accuracy",
        "-n",
        "2",
        "--rounds",
        "1",
        "--warmup",
        "1",
        "--warmup-s",
        "0",
        "--idle",
        "0",
        "--no-power",
        "--threads",
        "1",
        "--reference",
        str(seg_only),
        "--reference",
        "teacher fp32 onnx",
        "--json",
        str(out),
        "--quiet",
    )  # EDGEMTL_CACHE: the fixture's, inherited
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["conditions"]["reference"] == [str(seg_only), "teacher fp32 onnx"]
    art = result["artifacts"][0]
    assert art["reference"] == f"{seg_only}, teacher fp32 onnx"
    teacher_depth = _scores(result, "teacher fp32 onnx")["depth"]
    want = {"seg": {"miou": 1.0, "pixel_acc": 1.0}, "depth": teacher_depth}  # seg from the first
    assert art["deltas"]["delta_m"] == pytest.approx(delta_m(art["heads"]["student"], want))
