"""The reproduction benchmark's verdict rule and grid shape (benchmarks/reproduce.py)."""

from __future__ import annotations

import importlib.util
import json
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
    # 21 runs per seed for the papers' grid, plus one per torchjd aggregator.
    assert {r.seed for r in runs} == {0, 1, 2} and len(runs) == 3 * (21 + len(rep.AGGREGATOR_RUNS))
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
    aggregators = [r for r in runs if r.key in rep.AGGREGATOR_RUNS]
    assert {r.recipe for r in aggregators} == {"synthetic-vanilla"}
    assert all(r.overrides == [f"train.balancer.name={r.key}"] for r in aggregators)


def test_missing_rows_train_only_what_the_result_lacks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`--missing`: the runs of rows absent from the earlier JSON; the JSON's rows and its
    single-task reference stand in for runs that are not on disk."""
    rep = _module()
    old_keys = {key for _, key, _ in rep.ROWS if key not in rep.AGGREGATOR_RUNS}
    previous = {
        f"{key}/{head}": {"label": label, "run": key, "head": head, "seeds": [], "mean": 0.0}
        for label, key, head in rep.ROWS
        if key in old_keys
    }
    previous["stl/teacher"]["seeds"] = [
        {"seed": s, "metrics": {"depth": {"abs_err": 0.5}}, "delta_m": 0.0} for s in (0, 1, 2)
    ]
    chosen = rep.missing_runs(rep.grid(), previous)
    assert {r.key for r in chosen} == set(rep.AGGREGATOR_RUNS) and len(chosen) == 3 * 12

    # Nothing on disk: the earlier rows come back unchanged.
    def without_best(rows: dict) -> dict:
        return {k: v for k, v in rows.items() if not k.startswith("best-balancer")}

    assert without_best(rep.collect(tmp_path, (0, 1, 2), previous)) == previous
    # One aggregator's runs on disk: its row joins, measured against the JSON's reference.
    for seed in (0, 1, 2):
        folder = rep.Run("upgrad", "", seed).folder(tmp_path)
        folder.mkdir(parents=True)
        final = {"teacher": {"depth": {"abs_err": 0.4}}}
        (folder / "summary.json").write_text(json.dumps({"final": final}))
    rows = rep.collect(tmp_path, (0, 1, 2), previous)
    assert rows["upgrad/teacher"]["mean"] == pytest.approx(20.0)  # 0.5 -> 0.4: +20 %
    assert without_best({k: v for k, v in rows.items() if k != "upgrad/teacher"}) == previous
