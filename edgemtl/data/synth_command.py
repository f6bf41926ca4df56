"""`edgemtl data synth`: write a synthetic dataset folder with a progress bar."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from edgemtl.core.errors import UserError, excerpt
from edgemtl.core.options import at_least_one
from edgemtl.core.paths import check_output_dir
from edgemtl.core.progress import bar
from edgemtl.data.imageio import check_pixels


@dataclass(frozen=True)
class SynthOptions:
    """What `synth_command` takes besides the output folder: split sizes, image size
    (height, width; multiples of 16, `parse_size`) and the seed."""

    n_train: int = 512
    n_val: int = 128
    size: tuple[int, int] = (64, 128)
    seed: int = 0
    quiet: bool = False

    def __post_init__(self) -> None:
        at_least_one(self.n_train, "--n-train")
        at_least_one(self.n_val, "--n-val")
        height, width = self.size
        if height % 16 or width % 16 or not height or not width:
            raise UserError(
                f"--size {height}x{width}: both sides must be positive multiples of 16 "
                "(the network pools 4 times)"
            )
        check_pixels("--size", height, width)  # the image size limit of every reader


def parse_size(text: str) -> tuple[int, int]:
    """ "64x128" -> (64, 128); UserError for anything else."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise UserError(f"--size {excerpt(text)}: expected HxW, e.g. 64x128")
    return int(match.group(1)), int(match.group(2))


def synth_command(out: Path, options: SynthOptions) -> Path:
    """Render `options.n_train + options.n_val` scenes into the new folder `out`."""
    from edgemtl.data.synthetic import SynthParams, write_dataset

    (height, width), n_train, n_val = options.size, options.n_train, options.n_val
    check_output_dir(out, "OUT")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty: choose a new folder")
    if out.exists():
        out.rmdir()
    params = SynthParams(
        n_train=n_train, n_val=n_val, height=height, width=width, seed=options.seed
    )
    console = Console(stderr=True, quiet=options.quiet)
    with bar(console, f"rendering {n_train + n_val} scenes", n_train + n_val) as advance:
        write_dataset(out, params, progress=advance)
    Console(quiet=options.quiet).print(
        f"wrote {n_train} train + {n_val} val scenes "
        f"({height}x{width}, seed {options.seed}) to {out}"
    )
    return out
