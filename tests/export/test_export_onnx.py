"""Torch-free ONNX tooling: FP16/INT8 conversion, simplify fallback, parity arithmetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgemtl.core.errors import UserError
from edgemtl.core.tasks import make_spec
from edgemtl.export import fp16, int8, onnx_tools, parity

H, W = 8, 12


def _toy_graph() -> onnx.ModelProto:
    """image -> conv3x3 (3 -> 16) -> relu -> {conv3x3: seg_logits (3 classes),
    conv3x3 + L2 normalise: normal}. The two head convs (16 x 3 x 3 = 144 multiply-adds
    per output) are big enough to quantize; the first (27) is not.

    The normalisation is the ReduceL2 / Max / Div pattern F.normalize exports to,
    whose two FP32-blocked consumers of one tensor trip the FP16 converter.
    """
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((16, 3, 3, 3)).astype(np.float32) * 0.3, "w1"),
        numpy_helper.from_array(rng.standard_normal(16).astype(np.float32) * 0.1, "b1"),
        numpy_helper.from_array(
            rng.standard_normal((3, 16, 3, 3)).astype(np.float32) * 0.1, "wseg"
        ),
        numpy_helper.from_array(rng.standard_normal((3, 16, 3, 3)).astype(np.float32) * 0.1, "wn"),
        numpy_helper.from_array(np.array([1], np.int64), "axes"),
        numpy_helper.from_array(np.array(1e-12, np.float32), "eps"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "wseg"], ["seg_logits"], pads=[1, 1, 1, 1], name="convseg"),
        helper.make_node("Conv", ["r1", "wn"], ["n_raw"], pads=[1, 1, 1, 1], name="convn"),
        helper.make_node("ReduceL2", ["n_raw", "axes"], ["n_len"], keepdims=1, name="l2"),
        helper.make_node("Max", ["n_len", "eps"], ["n_safe"], name="clampmin"),
        helper.make_node("Div", ["n_raw", "n_safe"], ["normal"], name="div"),
    ]
    graph = helper.make_graph(
        nodes,
        "toy",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, H, W])],
        [
            helper.make_tensor_value_info("seg_logits", TensorProto.FLOAT, [1, 3, H, W]),
            helper.make_tensor_value_info("normal", TensorProto.FLOAT, [1, 3, H, W]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    return model


def _inputs(n: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, 3, H, W)).astype(np.float32) for _ in range(n)]


TASKS = {"seg": make_spec("seg", ["a", "b", "c"]), "normal": make_spec("normal")}


def test_fp16_stores_fp16_weights_passes_checker_and_gate(tmp_path: Path) -> None:
    src = tmp_path / "m.fp32.onnx"
    onnx_tools.save(_toy_graph(), src)
    half = fp16.to_fp16(onnx_tools.load(src))
    dst = tmp_path / "m.fp16.onnx"
    onnx_tools.save(half, dst)
    onnx_tools.full_check(dst)  # duplicate Casts removed, nodes re-sorted
    assert fp16.fp16_weight_fraction(half) > 0.9
    weights = {t.name: t.data_type for t in half.graph.initializer}
    assert weights["w1"] == TensorProto.FLOAT16
    io = onnx_tools.io_info(half)
    assert io["inputs"][0]["dtype"] == "float32"  # keep_io_types
    assert {o["dtype"] for o in io["outputs"]} == {"float32"}
    assert onnx_tools.opset(half) == 18
    # the normalisation stays FP32: its ReduceL2 reads a Cast-to-float tensor
    l2 = next(n for n in half.graph.node if n.op_type == "ReduceL2")
    producer = next(n for n in half.graph.node if l2.input[0] in n.output)
    assert producer.op_type == "Cast"

    xs = _inputs(4)
    ref = onnx_tools.run_batches(onnx_tools.session(src), xs)
    got = onnx_tools.run_batches(onnx_tools.session(dst), xs)
    checks = parity.compare_fp16(TASKS, "raw", ref, got, parity.Tolerances())
    assert parity.all_passed(checks), parity.failures(checks)
    assert checks["normal"]["mean_angle_deg"].value < 1.0


def test_int8_is_symmetric_per_channel_qdq_and_runs(tmp_path: Path) -> None:
    src = tmp_path / "m.fp32.onnx"
    onnx_tools.save(_toy_graph(), src)
    dst = tmp_path / "m.int8.onnx"
    model = int8.quantize_int8(src, dst, _inputs(6))
    facts = int8.qdq_summary(model)
    assert facts["activation_quantize_nodes"] >= 2  # activations quantized
    assert facts["weight_dequantize_nodes"] == 2  # both head conv weights stored int8
    assert facts["per_channel_weights"] == 2  # with a per-output-channel axis
    assert facts["weighted_float_nodes"] == {"Conv": 1}  # conv1: 27 multiply-adds per output
    assert facts["all_zero_points_zero"] is True  # symmetric: what TensorRT needs
    weight_dq = [
        n
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        and n.input[0] in {t.name for t in model.graph.initializer}
    ]
    stored = {t.name: t.data_type for t in model.graph.initializer}
    assert any(stored[n.input[0]] == TensorProto.INT8 for n in weight_dq)
    out = onnx_tools.run_batches(onnx_tools.session(dst), _inputs(2, seed=5))
    assert out["seg_logits"].shape == (2, 3, H, W)
    with pytest.raises(UserError, match="calibration"):
        int8.quantize_int8(src, tmp_path / "x.onnx", [])


def _transpose_graph() -> onnx.ModelProto:
    """image -> conv1 (3 -> 16, 3x3) -> relu1 -> conv2 (16 -> 16, 3x3) -> relu2 ->
    {ConvTranspose(k2, s2) -> relu3 -> conv3x3 "out": "up" (2H x 2W); 1x1 conv "side"}.

    conv1 (27 multiply-adds per output) and side (16) are too small to pay for INT8;
    conv2 and out (144) are not; up1 has no INT8 kernel in ONNX Runtime's CPU provider.
    """
    rng = np.random.default_rng(2)
    inits = [
        numpy_helper.from_array(rng.standard_normal((16, 3, 3, 3)).astype(np.float32) * 0.3, "w1"),
        numpy_helper.from_array(rng.standard_normal((16, 16, 3, 3)).astype(np.float32) * 0.1, "w2"),
        numpy_helper.from_array(rng.standard_normal((16, 16, 2, 2)).astype(np.float32) * 0.1, "wt"),
        numpy_helper.from_array(rng.standard_normal((2, 16, 3, 3)).astype(np.float32) * 0.1, "wo"),
        numpy_helper.from_array(rng.standard_normal((2, 16, 1, 1)).astype(np.float32) * 0.3, "ws"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("ConvTranspose", ["r2", "wt"], ["t1"], strides=[2, 2], name="up1"),
        helper.make_node("Relu", ["t1"], ["r3"], name="relu3"),
        helper.make_node("Conv", ["r3", "wo"], ["up"], pads=[1, 1, 1, 1], name="out"),
        helper.make_node("Conv", ["r2", "ws"], ["side"], name="side"),
    ]
    graph = helper.make_graph(
        nodes,
        "up",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, H, W])],
        [
            helper.make_tensor_value_info("up", TensorProto.FLOAT, [1, 2, 2 * H, 2 * W]),
            helper.make_tensor_value_info("side", TensorProto.FLOAT, [1, 2, H, W]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    return model


def test_int8_keeps_float_what_does_not_pay_and_nothing_more(tmp_path: Path) -> None:
    model = _transpose_graph()
    # conv1 and side: too few multiply-adds per output; up1: no INT8 kernel; relu1 and
    # relu3 see nothing but float. conv2, relu2 and out are quantized: a weighted op
    # behind a float one (out) is not swept along.
    assert int8.float_nodes(model) == ["conv1", "relu1", "up1", "relu3", "side"]
    src, dst = tmp_path / "up.fp32.onnx", tmp_path / "up.int8.onnx"
    onnx_tools.save(model, src)
    quantized = int8.quantize_int8(src, dst, _inputs(6))
    inits = {t.name for t in quantized.graph.initializer}
    dq_out = {o for n in quantized.graph.node if n.op_type == "DequantizeLinear" for o in n.output}

    def weight_is_int8(name: str) -> bool:
        node = next(n for n in quantized.graph.node if n.name == name)
        return node.input[1] in dq_out and node.input[1] not in inits

    weighted = ("conv1", "conv2", "up1", "out", "side")
    assert [weight_is_int8(n) for n in weighted] == [False, True, False, True, False]
    summary = int8.qdq_summary(quantized)
    assert summary["weighted_float_nodes"] == {"Conv": 2, "ConvTranspose": 1}
    assert summary["weight_dequantize_nodes"] == 2
    assert summary["weighted_int8_nodes"] == {"Conv": 2}
    xs = _inputs(2, seed=4)
    ref = onnx_tools.run_batches(onnx_tools.session(src), xs)
    got = onnx_tools.run_batches(onnx_tools.session(dst), xs)
    assert got["up"].shape == (2, 2, 2 * H, 2 * W)
    for name in ("up", "side"):
        scale = float(np.abs(ref[name]).max())
        assert float(np.abs(got[name] - ref[name]).max()) < 0.1 * scale


def test_macs_per_output_counts_input_channels_per_group_and_kernel_area() -> None:
    model = _transpose_graph()
    inits = {t.name: t for t in model.graph.initializer}
    macs = {n.name: int8.conv_macs_per_output(n, inits) for n in model.graph.node}
    assert macs == {
        "conv1": 27, "relu1": None, "conv2": 144, "relu2": None,
        "up1": None, "relu3": None, "out": 144, "side": 16,
    }  # fmt: skip
    depthwise = helper.make_node("Conv", ["x", "wd"], ["y"], group=16)
    wd = numpy_helper.from_array(np.zeros((16, 1, 3, 3), np.float32), "wd")
    assert int8.conv_macs_per_output(depthwise, {"wd": wd}) == 9  # a depthwise conv stays float
    computed = helper.make_node("Conv", ["x", "w_from_a_node"], ["y"])
    assert int8.conv_macs_per_output(computed, {}) is None


def test_nodes_without_names_get_one() -> None:
    model = _transpose_graph()
    for node in model.graph.node:
        node.name = ""
    model.graph.node[1].name = "ConvTranspose_2"  # a clash the generated names must avoid
    int8.name_nodes(model)
    names = [n.name for n in model.graph.node]
    assert len(set(names)) == len(names) and all(names)
    assert int8.float_nodes(model) == [names[i] for i in (0, 1, 4, 5, 7)]


def test_end_table_shows_the_speed_up_and_says_when_int8_does_not_pay() -> None:
    from rich.console import Console

    from edgemtl.core.manifest import Artifact, Speedup
    from edgemtl.export.derive import print_end

    def artifact(precision: str, speedup: Speedup | None) -> dict:
        art = Artifact(
            file=f"student.{precision}.onnx",
            format="onnx",
            precision=precision,  # type: ignore[arg-type]
            sha256="0" * 64,
            size_bytes=1000,
            speedup=speedup,
        )
        return art.model_dump(mode="json")

    slow = Speedup(
        reference="student.fp32.onnx",
        ratio=0.82,
        median_ms=4.1,
        reference_median_ms=3.36,
        threads=1,
        iterations=40,
    )
    result = {
        "bundle": "export/x-student",
        "head": "student",
        "artifacts": [artifact("fp32", None), artifact("int8", slow)],
        "status": {},
        "notes": [],
    }
    console = Console(width=80, record=True)
    print_end(result, console)
    text = console.export_text()
    assert "speed" in text and "0.82x" in text
    assert "student.int8.onnx ran at 0.82x the speed of student.fp32.onnx" in text
    assert "int8 does not pay on this machine" in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_simplify_failure_keeps_the_original() -> None:
    model = _toy_graph()
    model.graph.node.append(
        helper.make_node("Mystery", ["normal"], ["extra"], domain="no.such.domain")
    )
    model.graph.output.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, None))
    model.opset_import.append(helper.make_opsetid("no.such.domain", 1))
    kept, warning = onnx_tools.simplify(model)
    assert kept is model
    assert warning is not None and warning.startswith("simplification failed: kept the original")


def test_checker_and_loader_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    model = _toy_graph()
    model.graph.node[1].input[0] = "nowhere"
    onnx.save(model, str(bad))
    with pytest.raises(UserError, match="bad.onnx: ONNX checker failed"):
        onnx_tools.full_check(bad)
    (tmp_path / "junk.onnx").write_bytes(b"\x00\x01junk")
    with pytest.raises(UserError, match="junk.onnx"):
        onnx_tools.session(tmp_path / "junk.onnx")


# ---- parity arithmetic, hand-worked ----------------------------------------------------


def test_parity_numbers_by_hand() -> None:
    assert parity.max_abs(np.array([0.0, 1.0]), np.array([0.5, 1.0])) == 0.5
    # logits over 2 classes, 4 pixels: argmax a = [0,1,1,0], b = [0,1,0,0] -> 3 of 4 agree
    a = np.array([[[[2, 0, 0, 5]], [[1, 3, 4, 0]]]], np.float32)
    b = np.array([[[[2, 0, 9, 5]], [[1, 3, 4, 0]]]], np.float32)
    assert parity.label_agreement(a, b) == 75.0
    assert parity.label_agreement(np.array([[1, 2]]), np.array([[1, 3]])) == 50.0
    # normals (1,0,0) vs (0,1,0) at one pixel, identical at the other: (90 + 0) / 2
    n1 = np.array([[[[1, 1]], [[0, 0]], [[0, 0]]]], np.float32)
    n2 = np.array([[[[0, 1]], [[1, 0]], [[0, 0]]]], np.float32)
    assert parity.mean_angle_deg(n1, n2) == pytest.approx(45.0)
    # sum|a-b| / sum|b| = 0.1 / 3
    assert parity.rel_diff_percent(np.array([1.1, 2.0]), np.array([1.0, 2.0])) == pytest.approx(
        10 / 3
    )


def test_int8_gate_by_hand() -> None:
    tasks = {"seg": make_spec("seg", ["a", "b"]), "depth": make_spec("depth")}
    ref = {"seg": {"miou": 50.0, "pixel_acc": 80.0}, "depth": {"abs_err": 0.10, "rel_err": 0.2}}
    ok = {"seg": {"miou": 48.0, "pixel_acc": 79.0}, "depth": {"abs_err": 0.105, "rel_err": 0.2}}
    checks = parity.compare_int8(ref, ok, tasks, parity.Tolerances())
    assert checks["seg"]["miou_drop"].value == pytest.approx(2.0)
    assert checks["depth"]["abs_err_rise_percent"].value == pytest.approx(5.0)
    assert parity.all_passed(checks)
    assert parity.metric_deltas(ref, ok)["seg"]["pixel_acc"] == pytest.approx(-1.0)
    bad = {"seg": {"miou": 46.0}, "depth": {"abs_err": 0.112}}
    checks = parity.compare_int8(ref, bad, tasks, parity.Tolerances())
    assert [c for c in parity.failures(checks)] == [
        "seg miou_drop 4 (needs <= 3)",
        "depth abs_err_rise_percent 12 (needs <= 10)",
    ]
    loose = parity.Tolerances.with_overrides({"int8_miou_drop": 5, "int8_depth_abs_rise": 15})
    assert parity.all_passed(parity.compare_int8(ref, bad, tasks, loose))
    with pytest.raises(UserError, match="unknown tolerance 'miou'"):
        parity.Tolerances.with_overrides({"miou": 1})


def test_fp32_gate_tolerances_per_upsampling() -> None:
    tasks = {"seg": make_spec("seg", ["a", "b"]), "depth": make_spec("depth")}
    rng = np.random.default_rng(0)
    ref = {
        "seg_logits": rng.standard_normal((1, 2, 4, 4)).astype(np.float32) * 5,
        "depth": rng.random((1, 1, 4, 4)).astype(np.float32),
    }
    cand = {k: v + 0.01 for k, v in ref.items()}  # 1e-2 off: fails bilinear, fine for unpool
    strict = parity.compare_fp32(tasks, "raw", ref, cand, parity.Tolerances())
    assert not strict["depth"]["max_abs"].passed and not strict["seg"]["max_abs"].passed
    assert strict["seg"]["label_agreement"].passed
    relaxed = parity.compare_fp32(tasks, "raw", ref, cand, parity.Tolerances(), unpool=True)
    assert parity.all_passed(relaxed)
    assert relaxed["seg"]["label_agreement"].tolerance == 99.5
    with pytest.raises(UserError, match="output 'depth' of task depth is missing"):
        parity.compare_fp32(
            tasks, "raw", ref, {"seg_logits": ref["seg_logits"]}, parity.Tolerances()
        )
