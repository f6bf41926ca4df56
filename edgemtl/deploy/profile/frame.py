"""What one camera frame costs: decode -> preprocess -> infer -> postprocess, per stage.

Why besides the latency rows: those time the network alone on an input that is
already preprocessed (`latency`, and `end_to_end`, which adds the runner's
host<->device copies). A deployed pipeline also decodes the image file,
resizes and normalises it, and decodes the outputs back to the frame
(argmax, resize, normals renormalised). `frame_pipeline` times exactly the
steps `edgemtl predict` runs (`edgemtl.deploy.frames`), at batch 1, on a
synthetic JPEG frame of `--frame HxW` (default: the model's input size), like
Ultralytics' per-image preprocess / inference / postprocess times
(docs/profile.md "Per frame"). Torch-free.
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.deploy.runtime.base import ModelRef, Runner

STAGES = ("decode", "preprocess", "infer", "postprocess")
#: What the `frame_pipeline` block of each artifact holds (the result's `conditions`).
FRAME_PIPELINE = (
    "per frame at batch 1: decode a JPEG file, preprocess (resize, normalise), infer, "
    "postprocess (decode outputs, resize to the frame); median ms per stage"
)
JPEG_QUALITY = 90


def parse_frame(text: str | None) -> tuple[int, int] | None | Literal[False]:
    """`--frame`: "HxW" -> (H, W); None or "input" -> None (the model's input size);
    "off" -> False (no per-frame figure). UserError otherwise."""
    if text is None or text == "input":
        return None
    if text == "off":
        return False
    h, sep, w = text.lower().partition("x")
    if sep and h.isdigit() and w.isdigit() and int(h) > 0 and int(w) > 0:
        return int(h), int(w)
    raise UserError(f"--frame {text}: expected HxW (e.g. 720x1280), input or off")


def synthetic_jpeg(height: int, width: int, seed: int = 0) -> bytes:
    """A JPEG of a smooth scene (gradients and boxes, not noise: noise decodes slower than
    camera frames do) of height x width."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([xx / max(width, 1), yy / max(height, 1), 0.5 + 0 * xx], axis=-1)
    for _ in range(6):
        y0, x0 = rng.integers(0, height), rng.integers(0, width)
        rgb[y0 : y0 + height // 4, x0 : x0 + width // 4] = rng.random(3)
    buf = io.BytesIO()
    Image.fromarray((rgb * 255).astype(np.uint8)).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def time_frames(
    refs: Sequence[ModelRef],
    runners: Sequence[Runner],
    frame_hw: tuple[int, int] | None,
    iterations: int,
    warmup: int = 2,
    rounds: int = 2,
) -> list[dict[str, Any]]:
    """The `frame_pipeline` block of each artifact, timed interleaved over `rounds`.

    {"frame": [H, W], "source": "synthetic JPEG ...", "resize": "stretch",
    "iterations": n, "stages_ms": {stage: median ms}, "total_ms": median of the
    per-frame sums, "frames_per_s": 1000 / total_ms}. Each artifact reads its frame
    from a file (the page cache), as `predict` does.
    """
    from edgemtl.data.preprocess import InputSpec
    from edgemtl.deploy.frames import place, postprocess, preprocess_frame, read_image

    times: list[dict[str, list[int]]] = [{s: [] for s in STAGES} for _ in refs]
    with tempfile.TemporaryDirectory(prefix="edgemtl-frame-") as tmp:
        files, specs = [], []
        for i, ref in enumerate(refs):
            h, w = frame_hw or ref.input_hw
            path = Path(tmp) / f"frame{i}.jpg"
            path.write_bytes(synthetic_jpeg(h, w))
            files.append(path)
            specs.append(InputSpec.from_dict(ref.manifest.input.input_spec_dict()))

        def one(i: int, record: bool) -> None:
            ref, runner = refs[i], runners[i]
            clock = time.perf_counter_ns
            t0 = clock()
            frame = read_image(files[i])
            t1 = clock()
            placement = place(frame.shape[:2], ref.input_hw, "stretch")
            batch = preprocess_frame(frame, specs[i], placement)[None]
            fixed = runner.batch_limits()[0]
            if fixed > 1:  # a fixed-batch artifact runs its whole batch for one frame
                batch = np.repeat(batch, fixed, axis=0)
            t2 = clock()
            outputs = runner.infer(batch)
            t3 = clock()
            postprocess(ref, outputs, [placement])
            t4 = clock()
            if record:
                for stage, ns in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    times[i][stage].append(ns)

        for i in range(len(refs)):
            for _ in range(warmup):
                one(i, False)
        rounds = max(1, min(rounds, iterations))
        for k in range(rounds):
            count = iterations * (k + 1) // rounds - iterations * k // rounds
            for i in range(len(refs)):
                for _ in range(count):
                    one(i, True)
    blocks = []
    for ref, stage_ns in zip(refs, times):
        h, w = frame_hw or ref.input_hw
        totals = [sum(parts) for parts in zip(*stage_ns.values())]
        total_ms = statistics.median(totals) / 1e6
        blocks.append(
            {
                "frame": [h, w],
                "source": f"synthetic JPEG (quality {JPEG_QUALITY}) read from a file",
                "resize": "stretch",
                "batch": 1,
                "iterations": len(totals),
                "stages_ms": {s: statistics.median(v) / 1e6 for s, v in stage_ns.items()},
                "total_ms": total_ms,
                "frames_per_s": 1000.0 / total_ms if total_ms > 0 else None,
            }
        )
    return blocks


def add_frame_pipeline(
    refs: Sequence[ModelRef],
    runners: Sequence[Runner],
    artifacts: Sequence[dict[str, Any]],
    options: Any,
    console: Any,
) -> None:
    """`time_frames` for `profile`: each artifact's facts get their `frame_pipeline` block.

    `options`: the command's `ProfileOptions` (frame size, timing, rounds); as many frames
    as timed iterations, or 20 when timing by duration.
    """
    timing = options.timing
    iterations = timing.iterations if timing.duration_s is None else 20
    with console.status("timing the per-frame pipeline"):
        blocks = time_frames(refs, runners, options.frame_size, iterations, rounds=options.rounds)
    for facts, block in zip(artifacts, blocks):
        facts["frame_pipeline"] = block
