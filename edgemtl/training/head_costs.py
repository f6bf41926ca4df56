"""What each head costs next to the Teacher: Δm against it and a measured latency ratio.

Printed after training (docs/methods.md "Which head to ship"), so the first run
already shows the trade-off between heads. Latency here is PyTorch eager on the
training device, batch 1, the process's threads, every head interleaved in the
same loop (the median of `iterations` runs per head): a quick reading, not a
deployment benchmark; `edgemtl profile` on the exported ONNX/TensorRT artifacts
is that (benchmarks/student_gap.py measures the ratio with ONNX Runtime).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from edgemtl.core.heads import TEACHER
from edgemtl.evaluation.metrics import delta_m
from edgemtl.training.models.network import MultiTaskNet


@torch.no_grad()
def head_latency_ms(
    model: MultiTaskNet,
    heads: Sequence[str],
    size: tuple[int, int],
    iterations: int = 20,
    warmup: int = 3,
) -> dict[str, float]:
    """Median forward time (ms) of each head's export module on one zero image of `size`."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        x = torch.zeros(1, 3, *size, device=device)
        modules = {head: model.head_module(head) for head in heads}
        times: dict[str, list[float]] = {head: [] for head in heads}
        for i in range(warmup + iterations):
            for head, module in modules.items():
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                module(x)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i >= warmup:
                    times[head].append((time.perf_counter() - start) * 1e3)
    finally:
        model.train(was_training)
    return {head: float(np.median(values)) for head, values in times.items()}


def versus_teacher(
    final: dict[str, dict[str, Any]], latency_ms: dict[str, float]
) -> dict[str, dict[str, float | None]]:
    """{head: {"delta_m": Δm vs the Teacher (%), "latency_ms", "latency_ratio"}}; {} without a
    Teacher. `final`: the last evaluation's heads block (docs/formats.md "metrics.jsonl")."""
    if TEACHER not in final:
        return {}
    reference = final[TEACHER]
    base = latency_ms.get(TEACHER)
    out: dict[str, dict[str, float | None]] = {}
    for head, metrics in final.items():
        ms = latency_ms.get(head)
        out[head] = {
            "delta_m": float(delta_m(metrics, reference)),
            "latency_ms": ms,
            "latency_ratio": ms / base if ms is not None and base else None,
        }
    return out
