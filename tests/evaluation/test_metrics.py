"""Metrics against numbers worked by hand (the working is in the comments)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from edgemtl.core.errors import UserError
from edgemtl.evaluation.metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    AbsErrMetric,
    DepthMetric,
    MetricSet,
    NormalMetric,
    SegMetric,
    TaskMetric,
    delta_m,
    metric_for,
)


def _normals(vectors: list[tuple[float, float, float]]) -> np.ndarray:
    """A row of pixel vectors -> (1, 3, 1, W) channels-first array."""
    return np.asarray(vectors, dtype=np.float64).T.reshape(1, 3, 1, len(vectors))


# --- segmentation -----------------------------------------------------------


def test_seg_ignore_and_absent_class() -> None:
    # C = 3. Pixels (target, pred):
    #   (0,0) (0,1) (1,1) / (1,0) (-1 ignored, pred 2) (5 >= C ignored, pred 2)
    # Confusion (rows target, cols pred): row0 = [1,1,0], row1 = [1,1,0], row2 = 0.
    # diag = [1,1,0]; union_c = row + col - diag = [2+2-1, 2+2-1, 0] = [3,3,0].
    # Class 2 is predicted only on ignored pixels -> union 0 -> left out of mIoU
    # (counting it as IoU 0 would give 22.22).  mIoU = (1/3 + 1/3)/2 = 33.333 %.
    # pixel_acc = diag.sum / valid = 2 / 4 = 50 %.
    target = np.array([[[0, 0, 1], [1, -1, 5]]])
    pred = np.array([[[0, 1, 1], [0, 2, 2]]])
    m = SegMetric(3)
    m.update(pred, target)
    out = m.compute()
    assert out["miou"] == pytest.approx(100.0 / 3.0, abs=1e-12)
    assert out["pixel_acc"] == pytest.approx(50.0, abs=1e-12)
    assert list(out) == ["miou", "pixel_acc"]


def test_seg_float_targets_like_nyuv2() -> None:
    # NYUv2 stores labels as float with -1 ignore; NaN is ignored too.
    # Valid pixels (t, p): (2,2) (0,1). C = 3.
    # IoU0 = 0/(1+0-0) = 0; IoU1 = 0/(0+1-0) = 0; IoU2 = 1/1 = 1 -> mIoU = 33.333 %.
    # pixel_acc = 1/2 = 50 %.
    target = np.array([[[2.0, -1.0, 0.0, np.nan]]])
    pred = np.array([[[2, 0, 1, 1]]], dtype=np.int64)
    m = SegMetric(3)
    m.update(pred, target)
    assert m.compute() == pytest.approx({"miou": 100.0 / 3.0, "pixel_acc": 50.0})


def test_seg_whole_split_differs_from_mean_of_batches() -> None:
    # C = 2. Batch A: t = [0,0,0,0], p = [0,0,0,1]: row0 = [3,1].
    #   IoU0 = 3/(4+3-3) = 0.75, IoU1 = 0/(0+1-0) = 0 -> mIoU_A = 37.5 %.
    # Batch B: t = [1,1], p = [1,1]: IoU1 = 1 (class 0 union 0, left out) -> mIoU_B = 100 %.
    # Mean of batch values = 68.75 %.
    # Whole split: row0 = [3,1], row1 = [0,2]; IoU0 = 3/(4+3-3) = 0.75,
    #   IoU1 = 2/(2+3-2) = 2/3 -> mIoU = (0.75 + 0.6667)/2 = 70.8333 %.
    # pixel_acc: A = 75 %, B = 100 % (mean 87.5 %); whole = 5/6 = 83.333 %.
    a_t, a_p = np.array([[[0, 0, 0, 0]]]), np.array([[[0, 0, 0, 1]]])
    b_t, b_p = np.array([[[1, 1]]]), np.array([[[1, 1]]])
    per_batch = []
    for t, p in ((a_t, a_p), (b_t, b_p)):
        single = SegMetric(2)
        single.update(p, t)
        per_batch.append(single.compute()["miou"])
    assert per_batch == pytest.approx([37.5, 100.0])
    whole = SegMetric(2)
    whole.update(a_p, a_t)
    whole.update(b_p, b_t)
    out = whole.compute()
    assert out["miou"] == pytest.approx(70.8333333333, abs=1e-9)
    assert out["pixel_acc"] == pytest.approx(83.3333333333, abs=1e-9)
    assert out["miou"] != pytest.approx(np.mean(per_batch))


def test_seg_bad_inputs() -> None:
    with pytest.raises(UserError, match="outside"):
        SegMetric(2).update(np.array([[[0, 2]]]), np.array([[[0, 1]]]))
    with pytest.raises(UserError, match="shape"):
        SegMetric(2).update(np.zeros((1, 2, 2), dtype=int), np.zeros((1, 2, 3), dtype=int))
    with pytest.raises(UserError, match="integer"):
        SegMetric(2).update(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)))
    with pytest.raises(UserError, match="num_classes"):
        SegMetric(0)
    # A predicted out-of-range label on an ignored pixel is not an error.
    m = SegMetric(2)
    m.update(np.array([[[7, 1]]]), np.array([[[-1, 1]]]))
    assert m.compute() == {"miou": 100.0, "pixel_acc": 100.0}


# --- depth ------------------------------------------------------------------


def test_depth_valid_pixels_only() -> None:
    # target = [[2, 0, 4], [1, -1, nan]] -> valid (target > 0): 2, 4, 1.
    # pred   = [[3, 5, 2], [1,  7,   9]]
    # |p-g| = 1, 2, 0 -> abs_err = 3/3 = 1.0
    # |p-g|/g = 1/2, 2/4, 0/1 = 0.5 + 0.5 + 0 -> rel_err = 1/3.
    target = np.array([[[[2.0, 0.0, 4.0], [1.0, -1.0, np.nan]]]])
    pred = np.array([[[[3.0, 5.0, 2.0], [1.0, 7.0, 9.0]]]])
    m = DepthMetric()
    m.update(pred, target)
    assert m.compute() == pytest.approx({"abs_err": 1.0, "rel_err": 1.0 / 3.0})


def test_depth_whole_split_differs_from_mean_of_batches() -> None:
    # Batch A: g = [1], p = [2]: abs = 1, rel = 1.
    # Batch B: g = [2, 2, 2], p = [2, 2, 2]: abs = 0, rel = 0.
    # Mean of batch means: abs = 0.5. Whole split: 1 / 4 pixels = 0.25 (rel too).
    m = DepthMetric()
    m.update(np.array([[[[2.0]]]]), np.array([[[[1.0]]]]))
    m.update(np.full((1, 1, 1, 3), 2.0), np.full((1, 1, 1, 3), 2.0))
    assert m.compute() == pytest.approx({"abs_err": 0.25, "rel_err": 0.25})


# --- normals ----------------------------------------------------------------


def test_normal_known_angles() -> None:
    # Five valid pixels (pred never unit; one target not unit) plus one zero target:
    #   g=(1,0,0) p=(2,0,0)              -> 0 deg,   cos 1
    #   g=(1,0,0) p=2(cos20, sin20, 0)   -> 20 deg,  cos 0.9396926208
    #   g=(1,0,0) p=(3,3,0)              -> 45 deg,  cos 0.7071067812
    #   g=(0,2,0) p=(5,0,0)              -> 90 deg,  cos 0
    #   g=(1,0,0) p=(-2,0,0)             -> 180 deg, cos -1
    #   g=(0,0,0) p=(1,2,3)              -> ignored
    # mean = (0+20+45+90+180)/5 = 335/5 = 67; median = 45 (3rd of 5)
    # within 11.25: {0} -> 1/5 = 20 %; within 22.5: {0,20} = 40 %; within 30: 40 %
    # cosine = (1 + 0.9396926208 + 0.7071067812 + 0 - 1)/5 = 1.6467994020/5 = 0.3293598804
    c, s = math.cos(math.radians(20)), math.sin(math.radians(20))
    g = _normals([(1, 0, 0), (1, 0, 0), (1, 0, 0), (0, 2, 0), (1, 0, 0), (0, 0, 0)])
    p = _normals([(2, 0, 0), (2 * c, 2 * s, 0), (3, 3, 0), (5, 0, 0), (-2, 0, 0), (1, 2, 3)])
    m = NormalMetric()
    m.update(p, g)
    out = m.compute()
    assert list(out) == list(METRICS["normal"])
    assert out["mean_deg"] == pytest.approx(67.0, abs=1e-9)
    assert out["median_deg"] == pytest.approx(45.0, abs=0.001)  # documented histogram precision
    assert out["within_11_25"] == pytest.approx(20.0)
    assert out["within_22_5"] == pytest.approx(40.0)
    assert out["within_30"] == pytest.approx(40.0)
    assert out["cosine"] == pytest.approx(0.3293598804, abs=1e-9)


def test_normal_median_interpolation_literal() -> None:
    # Angles {0, 90}: 0 falls in bin [0, 0.001), 90 in bin [90, 90.001).
    # Each order statistic is placed at its rank's middle inside its bin:
    # 0.0005 and 90.0005; even count -> median = (0.0005 + 90.0005)/2 = 45.0005.
    m = NormalMetric()
    m.update(_normals([(1, 0, 0), (0, 1, 0)]), _normals([(1, 0, 0), (1, 0, 0)]))
    assert m.compute()["median_deg"] == pytest.approx(45.0005, abs=1e-9)
    # 180 degrees lands in the last bin [179.999, 180) -> 179.9995.
    m = NormalMetric()
    m.update(_normals([(-1, 0, 0)]), _normals([(1, 0, 0)]))
    assert m.compute()["median_deg"] == pytest.approx(179.9995, abs=1e-9)
    # A zero prediction points nowhere: 90 degrees, cosine 0.
    m = NormalMetric()
    m.update(_normals([(0, 0, 0)]), _normals([(0, 0, 1)]))
    assert m.compute()["mean_deg"] == pytest.approx(90.0)
    assert m.compute()["cosine"] == 0.0


def test_normal_median_is_whole_split_not_mean_of_batch_medians() -> None:
    # Batch A: {0}; batch B: {90, 90}. Mean of batch medians = (0 + 90)/2 = 45.
    # Whole split {0, 90, 90}: median = 90 (within one 0.001-degree bin).
    m = NormalMetric()
    m.update(_normals([(1, 0, 0)]), _normals([(1, 0, 0)]))
    m.update(_normals([(0, 1, 0), (0, 0, 1)]), _normals([(1, 0, 0), (1, 0, 0)]))
    assert m.compute()["median_deg"] == pytest.approx(90.0, abs=0.001)
    assert m.compute()["mean_deg"] == pytest.approx(60.0)


def test_nan_prediction_poisons_the_result() -> None:
    # A broken model must not score as if its NaN pixels did not exist.
    m = NormalMetric()
    m.update(_normals([(np.nan, 0, 0), (1, 0, 0)]), _normals([(1, 0, 0), (1, 0, 0)]))
    assert all(math.isnan(v) for v in m.compute().values())
    d = DepthMetric()
    d.update(np.array([[[[np.nan, 1.0]]]]), np.array([[[[1.0, 1.0]]]]))
    assert all(math.isnan(v) for v in d.compute().values())


def test_normal_shape_check() -> None:
    with pytest.raises(UserError, match=r"\(N,3,H,W\)"):
        NormalMetric().update(np.zeros((1, 2, 1, 1)), np.zeros((1, 2, 1, 1)))


# --- keypoints / edges ------------------------------------------------------


def test_abs_err_negative_target_is_invalid() -> None:
    # target = [0.5, -1, 0.0, 1.0] -> valid (>= 0): 0.5, 0.0, 1.0 (0 is valid here).
    # pred   = [0.25, 9, 0.5, 1.0] -> |p-g| = 0.25, 0.5, 0 -> 0.75/3 = 0.25.
    m = metric_for("edges")
    m.update(np.array([[[[0.25, 9.0, 0.5, 1.0]]]]), np.array([[[[0.5, -1.0, 0.0, 1.0]]]]))
    assert m.compute() == pytest.approx({"abs_err": 0.25})
    assert isinstance(metric_for("keypoints"), AbsErrMetric)


# --- empty, protocol, lookups -----------------------------------------------


@pytest.mark.parametrize("kind", sorted(METRICS))
def test_empty_metric_is_nan(kind: str) -> None:
    m = metric_for(kind, 4)
    out = m.compute()
    assert list(out) == list(METRICS[kind])
    assert all(math.isnan(v) for v in out.values())
    # A batch with no valid pixel keeps it empty.
    if kind == "seg":
        m.update(np.zeros((1, 2, 2), dtype=int), np.full((1, 2, 2), -1))
    elif kind == "normal":
        m.update(np.ones((1, 3, 2, 2)), np.zeros((1, 3, 2, 2)))
    else:
        invalid = 0.0 if kind == "depth" else -1.0
        m.update(np.ones((1, 1, 2, 2)), np.full((1, 1, 2, 2), invalid))
    assert all(math.isnan(v) for v in m.compute().values())


def test_lookups_and_directions() -> None:
    for kind, names in METRICS.items():
        assert isinstance(metric_for(kind, 3), TaskMetric)
        assert all(name in HIGHER_IS_BETTER for name in names)
    with pytest.raises(UserError, match="unknown task kind 'sky'"):
        metric_for("sky")
    with pytest.raises(UserError, match="number of classes"):
        metric_for("seg")


# --- state merging (DDP all_reduce sum) -------------------------------------


def _random_batch(
    rng: np.random.Generator, n: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    h, w = 4, 6
    seg_t = rng.integers(-1, 5, size=(n, h, w))  # -1 and 4 (>= C = 4) both ignored
    depth_t = rng.uniform(-0.5, 3.0, size=(n, 1, h, w))
    normal_t = rng.normal(size=(n, 3, h, w))
    normal_t[:, :, 0, :] = 0.0
    edge_t = rng.uniform(-0.3, 1.0, size=(n, 1, h, w))
    preds = {
        "seg": rng.integers(0, 4, size=(n, h, w)),
        "depth": rng.uniform(0.0, 3.0, size=(n, 1, h, w)),
        "normal": rng.normal(size=(n, 3, h, w)),
        "edges": rng.uniform(0.0, 1.0, size=(n, 1, h, w)),
    }
    return preds, {"seg": seg_t, "depth": depth_t, "normal": normal_t, "edges": edge_t}


TASKS = {
    "seg": ("seg", 4),
    "depth": ("depth", None),
    "normal": ("normal", None),
    "edges": ("edges", None),
}


def test_merge_state_equals_one_metric_over_all_data() -> None:
    rng = np.random.default_rng(0)
    batches = [_random_batch(rng, n) for n in (2, 3, 1, 2)]
    whole = MetricSet(TASKS)
    for preds, targets in batches:
        whole.update(preds, targets)
    shard_a, shard_b = MetricSet(TASKS), MetricSet(TASKS)
    for i, (preds, targets) in enumerate(batches):
        (shard_a if i % 2 else shard_b).update(preds, targets)
    # What an all_reduce(sum) does: add the shards' arrays element by element.
    state_a, state_b = shard_a.state(), shard_b.state()
    assert set(state_a) == set(whole.state())
    assert all("/" in key for key in state_a)
    summed = {key: state_a[key] + state_b[key] for key in state_a}
    merged = MetricSet(TASKS)
    merged.merge_state(summed)
    got, want = merged.compute(), whole.compute()
    for task in TASKS:
        assert got[task] == pytest.approx(want[task], rel=1e-12, abs=1e-12)
    assert np.array_equal(merged.state()["normal/hist"], whole.state()["normal/hist"])
    assert np.array_equal(merged.state()["seg/confusion"], whole.state()["seg/confusion"])
    # merge_state into a metric that already holds data adds to it.
    shard_a.merge_state(state_b)
    assert shard_a.compute()["depth"] == pytest.approx(want["depth"], rel=1e-12)
    whole.reset()
    assert all(math.isnan(v) for v in whole.compute()["seg"].values())
    with pytest.raises(ValueError, match="names no task"):
        merged.merge_state({"sky/abs_sum": np.zeros(())})


def test_metric_set_missing_task() -> None:
    preds, targets = _random_batch(np.random.default_rng(1), 1)
    del preds["depth"]
    with pytest.raises(UserError, match="no prediction for task 'depth'"):
        MetricSet(TASKS).update(preds, targets)


# --- delta_m ----------------------------------------------------------------


def test_delta_m_sign_and_value() -> None:
    ref = {"seg": {"miou": 40.0, "pixel_acc": 80.0}, "depth": {"abs_err": 0.5, "rel_err": 0.25}}
    # Better mIoU only: seg = (+(44-40)/40 + 0)/2 = 0.05; depth = 0 -> 100 * 0.05/2 = +2.5
    better = {"seg": {"miou": 44.0, "pixel_acc": 80.0}, "depth": {"abs_err": 0.5, "rel_err": 0.25}}
    assert delta_m(better, ref) == pytest.approx(2.5)
    # Worse abs_err only: depth = (-(0.6-0.5)/0.5 + 0)/2 = -0.1; seg = 0 -> 100 * -0.1/2 = -5.0
    worse = {"seg": {"miou": 40.0, "pixel_acc": 80.0}, "depth": {"abs_err": 0.6, "rel_err": 0.25}}
    assert delta_m(worse, ref) == pytest.approx(-5.0)
    # Both: seg +0.05, depth -0.1 -> 100 * (0.05 - 0.1)/2 = -2.5
    both = {"seg": {"miou": 44.0, "pixel_acc": 80.0}, "depth": {"abs_err": 0.6, "rel_err": 0.25}}
    assert delta_m(both, ref) == pytest.approx(-2.5)
    assert delta_m(ref, ref) == 0.0


def test_delta_m_skips() -> None:
    # Reference rel_err = 0 is skipped; "normal" is only in the result; the stored
    # "delta_m" float is not a task. depth = -(0.6-0.5)/0.5 = -0.2 (one metric),
    # seg = +(44-40)/40 = 0.1 -> 100 * (0.1 - 0.2)/2 = -5.0
    ref = {"seg": {"miou": 40.0}, "depth": {"abs_err": 0.5, "rel_err": 0.0}, "delta_m": 1.0}
    res = {
        "seg": {"miou": 44.0},
        "depth": {"abs_err": 0.6, "rel_err": 0.1},
        "normal": {"mean_deg": 20.0},
        "delta_m": 3.0,
    }
    assert delta_m(res, ref) == pytest.approx(-5.0)  # type: ignore[arg-type]
    assert math.isnan(delta_m({"seg": {"miou": 1.0}}, {"depth": {"abs_err": 1.0}}))
    assert math.isnan(delta_m({"seg": {"miou": math.nan}}, {"seg": {"miou": 40.0}}))
    with pytest.raises(UserError, match="no known direction"):
        delta_m({"seg": {"fancy": 1.0}}, {"seg": {"fancy": 2.0}})


def test_no_torch_import() -> None:
    code = (
        "import sys, edgemtl.evaluation.metrics; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
