"""Runners: one small interface over ONNX Runtime, TensorRT and PyTorch.

Torch-free at import, and the training side is never imported from here: each
format's runner is a "module:attribute" string in `registry.py`, imported when
an artifact of that format is opened (the torch runner lives in
`edgemtl.training.torch_runner`). The TensorRT/CUDA modules import their heavy
packages only when a runner of theirs is created.
"""

from edgemtl.deploy.runtime.base import ModelRef, Runner, RunnerOptions
from edgemtl.deploy.runtime.registry import register_runner
from edgemtl.deploy.runtime.resolve import open_runner, resolve_artifacts

__all__ = [
    "ModelRef",
    "Runner",
    "RunnerOptions",
    "open_runner",
    "register_runner",
    "resolve_artifacts",
]
