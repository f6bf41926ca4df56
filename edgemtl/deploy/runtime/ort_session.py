"""The one place an ONNX Runtime InferenceSession is built (profile, predict, export parity).

Why one builder: timings and parity numbers must come from identically
configured sessions (all graph optimisations, fixed intra-op threads, one
inter-op thread, sequential execution, warnings silenced), whichever command
made them. It lives on the deploy side because export may import deploy, never
the reverse.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgemtl.core.errors import UserError

CPU_ONLY: tuple[str, ...] = ("CPUExecutionProvider",)


def import_onnxruntime() -> Any:
    """The `onnxruntime` module; UserError saying what to install when it is absent."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError(
            "onnxruntime is not installed: pip install onnxruntime "
            "(or onnxruntime-gpu for CUDA/TensorRT providers)"
        ) from None
    return ort


def build_session(
    path: str | Path, threads: int, providers: Sequence[str] = CPU_ONLY, spin: bool = False
) -> Any:
    """An `onnxruntime.InferenceSession` for the model file at `path`.

    threads: intra-op CPU threads (>= 1; recorded by callers, never ORT's default).
    providers: execution providers in priority order, all present in this ORT build.
    spin: let idle intra-op threads spin-wait (`session.intra_op.allow_spinning`):
    a little lower latency on CPUs nobody else needs, a core burnt per thread on
    a busy machine (callers pass `edgemtl.core.threads.ThreadChoice.spin`).
    Raises UserError naming the file when ORT cannot load it (not ONNX, bad graph).
    """
    ort = import_onnxruntime()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=list(providers))
    except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph/... types
        text = str(exc).strip()
        first = text.splitlines()[0][:200] if text else ""
        raise UserError(
            f"{path}: ONNX Runtime cannot load it ({type(exc).__name__}: {first})"
        ) from None
