"""`edgemtl data synth`: write a synthetic dataset folder with a progress bar."""

from __future__ import annotations

import re
from pathlib import Path

from rich.console import Console

from edgemtl.core.errors import UserError
from edgemtl.core.progress import bar


def parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise UserError(f"--size {text!r}: expected HxW, e.g. 64x128")
    height, width = int(match.group(1)), int(match.group(2))
    if height % 16 or width % 16 or not height or not width:
        raise UserError(f"--size {text}: both sides must be positive multiples of 16 (the network pools 4 times)")
    return height, width


def synth_command(out: Path, n_train: int, n_val: int, size: str, seed: int, quiet: bool) -> Path:
    from edgemtl.data.synthetic import SynthParams, write_dataset

    height, width = parse_size(size)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty: choose a new folder")
    if out.exists():
        out.rmdir()
    params = SynthParams(n_train=n_train, n_val=n_val, height=height, width=width, seed=seed)
    console = Console(stderr=True, quiet=quiet)
    with bar(console, f"rendering {n_train + n_val} scenes", n_train + n_val) as advance:
        write_dataset(out, params, progress=advance)
    Console(quiet=quiet).print(f"wrote {n_train} train + {n_val} val scenes ({height}x{width}, seed {seed}) to {out}")
    return out
