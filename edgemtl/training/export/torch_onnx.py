"""Torch side of export: one head module -> a single-file FP32 ONNX (dynamo exporter).

Why these choices (docs/export.md, "FP32 ONNX from PyTorch"): torch 2.13's
dynamo exporter handles `max_unpool2d` (the legacy one does not); it writes
external data unless told `external_data=False`; it prints progress to stdout,
which the CLI must not show, so stdout/stderr are captured at the
file-descriptor level and only surfaced inside the error when the export fails.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from edgemtl.core.errors import UserError

OPSET = 18
INPUT_NAME = "image"


@contextlib.contextmanager
def quiet_fds() -> Iterator[list[str]]:
    """Silence prints (Python and C++ via fd 1/2), warnings and torch loggers.

    Yields a list that holds the captured text once the block exits, so a
    failure can quote the exporter's last words.
    """
    captured: list[str] = []
    loggers = [
        logging.getLogger(n)
        for n in ("torch", "torch.onnx", "torch.export", "onnxscript", "onnx_ir")
    ]
    levels = [lg.level for lg in loggers]
    py_out, py_err = io.StringIO(), io.StringIO()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with contextlib.redirect_stdout(py_out), contextlib.redirect_stderr(py_err):
                yield captured
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)
            sink.seek(0)
            captured.append(
                py_out.getvalue() + py_err.getvalue() + sink.read().decode("utf-8", "replace")
            )


def export_head(
    module: torch.nn.Module,
    output_names: Sequence[str],
    height: int,
    width: int,
    path: str | Path,
    batch: int = 1,
    dynamic_batch: bool = False,
    opset: int = OPSET,
) -> None:
    """Trace `module` (eval mode, returns a tuple in `output_names` order) to `path`.

    Static batch `batch` by default; `dynamic_batch` makes dim 0 symbolic ("batch").
    """
    module = module.eval()
    example = (torch.zeros(max(batch, 2) if dynamic_batch else batch, 3, height, width),)
    dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    log: list[str] = []
    try:
        with torch.no_grad(), quiet_fds() as log:
            torch.onnx.export(
                module,
                example,
                str(path),
                dynamo=True,
                external_data=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=list(output_names),
                dynamic_shapes=dynamic_shapes,
                verbose=False,
            )
    except Exception as exc:  # noqa: BLE001 (the exporter raises many types; all become one line)
        tail = " | ".join(line for line in "".join(log).splitlines()[-3:] if line.strip())
        raise UserError(
            f"torch.onnx.export failed for {path}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}{' | ' + tail if tail else ''}"
        ) from None
    data_file = Path(str(path) + ".data")
    if data_file.exists():  # never ship a two-file model
        raise UserError(
            f"{path}: the exporter wrote external data ({data_file.name}); expected one file"
        )


def run_torch(
    module: torch.nn.Module, output_names: Sequence[str], batches: Sequence[np.ndarray]
) -> dict[str, np.ndarray]:
    """Reference outputs of the head module on numpy batches, concatenated, by output name."""
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in output_names}
    module = module.eval()
    with torch.no_grad():
        for batch in batches:
            values = module(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
            for name, value in zip(output_names, values):
                chunks[name].append(value.detach().cpu().numpy())
    return {n: np.concatenate(v, axis=0) for n, v in chunks.items()}


def parameter_arrays(module: torch.nn.Module) -> list[np.ndarray]:
    """Every parameter and buffer of `module` as numpy (to prove what a graph does NOT hold)."""
    return [
        t.detach().cpu().numpy()
        for t in list(module.parameters()) + list(module.buffers())
        if t.is_floating_point()
    ]
