"""Data loading throughput per reader -> benchmarks/results/data_loading.json.

For each on-disk format (fixtures written at the real datasets' sizes into a
temp folder) it times what one DataLoader worker does per sample: read +
decode + (augment) + the shared preprocessing to the recipe's input size, on
ONE core (CPU time, so neighbours on a shared machine do not count). Then it
times a DataLoader with 0 and 2 workers (wall clock), and one training step of
`recipes/synthetic.yaml` (width 0.125, 64x128, batch 8, one thread), and says
whether one worker keeps up with that step.

    python benchmarks/data_loading.py [--n 24] [--steps 6] [--out PATH]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.helpers: the fixture writers the tests use

from edgemtl.core.config import AugmentConfig, load_recipe
from edgemtl.core.io import atomic_write_json
from edgemtl.data.augment import build_augmenter
from edgemtl.data.preprocess import InputSpec
from edgemtl.data.readers import open_reader
from edgemtl.data.synthetic import SynthParams, write_dataset
from tests.helpers.data_fixtures import write_folder, write_npy_release, write_taskonomy

RESULT = REPO / "benchmarks" / "results" / "data_loading.json"
PAPER_AUGMENT = AugmentConfig(scale=(1.0, 1.2, 1.5), flip=True, jitter=0.0)


def _datasets(tmp: Path, n: int) -> list[dict[str, Any]]:
    """(name, kind, root, tasks, model size, file size) of each fixture, written at real sizes."""
    counts = {"train": n, "val": 1}
    write_npy_release(tmp / "nyuv2", "nyuv2", counts, "label", 13, h=288, w=384)
    write_npy_release(
        tmp / "cityscapes", "cityscapes", counts, "label_7", 7, h=128, w=256, normals=False
    )
    write_taskonomy(
        tmp / "taskonomy", buildings={"a": "train", "b": "val"}, per_building=n, size=512
    )
    write_folder(tmp / "folder", counts, h=256, w=512)
    write_dataset(tmp / "synthetic", SynthParams(n_train=n, n_val=1, height=64, width=128, seed=0))
    return [
        {
            "name": "nyuv2 (.npy, 288x384)",
            "kind": "nyuv2",
            "root": tmp / "nyuv2",
            "tasks": ["seg", "depth", "normal"],
            "size": (288, 384),
        },
        {
            "name": "cityscapes (.npy, 128x256)",
            "kind": "cityscapes",
            "root": tmp / "cityscapes",
            "tasks": ["seg", "depth"],
            "size": (128, 256),
        },
        {
            "name": "taskonomy (PNG 512x512 -> 256x256)",
            "kind": "taskonomy",
            "root": tmp / "taskonomy",
            "tasks": ["seg", "depth", "normal", "keypoints", "edges"],
            "size": (256, 256),
            "options": {"size": [256, 256]},
        },
        {
            "name": "folder (PNG + .npy, 256x512 -> 128x256)",
            "kind": "folder",
            "root": tmp / "folder",
            "tasks": ["seg", "depth", "normal"],
            "size": (128, 256),
        },
        {
            "name": "synthetic (.npy, 64x128)",
            "kind": "synthetic",
            "root": tmp / "synthetic",
            "tasks": ["seg", "depth", "normal", "keypoints", "edges"],
            "size": (64, 128),
        },
    ]


def _per_sample(dataset: Any, n: int) -> float:
    """Samples per CPU-second of dataset[i] (one core), after one warm-up pass."""
    for i in range(min(2, n)):
        dataset[i]
    cpu0 = time.process_time()
    for i in range(n):
        dataset[i]
    return n / max(time.process_time() - cpu0, 1e-9)


def _loader_wall(dataset: Any, workers: int, batch: int = 4) -> float:
    from edgemtl.training.data import train_loader

    start = time.perf_counter()
    count = 0
    for images, _ in train_loader(dataset, batch, 0, 0, 0, workers):
        count += images.shape[0]
    return count / (time.perf_counter() - start)


def _train_step_rate(steps: int) -> dict[str, Any]:
    """Images/s of the synthetic recipe's training step (forward + backward + Adam), one thread."""
    import torch

    from edgemtl.core.tasks import make_spec
    from edgemtl.data.synthetic import CLASS_NAMES
    from edgemtl.training.methods import StepContext, build_method

    torch.set_num_threads(1)
    recipe = load_recipe(REPO / "recipes" / "synthetic.yaml")
    specs = [
        make_spec("seg", list(CLASS_NAMES)),
        *(make_spec(k) for k in ("depth", "normal", "keypoints", "edges")),
    ]
    method = build_method(recipe, specs)
    net = method.build_model()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    batch = recipe.train.batch_size
    h, w = recipe.data.size
    x = torch.randn(batch, 3, h, w)
    targets = {
        "seg": torch.randint(0, len(CLASS_NAMES), (batch, h, w)),
        "depth": torch.rand(batch, 1, h, w) + 0.5,
        "normal": torch.nn.functional.normalize(torch.randn(batch, 3, h, w), dim=1),
        "keypoints": torch.rand(batch, 1, h, w),
        "edges": torch.rand(batch, 1, h, w),
    }
    ctx = StepContext(0, 1, 0, 1)

    def step() -> None:
        terms = method.loss_terms(method.forward(net, x, ctx), targets, ctx)
        total = sum(sum(group.values()) for group in terms.values())
        optimizer.zero_grad()
        total.backward()  # type: ignore[union-attr]
        optimizer.step()

    step()
    cpu0 = time.process_time()
    for _ in range(steps):
        step()
    cpu = time.process_time() - cpu0
    return {
        "recipe": "recipes/synthetic.yaml",
        "batch_size": batch,
        "size": [h, w],
        "width": recipe.model.width,
        "threads": 1,
        "images_per_s": round(steps * batch / cpu, 1),
        "ms_per_step": round(1000 * cpu / steps, 1),
    }


