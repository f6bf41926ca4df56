"""Artifact format -> where its runner lives (and, for self-describing files, its ModelRef).

Why "module:attribute" strings: the deploy side must import without PyTorch,
TensorRT or CUDA and must never import the training side (the layers point one
way), yet `profile`/`predict` accept checkpoints whose runner is torch code.
A string names the runner's home without importing it; it is imported only
when an artifact of that format is opened. Adding a runtime is one new module
(a `Runner` subclass) plus one `register_runner` call, here or in the caller.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgemtl.core.errors import TRAIN_EXTRA, UserError
from edgemtl.deploy.runtime.base import CHECKPOINT_SUFFIXES, ModelRef, Runner


@dataclass(frozen=True)
class RunnerEntry:
    """One registered format.

    runner: "module:Class", a `Runner` subclass constructed as `Class(ref, options)`.
    suffixes: lower-case file suffixes (".pt") whose files describe themselves;
    `resolve_artifacts` hands such a file to `ref`.
    ref: "module:function", `function(path: Path, head: str | None, fp16: bool) -> ModelRef`.
    """

    runner: str
    suffixes: tuple[str, ...] = ()
    ref: str | None = None


_RUNNERS: dict[str, RunnerEntry] = {}


def register_runner(
    fmt: str, runner: str, *, suffixes: Sequence[str] = (), ref: str | None = None
) -> None:
    """Register (or replace) the runner of artifact format `fmt` (a `ModelRef.format`).

    `runner` and `ref` are "module:attribute" strings, imported on first use.
    Raises ValueError on a malformed string, a suffix without `ref`, or a suffix
    another format already claims (a programming error, not user input).
    """
    for target in (runner, ref):
        if target is not None and (target.count(":") != 1 or not all(target.split(":"))):
            raise ValueError(f"runner registry: {target!r} is not 'module:attribute'")
    if suffixes and ref is None:
        raise ValueError(
            f"runner registry: format {fmt!r} claims suffixes {list(suffixes)} without a ref"
        )
    lowered = tuple(s.lower() for s in suffixes)
    for other, entry in _RUNNERS.items():
        clash = set(lowered) & set(entry.suffixes)
        if other != fmt and clash:
            raise ValueError(f"runner registry: suffix {min(clash)} already belongs to {other!r}")
    _RUNNERS[fmt] = RunnerEntry(runner=runner, suffixes=lowered, ref=ref)


def formats() -> tuple[str, ...]:
    """Every registered format, in registration order."""
    return tuple(_RUNNERS)


def load_target(target: str, owner: str, noun: str = "") -> Any:
    """The attribute a "module:attribute" string names, imported now. When it cannot be
    imported (e.g. the training side without PyTorch): a UserError "<owner>: cannot load
    <noun><target> (...)", e.g. "artifact format 'torch': cannot load its runner ..."."""
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        hint = ""
        if isinstance(exc, ImportError) and getattr(exc, "name", "") == "torch":
            hint = f"; it needs the training profile: {TRAIN_EXTRA}"
        raise UserError(
            f"{owner}: cannot load {noun}{target} ({type(exc).__name__}: {exc}){hint}"
        ) from None


def _load(target: str, fmt: str) -> Any:
    return load_target(target, f"artifact format {fmt!r}", "its runner ")


def runner_class(fmt: str) -> type[Runner]:
    """The `Runner` subclass for `fmt`; UserError for an unregistered format."""
    entry = _RUNNERS.get(fmt)
    if entry is None:
        raise UserError(f"unknown artifact format {fmt!r} (expected one of: {', '.join(_RUNNERS)})")
    cls = _load(entry.runner, fmt)
    if not (isinstance(cls, type) and issubclass(cls, Runner)):
        raise UserError(f"artifact format {fmt!r}: {entry.runner} is not a Runner subclass")
    return cls


def ref_builder(suffix: str) -> Callable[[Path, str | None, bool], ModelRef] | None:
    """The ModelRef builder for files ending in `suffix`, or None when no format claims it."""
    for fmt, entry in _RUNNERS.items():
        if entry.ref is not None and suffix.lower() in entry.suffixes:
            builder: Callable[[Path, str | None, bool], ModelRef] = _load(entry.ref, fmt)
            return builder
    return None


register_runner("onnx", "edgemtl.deploy.runtime.onnxruntime_runner:OrtRunner")
register_runner("trt", "edgemtl.deploy.runtime.tensorrt_runner:TrtRunner")
# The torch runner lives on the training side; named, never imported, until a checkpoint is opened.
register_runner(
    "torch",
    "edgemtl.training.torch_runner:TorchRunner",
    suffixes=CHECKPOINT_SUFFIXES,
    ref="edgemtl.training.torch_runner:checkpoint_ref",
)
