"""The task-kind registry: lookups, clashes, and the facts each built-in kind states once.

Pictures: `data show` and `predict` draw a class in the same colour, heatmaps
use a fixed value range, and `predict` re-normalises only what its kind says.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgemtl.core.errors import UserError
from edgemtl.core.tasks import (
    TASK_KINDS,
    MetricInfo,
    TaskKind,
    get_kind,
    kind_names,
    make_spec,
    metric_label,
    register_kind,
    unregister_kind,
)
from edgemtl.core.tasks.colours import class_colour
from edgemtl.core.tasks.parity import Tolerances
from edgemtl.data.sample import Sample


def test_builtins_and_unknown_kind() -> None:
    assert TASK_KINDS == ("seg", "depth", "normal", "keypoints", "edges")
    assert kind_names()[:5] == TASK_KINDS
    assert make_spec("seg", ["a", "b"]).channels == 2
    assert make_spec("normal", ["a"]).class_names is None
    with pytest.raises(UserError, match="unknown task kind 'sky'; expected one of seg, depth"):
        get_kind("sky")
    with pytest.raises(ValueError, match="needs class names"):
        make_spec("seg")


class _Toy(TaskKind):
    name = "toy"
    raw_output = "toy"
    decoded_output = "toy"


def test_registration_refuses_clashes() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_kind(get_kind("depth"))

    class Steals(_Toy):
        raw_output = "seg_logits"

    class Contradicts(_Toy):
        metrics = (MetricInfo("miou", False, "mIoU %"),)

    for bad in (Steals(), Contradicts()):
        with pytest.raises(ValueError, match="toy"):
            register_kind(bad)
    assert "toy" not in kind_names()


def test_metric_labels_come_from_the_kinds() -> None:
    assert metric_label("miou") == "mIoU % ↑"
    assert metric_label("abs_err", spaced=False) == "abs err↓"
    assert metric_label("mean_deg") == "mean angle ° ↓" and metric_label("made_up") == "made_up ↑"


@pytest.mark.parametrize(
    ("kind", "target", "valid"),
    [
        ("seg", np.array([[-1, 0, 2, 3]]), [False, True, True, False]),  # 3 classes
        ("depth", np.array([[0.0, 1.5, -1.0, np.nan]]), [False, True, False, False]),
        ("keypoints", np.array([[-1.0, 0.0, 0.5, -0.1]]), [False, True, True, False]),
    ],
)
def test_valid_rule_on_samples(kind: str, target: np.ndarray, valid: list[bool]) -> None:
    assert get_kind(kind).valid_sample(target, 3)[0].tolist() == valid


def test_valid_rule_is_shared_by_torch_losses() -> None:
    torch = pytest.importorskip("torch")
    from edgemtl.training.losses import valid_mask

    normal = np.zeros((1, 3, 1, 3), np.float32)
    normal[0, :, 0, 1] = (0, 0, 1)
    mask = valid_mask(make_spec("normal"), torch.from_numpy(normal))
    assert mask.tolist() == get_kind("normal").valid(normal, 3).tolist() == [[[False, True, False]]]


def test_one_palette_for_show_and_predict() -> None:
    from edgemtl.data.show import _panels
    from edgemtl.deploy.predict import render

    labels = np.array([[0, 1, 2, 21]], dtype=np.int64)
    image = np.zeros((1, 4, 3), np.float32)
    panels = _panels(Sample(image, {"seg": labels}), ("a",) * 22)
    ((_, shown),) = [p for p in panels if p[0] == "seg"]
    _, legend = render("seg", labels, image, ["a"] * 22)
    for i, (colour, _) in enumerate(legend):
        assert colour == class_colour(int(labels[0, i]))
        assert tuple(np.rint(shown[0, i] * 255).astype(int)) == colour
    assert class_colour(21) != class_colour(21 - 20)  # no wrap-around past the table


def test_heatmaps_use_a_fixed_range() -> None:
    kind = get_kind("keypoints")
    noise = np.random.default_rng(0).uniform(0, 0.02, (8, 8)).astype(np.float32)
    peak = noise.copy()
    peak[4, 4] = 1.0
    rgb_noise, legend = kind.colourize(noise)
    rgb_peak, _ = kind.colourize(peak)
    assert legend == [(None, "keypoints: 0 (dark) .. 1 (yellow)")]
    # Noise stays as dark as it is next to a real peak: not stretched to its own max.
    np.testing.assert_array_equal(rgb_noise[:4], rgb_peak[:4])
    assert rgb_noise.max() < 0.1 < rgb_peak.max()


def test_predict_renormalises_only_normals() -> None:
    from edgemtl.deploy.predict import to_frame as _to_frame

    class ThreeChannels(_Toy):
        channels = 3

    arr = np.full((3, 2, 2), 2.0, np.float32)
    np.testing.assert_allclose(_to_frame(arr, (4, 4), ThreeChannels()), 2.0)
    unit = _to_frame(arr, (4, 4), get_kind("normal"))
    np.testing.assert_allclose(np.linalg.norm(unit, axis=-1), 1.0, rtol=1e-6)


def test_parity_and_augmentation_rules() -> None:
    tol = Tolerances()
    a = np.zeros((1, 1, 2, 2), np.float32)
    assert set(get_kind("edges").parity_fp32(a, a + 1e-4, tol)) == {"max_abs"}
    gates = get_kind("depth").parity_int8({"abs_err": 1.0}, {"abs_err": 1.05}, tol)
    assert gates["abs_err_rise_percent"][0] == pytest.approx(5.0)
    assert get_kind("normal").flip(np.ones((1, 1, 3), np.float32)).tolist() == [[[-1.0, 1.0, 1.0]]]
    depth = np.full((1, 1), 3.0, np.float32)
    assert get_kind("depth").scale_crop(depth, 1.5)[0, 0] == pytest.approx(2.0)
    assert get_kind("depth").scale_crop(depth, 1.5, "inverse_depth")[0, 0] == pytest.approx(4.5)
    assert get_kind("seg").scale_crop(depth, 1.5) is depth


def test_unregister_is_clean() -> None:
    register_kind(_Toy())
    try:
        assert get_kind("toy").output_meaning("decoded") == ""
    finally:
        unregister_kind("toy")
    assert "toy" not in kind_names()