def measure(n: int, steps: int) -> dict[str, Any]:
    from edgemtl.training.data import PreparedSplit

    readers = []
    with tempfile.TemporaryDirectory(prefix="edgemtl-bench-") as tmp:
        for ds in _datasets(Path(tmp), n):
            reader = open_reader(ds["kind"], ds["root"], "train", ds["tasks"], ds.get("options"))
            spec = InputSpec(*ds["size"])
            plain = PreparedSplit(reader, spec)
            augmented = PreparedSplit(
                reader,
                spec,
                build_augmenter(PAPER_AUGMENT, ds["size"], getattr(reader, "encodings", {})),
                seed=0,
            )
            row = {
                "reader": ds["name"],
                "kind": ds["kind"],
                "model_size": list(ds["size"]),
                "tasks": ds["tasks"],
                "samples_per_s_1core": round(_per_sample(plain, n), 1),
                "samples_per_s_1core_augmented": round(_per_sample(augmented, n), 1),
                "loader_samples_per_s_wall": {
                    str(wk): round(_loader_wall(plain, wk), 1) for wk in (0, 2)
                },
            }
            readers.append(row)
            print(
                f"{row['reader']:<42} {row['samples_per_s_1core']:>8.1f} /s  "
                f"augmented {row['samples_per_s_1core_augmented']:>8.1f} /s  loader "
                f"{row['loader_samples_per_s_wall']}"
            )
    train = _train_step_rate(steps)
    synthetic = next(r for r in readers if r["kind"] == "synthetic")
    ratio = synthetic["samples_per_s_1core"] / train["images_per_s"]
    print(
        f"synthetic training step: {train['images_per_s']} img/s (1 thread); one loader core: "
        f"{synthetic['samples_per_s_1core']} samples/s = {ratio:.1f}x the step"
    )
    import torch

    return {
        "schema_version": 1,
        "n_samples": n,
        "readers": readers,
        "train_step": train,
        "synthetic_loader_over_train_step": round(ratio, 1),
        "keeps_up": ratio >= 1.0,
        "note": "samples_per_s_1core: CPU time of read + decode (+ scale-crop/flip) + preprocess "
        "per sample on one core; loader_*_wall: DataLoader wall clock with 0 and 2 workers on a "
        "shared 2-core machine.",
        "numpy": np.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def markdown(result: dict) -> str:
    """The docs table, rendered from the JSON by benchmarks/readme_tables.py."""
    lines = [
        "| reader | model size | samples/s, 1 core | with scale-crop + flip "
        "| DataLoader, 0 / 2 workers (wall) |",
        "|---|---|---|---|---|",
    ]
    for row in result["readers"]:
        size = "x".join(str(v) for v in row["model_size"])
        wall = row["loader_samples_per_s_wall"]
        lines.append(
            f"| {row['reader']} | {size} | {row['samples_per_s_1core']:.0f} | "
            f"{row['samples_per_s_1core_augmented']:.0f} "
            f"| {wall.get('0', float('nan')):.0f} / {wall.get('2', float('nan')):.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="Training samples per fixture.")
    parser.add_argument("--steps", type=int, default=6, help="Timed training steps.")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    result = measure(args.n, args.steps)
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
