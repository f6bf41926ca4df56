"""Runners: one small interface over ONNX Runtime, TensorRT and PyTorch.

Torch-free at import: `edgemtl.training.torch_runner` and the TensorRT/CUDA
modules import their heavy packages only when a runner of theirs is created.
"""

from edgemtl.deploy.runtime.base import ModelRef, Runner, RunnerOptions
from edgemtl.deploy.runtime.resolve import open_runner, resolve_artifacts

__all__ = ["ModelRef", "Runner", "RunnerOptions", "open_runner", "resolve_artifacts"]
