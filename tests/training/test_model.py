"""MultiTaskNet shapes per head and upsampling mode; head extraction for export."""

from __future__ import annotations

import pytest
import torch

from edgemtl.core.tasks import make_spec
from edgemtl.training.models.network import MultiTaskNet

SPECS = [
    make_spec("seg", ["a", "b", "c"]),
    make_spec("depth"),
    make_spec("normal"),
    make_spec("keypoints"),
    make_spec("edges"),
]
EXPECTED_CHANNELS = {"seg": 3, "depth": 1, "normal": 3, "keypoints": 1, "edges": 1}


@pytest.mark.parametrize("upsampling", ["bilinear", "nearest", "unpool"])
@pytest.mark.parametrize("decoder", ["attention", "plain", "unet"])
def test_output_shapes_per_head(upsampling: str, decoder: str) -> None:
    torch.manual_seed(0)
    net = MultiTaskNet(SPECS, 0.125, upsampling, decoder).eval()
    out = net(torch.randn(2, 3, 32, 64), heads=("teacher", "student", "ensemble"))
    assert set(out) == {"teacher", "student", "ensemble"}
    for head, tasks in out.items():
        for key, tensor in tasks.items():
            assert tuple(tensor.shape) == (2, EXPECTED_CHANNELS[key], 32, 64), (head, key)
        norms = tasks["normal"].norm(dim=1)
        assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)


def test_width_multiplier_scales_channels() -> None:
    small = MultiTaskNet(SPECS[:1], 0.125)
    full = MultiTaskNet(SPECS[:1], 1.0)
    assert small.encoder.channels == [8, 16, 32, 64] and small.encoder.bottleneck_channels == 128
    assert full.encoder.channels == [64, 128, 256, 512] and full.encoder.bottleneck_channels == 1024
    # Encoder: 2, 2, 3, 4 conv layers per stage + bottleneck conv.
    convs = [m for m in full.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 2 + 2 + 3 + 4 + 1


def test_forward_computes_only_requested_heads() -> None:
    net = MultiTaskNet(SPECS, 0.125).eval()
    calls: list[str] = []
    for name, module in [("teacher", net.teacher["seg"]), ("student", net.student["seg"])]:
        module.register_forward_hook(lambda *_args, name=name: calls.append(name))
    net(torch.randn(1, 3, 32, 32), heads=("student",))
    assert calls == ["student"]


def test_missing_head_is_a_clear_error() -> None:
    net = MultiTaskNet(SPECS, 0.125, heads=("teacher",))
    assert net.heads == ("teacher",)
    with pytest.raises(ValueError, match="no student head"):
        net(torch.randn(1, 3, 32, 32), heads=("student",))


def test_student_head_module_holds_no_teacher_parameters() -> None:
    net = MultiTaskNet(SPECS, 0.125).eval()
    student = net.head_module("student")
    teacher_ids = {id(p) for p in net.teacher.parameters()}
    assert not any(id(p) in teacher_ids for p in student.parameters())
    assert sum(p.numel() for p in student.parameters()) < sum(
        p.numel() for p in net.head_module("teacher").parameters()
    )
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        raw = student(x)
        reference = net(x, heads=("student",))["student"]
        decoded = net.head_module("student", "decoded")(x)
    assert student.output_names == ["seg_logits", "depth", "normal", "keypoints", "edges"]
    assert torch.equal(raw[0], reference["seg"]) and torch.equal(raw[1], reference["depth"])
    assert decoded[0].dtype == torch.int32 and tuple(decoded[0].shape) == (1, 32, 32)
    assert torch.equal(decoded[0], reference["seg"].argmax(1).int())


def test_student_uses_transposed_convolutions_only() -> None:
    net = MultiTaskNet(SPECS[:1], 0.125)
    student = net.student["seg"]
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in student.modules()) == 4
    assert not any(isinstance(m, torch.nn.MaxUnpool2d) for m in student.modules())
