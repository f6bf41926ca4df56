"""`edgemtl export` options: what the command takes besides its source.

Torch-free; the CLI builds `ExportOptions` from its flags (one field each) and
Python callers build it directly. Bad values fail here, before any work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgemtl.core.errors import UserError, excerpt, short
from edgemtl.core.heads import parse_head
from edgemtl.core.options import at_least_one, choice, non_negative
from edgemtl.core.paths import check_output_dir
from edgemtl.export import parity


@dataclass(frozen=True)
class ExportOptions:
    """Everything `export_command` takes besides the source (the CLI maps one flag each).

    head: None = the bundle's head, else the checkpoint's default head
    (`edgemtl.core.heads.default_head`); outputs: "raw" or "decoded"; calib:
    INT8 calibration images (train split); samples: parity images (val split);
    data_root: dataset root for both (None: where the checkpoint recorded it);
    tolerances: parity bound overrides (`parity.Tolerances` field -> value);
    trt: True = engines required, None = where possible, False = never;
    runs_dir: where a missing source is looked for (newest runs/*/best.pt);
    export_dir: parent of the default bundle folder.
    """

    head: str | None = None
    outputs: str = "raw"
    fp16: bool = False
    int8: bool = False
    calib: int = 64
    dynamic_batch: bool = False
    max_batch: int = 16
    simplify: bool = True
    data_root: str | None = None
    out: Path | None = None
    force: bool = False
    tolerances: Mapping[str, float] = field(default_factory=dict)
    samples: int = 8
    trt: bool | None = None
    quiet: bool = False
    runs_dir: Path = Path("runs")
    export_dir: Path = Path("export")

    def __post_init__(self) -> None:
        choice(self.outputs, "--outputs", ("raw", "decoded"))
        if self.head is not None:
            parse_head(self.head)
        at_least_one(self.calib, "--calib")
        at_least_one(self.samples, "--samples")
        at_least_one(self.max_batch, "--max-batch")
        for name, value in self.tolerances.items():
            non_negative(value, f"--tol {name}")
        parity.Tolerances.with_overrides(dict(self.tolerances))  # validates names
        if self.out is not None:  # where the bundle goes; the default folder is checked
            check_output_dir(self.out, "--out")  # once the run's name is known


def parse_tolerances(items: list[str] | None) -> dict[str, float]:
    """`--tol fp32_max_abs=2e-3` items -> {name: value} (names: `parity.Tolerances` fields)."""
    out: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise UserError(
                f"--tol {excerpt(item)}: expected NAME=NUMBER, e.g. fp32_max_abs=2e-3"
            ) from None
    for name, value in out.items():
        non_negative(value, f"--tol {short(name)}")
    parity.Tolerances.with_overrides(out)  # validates names
    return out
