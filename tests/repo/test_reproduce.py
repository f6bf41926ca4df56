"""The reproduction benchmark's verdict rule and grid shape (benchmarks/reproduce.py)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.helpers.cli import REPO


def _module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("reproduce", REPO / "benchmarks" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["reproduce"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_claim_verdicts_need_a_gap_over_two_std() -> None:
    rep = _module()
    rows = {
        key: {"label": key, "mean": 0.0, "std": 1.0}
        for key in [f"{a[0]}/{a[1]}" for _, _, a, _ in rep.CLAIMS]
        + [f"{b[0]}/{b[1]}" for _, _, _, b in rep.CLAIMS]
    }
    rows["sd/teacher"] = {
        "label": "sd",
        "mean": 2.5,
        "std": 1.0,
    }  # vs vanilla 0 ± 1: gap 2.5 > 2 -> reproduced
    rows["lambda0/teacher"] = {
        "label": "l0",
        "mean": 1.0,
        "std": 0.5,
    }  # gap 1.5 < 2 x 1.0 -> inconclusive
    rows["no-attention/teacher"] = {
        "label": "na",
        "mean": 4.0,
        "std": 0.2,
    }  # gap -1.5, margin 2 -> inconclusive
    rows["kd-two-stage/student"] = {
        "label": "kd",
        "mean": 3.0,
        "std": 0.1,
    }  # sd student 0 ± 1: gap -3 -> contradicted
    del rows["bam/teacher"]
    verdicts = {v["claim"]: v for v in rep.judge(rows)}
    assert verdicts["Eq. 5 Teacher beats Baseline-1 (vanilla)"]["verdict"] == "reproduced"
    assert verdicts["Eq. 5 Teacher beats Baseline-1 (vanilla)"]["gap"] == pytest.approx(2.5)
    assert verdicts["Eq. 5 Teacher beats Baseline-2 Teacher (λ = 0)"]["verdict"] == "inconclusive"
    assert verdicts["Eq. 5 Teacher beats Baseline-4 (no attention)"]["verdict"] == "inconclusive"
    assert (
        verdicts["Eq. 5 Student beats Baseline-3 (two-stage KD Student)"]["verdict"]
        == "contradicted"
    )
    assert verdicts["KD4MTL beats BAM"]["verdict"] == "not run"


def test_cpu_grid_has_three_seeds_and_every_method() -> None:
    rep = _module()
    runs = rep.grid()
    assert {r.seed for r in runs} == {0, 1, 2} and len(runs) == 63
    assert {r.recipe for r in runs} >= {
        "synthetic",
        "synthetic-kd4mtl",
        "synthetic-bam",
        "synthetic-kd-two-stage",
        "synthetic-mgda",
        "synthetic-pcgrad",
        "synthetic-gradnorm",
        "synthetic-dwa",
        "synthetic-uncertainty",
        "synthetic-unet",
        "synthetic-no-attention",
    }
    assert all((REPO / "recipes" / f"{r.recipe}.yaml").is_file() for r in runs)
