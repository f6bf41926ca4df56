"""Graph parameter / FLOP counts on hand-worked toy graphs."""

from __future__ import annotations

from pathlib import Path

import onnx

from edgemtl.deploy.profile.graph import graph_cost


def test_toy_counts_hand_worked(tmp_path: Path) -> None:
    from tests.helpers.toy_bundle import toy_model

    path = tmp_path / "m.onnx"
    # 1 hidden conv 3->8 (3x3), heads 8->3 and 8->1, on 16x32.
    onnx.save(toy_model(16, 32, hidden=8, depth_layers=1), str(path))
    cost = graph_cost(path)
    # params: 8*3*9 + 8 = 224; 3*8*9 + 3 = 219; 1*8*9 + 1 = 73 -> 516.
    assert cost["params"] == 224 + 219 + 73
    # FLOPs = 2 * H*W * Cout * Cin*9 per conv: 2*512*(8*27 + 3*72 + 1*72) = 2*512*504 = 516096.
    assert cost["flops"] == 2 * 512 * (8 * 27 + 3 * 72 + 1 * 72)


def test_bigger_toy_costs_more(tmp_path: Path) -> None:
    from tests.helpers.toy_bundle import toy_model

    small, big = tmp_path / "s.onnx", tmp_path / "b.onnx"
    onnx.save(toy_model(16, 32, 8, 1), str(small))
    onnx.save(toy_model(16, 32, 16, 3), str(big))
    a, b = graph_cost(small), graph_cost(big)
    assert a["params"] < b["params"] and a["flops"] < b["flops"]
