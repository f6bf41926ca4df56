"""`edgemtl predict` and the torch-free `Predictor` API: images in, decoded task maps out.

Why the manifest drives everything: the bundle states input size, mean/std and
what each output means, so a user on a device passes only images. A frame is
fitted to the input by stretching (`edgemtl.data.preprocess.preprocess_image`,
the path training and eval used; a frame of another aspect ratio earns a
warning) or letterboxing, and outputs are decoded and resized back to the
frame: labels nearest, continuous maps bilinear, normals re-normalised
(`edgemtl.deploy.frames`). The files written (`.npz`, PNG overlays) are
`edgemtl.deploy.predict_output`'s; `predictions.json` records each input's
size and how it was fitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.core.io import atomic_write_json
from edgemtl.core.options import ArtifactChoice
from edgemtl.core.paths import check_not_an_input, check_output_dir
from edgemtl.data.imageio import to_rgb01
from edgemtl.deploy.frames import RESIZE_MODES, aspect_warning, place, postprocess
from edgemtl.deploy.frames import read_image as read_image  # public name, re-exported
from edgemtl.deploy.frames import to_frame as to_frame  # public name, re-exported
from edgemtl.deploy.predict_output import render as render  # public name, re-exported
from edgemtl.deploy.predict_output import write_outputs
from edgemtl.deploy.runtime.base import ModelRef, Runner, RunnerOptions
from edgemtl.deploy.runtime.resolve import open_runner, resolve_artifacts

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".npy")
#: The record of a predict run in its output folder.
PREDICTIONS_FILE = "predictions.json"


@dataclass(frozen=True)
class PredictOptions:
    """What `predict_command` takes besides the artifact and the inputs.

    out: folder for `<name>.npz` and overlays; runner: device, ONNX Runtime
    provider, CPU threads; select: the checkpoint head (None: its default
    head) and, for a bundle, the precision to run (its first entry);
    overlays: also write `<name>.<task>.png`; resize: how a frame is fitted to the
    model input, "stretch" or "letterbox" (`edgemtl.deploy.frames`).
    """

    out: Path = Path("preds")
    runner: RunnerOptions = field(default_factory=RunnerOptions)
    select: ArtifactChoice = field(default_factory=ArtifactChoice)
    overlays: bool = True
    quiet: bool = False
    resize: str = "stretch"

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise UserError(f"--resize {self.resize}: expected {' or '.join(RESIZE_MODES)}")
        check_output_dir(self.out, "--out")

    @property
    def precision(self) -> str | None:
        """The one bundle precision `--precision` asked for (None: `_pick` chooses)."""
        return self.select.precisions[0] if self.select.precisions else None


def _pick(refs: list[ModelRef], device: str, precision: str | None) -> ModelRef:
    """One artifact of a bundle: the requested precision, an engine on CUDA, else fp32 ONNX
    first."""
    if precision:
        refs = [r for r in refs if r.precision == precision] or refs
    order = {"fp32": 0, "fp16": 1, "int8": 2}
    if device == "cuda":
        engines = [r for r in refs if r.format == "trt"]
        if engines:
            return engines[0]
    onnx = sorted((r for r in refs if r.format == "onnx"), key=lambda r: order.get(r.precision, 9))
    return onnx[0] if onnx else refs[0]


class Predictor:
    """Load an artifact once, then `predict(image)` -> {task: map at the image's own size}.

    seg: H x W int32 labels; depth/keypoints/edges: H x W float32; normal:
    H x W x 3 float32 unit vectors. `image` is an H x W x 3 array (uint8, or
    float in [0, 1]) or a path. `resize`: "stretch" or "letterbox" (module doc).
    """

    def __init__(
        self,
        artifact: str | Path,
        device: str = "cpu",
        provider: str | None = None,
        threads: int | None = None,
        precision: str | None = None,
        head: str | None = None,
        resize: str = "stretch",
    ) -> None:
        self.resize = resize
        place((1, 1), (1, 1), resize)  # validates the mode before loading anything
        refs = resolve_artifacts(artifact, head=head, precisions=[precision] if precision else None)
        self.ref = _pick(refs, device, precision)
        self.runner: Runner = open_runner(
            self.ref, RunnerOptions(device=device, provider=provider, threads=threads)
        )
        self.runner.load()
        self._fixed = self.runner.batch_limits()[0]
        from edgemtl.data.preprocess import InputSpec

        inp = self.ref.manifest.input
        self.spec = InputSpec(inp.height, inp.width, tuple(inp.mean), tuple(inp.std))  # type: ignore[arg-type]

    @property
    def class_names(self) -> dict[str, list[str]]:
        return {t.key: list(t.class_names) for t in self.ref.tasks if t.class_names}

    def predict(self, image: np.ndarray | str | Path) -> dict[str, np.ndarray]:
        return self.predict_batch([image])[0]

    def predict_batch(
        self, images: Sequence[np.ndarray | str | Path]
    ) -> list[dict[str, np.ndarray]]:
        from edgemtl.deploy.frames import preprocess_frame

        frames = [
            read_image(im) if isinstance(im, (str, Path)) else to_rgb01(im, "image")
            for im in images
        ]
        placements = [place(f.shape[:2], self.ref.input_hw, self.resize) for f in frames]
        batch = np.stack([preprocess_frame(f, self.spec, p) for f, p in zip(frames, placements)])
        n = len(frames)
        if n < self._fixed:
            batch = np.concatenate([batch, np.repeat(batch[-1:], self._fixed - n, axis=0)])
        if self._fixed > 1 and n > self._fixed:
            return [
                r
                for i in range(0, n, self._fixed)
                for r in self.predict_batch(images[i : i + self._fixed])
            ]
        if self._fixed == 1 and n > 1:
            return [self.predict_batch([im])[0] for im in images]
        return postprocess(self.ref, self.runner.infer(batch), placements)

    def close(self) -> None:
        self.runner.close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def predict_command(
    artifact: Path, inputs: Sequence[Path], options: PredictOptions
) -> list[dict[str, Any]]:
    """Predict every input image; write `<name>.npz` (+ `<name>.<task>.png`) into `options.out`,
    and `predictions.json` (artifact, resize mode, each input's size and files).

    A frame whose aspect ratio differs from the model input's is stretched with a
    warning (once per frame size) unless `options.resize` is "letterbox".
    """
    from rich.console import Console

    from edgemtl.core.progress import bar

    files = _expand(inputs)
    out, quiet, run = options.out, options.quiet, options.runner
    console = Console(stderr=True, quiet=quiet)
    written: list[dict[str, Any]] = []
    warned: dict[tuple[int, int], str] = {}
    with Predictor(
        artifact,
        run.device,
        run.provider,
        run.threads,
        options.precision,
        options.select.head,
        options.resize,
    ) as predictor:
        names = predictor.class_names
        specs = {t.key: t for t in predictor.ref.tasks}
        stems = output_names(files)
        for stem in stems:  # an output named like an input (a.png beside a.seg.png) is refused
            pngs = [f"{stem}.{key}.png" for key in specs] if options.overlays else []
            for name in (f"{stem}.npz", *pngs):
                check_not_an_input(Path(out) / name, "--out", files)
        input_hw = predictor.ref.input_hw
        with bar(console, f"predict {predictor.ref.label}", len(files)) as advance:
            for i, path in enumerate(files):
                image = read_image(path)
                size = (int(image.shape[0]), int(image.shape[1]))
                note = aspect_warning(size, input_hw) if options.resize == "stretch" else None
                if note and size not in warned:
                    warned[size] = note
                    console.print(f"[yellow]warning:[/] {path.name}: {note}", highlight=False)
                result = predictor.predict(image)
                paths = write_outputs(out, stems[i], image, result, specs, names, options.overlays)
                written.append(
                    {
                        "input": str(path),
                        "size": list(size),
                        "resize": options.resize,
                        "distorted": note is not None,
                        "outputs": [str(p) for p in paths],
                    }
                )
                advance(i + 1, len(files))
    atomic_write_json(
        Path(out) / PREDICTIONS_FILE,
        {
            "kind": "edgemtl-predictions",
            "artifact": str(predictor.ref.path),
            "label": predictor.ref.label,
            "runner": predictor.runner.name,
            "input_size": list(input_hw),
            "resize": options.resize,
            "predictions": written,
        },
    )
    Console(quiet=quiet).print(
        f"{len(files)} image(s) -> {out} ({predictor.ref.label}, {predictor.runner.name}, "
        f"{options.resize} to {input_hw[0]}x{input_hw[1]})"
    )
    return written


def _expand(inputs: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            files.extend(sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        elif item.is_file():
            files.append(item)
        else:
            raise UserError(f"{item}: no such image file or folder")
    if not files:
        raise UserError("predict: no input images (PNG/JPG/.npy files or folders of them)")
    return files


def output_names(files: Sequence[Path]) -> list[str]:
    """One output name per input, never two alike: the stem; for inputs sharing a stem, the
    stem and suffix (`a_jpg`, `a_png`); then the parent folder too; then a counter."""
    names = [f.stem for f in files]
    steps = (
        lambda f: f"{f.stem}_{f.suffix.lstrip('.')}",
        lambda f: f"{f.parent.name}_{f.stem}_{f.suffix.lstrip('.')}",
    )
    for step in steps:
        clash = {n for n in names if names.count(n) > 1}
        names = [step(f) if n in clash else n for f, n in zip(files, names)]
    taken: set[str] = set()
    unique = []
    for name in names:
        candidate, k = name, 1
        while candidate in taken:
            k += 1
            candidate = f"{name}_{k}"
        taken.add(candidate)
        unique.append(candidate)
    return unique
