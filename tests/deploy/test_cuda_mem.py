"""The TensorRT runner's CUDA buffer path (`edgemtl.deploy.runtime.cuda_mem`), TensorRT aside.

Device buffers, pinned host buffers, copies on a stream and CUDA events through
whichever binding is installed (cuda-python's `cuda.bindings`, or pycuda).
"""

from __future__ import annotations

import numpy as np
import pytest

from edgemtl.core.errors import UserError
from edgemtl.deploy.runtime.cuda_mem import open_cuda
from edgemtl.deploy.runtime.trt_env import cuda_binding, gpu_facts


def _why_not() -> str | None:
    """None where a CUDA binding sees a GPU, else the reason."""
    if cuda_binding() is None:
        return "no CUDA binding (cuda-python / cuda-bindings, or pycuda) is installed"
    try:
        gpu_facts()
    except Exception as exc:  # noqa: BLE001 - UserError, or the binding failing without a driver
        return f"no CUDA GPU visible to {cuda_binding()}: {exc}"
    return None


WHY_NOT = _why_not()


@pytest.mark.skipif(cuda_binding() is not None, reason="a CUDA binding is installed here")
def test_without_a_binding_the_buffers_are_a_one_line_error() -> None:
    with pytest.raises(UserError, match=r"^no CUDA binding .*pip install cuda-python"):
        open_cuda()


@pytest.mark.gpu
@pytest.mark.skipif(WHY_NOT is not None, reason=f"needs a CUDA GPU and a binding: {WHY_NOT}")
def test_device_buffer_round_trip_and_event_timing() -> None:
    api = open_cuda()
    try:
        n = 1 << 22  # 16 MiB of float32
        src, back = api.pinned((n,), np.float32), api.pinned((n,), np.float32)
        assert src.shape == (n,) and src.dtype == np.float32
        src[:] = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
        back[:] = 0
        dev, stream = api.malloc(src.nbytes), api.stream()
        start, mid, end = api.event(), api.event(), api.event()
        api.record(start, stream)
        api.htod(dev, src, stream)
        api.record(mid, stream)
        api.dtoh(back, dev, stream)
        api.record(end, stream)
        api.sync(stream)
        np.testing.assert_array_equal(back, src)
        h2d, d2h, total = (
            api.elapsed_ms(start, mid),
            api.elapsed_ms(mid, end),
            api.elapsed_ms(start, end),
        )
        assert h2d > 0 and d2h > 0
        assert total == pytest.approx(h2d + d2h, rel=1e-3, abs=1e-3)  # events on one timeline
        # 16 MiB over PCIe / NVLink-C2C: well under a second, so the units are milliseconds.
        assert total < 1000
        small = np.arange(1000, dtype=np.float32)  # ordinary (pageable) host memory too
        out = np.zeros_like(small)
        api.htod(dev, small, stream)
        api.dtoh(out, dev, stream)
        api.sync(stream)
        np.testing.assert_array_equal(out, small)
        api.free(dev)
    finally:
        api.close()
