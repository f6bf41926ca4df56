"""Flag an artifact that runs slower than a higher-precision sibling of its bundle.

Why: a lower precision is only worth its accuracy cost when it is faster on the
device at hand, and it is not always (ONNX Runtime's CPU provider runs some ops
of an INT8 QDQ graph in float, FP16 ONNX has few CPU kernels). Siblings are the
artifacts of one bundle folder, head and format; precision ranks fp32 > fp16 >
int8. Torch-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Slower by more than this fraction of the sibling's p50 is flagged (timing noise is not).
MARGIN = 0.03
#: Lower rank = higher precision.
PRECISION_RANK = {"fp32": 0, "fp16": 1, "int8": 2}


def _family(artifact: dict[str, Any]) -> tuple[str, str, str]:
    return (str(Path(artifact["path"]).parent), str(artifact["head"]), str(artifact["format"]))


def _p50(artifact: dict[str, Any], batch: int) -> float | None:
    for row in artifact.get("rows", []):
        if row.get("batch") == batch and "latency" in row:
            return float(row["latency"]["median_ms"])
    return None


def flag_slower(artifacts: list[dict[str, Any]], warnings: list[str]) -> None:
    """Mark each timed row slower than a higher-precision sibling's at the same batch.

    The row gets `slower_than` = {label, precision, ratio} (ratio = this p50 /
    the sibling's, > 1 + `MARGIN`; the fastest such sibling is named) and
    `warnings` a line. Rows without timings (skipped batches) are left alone.
    """
    for artifact in artifacts:
        rank = PRECISION_RANK.get(str(artifact.get("precision")))
        if rank is None:
            continue
        siblings = [
            other
            for other in artifacts
            if other is not artifact
            and _family(other) == _family(artifact)
            and PRECISION_RANK.get(str(other.get("precision")), rank) < rank
        ]
        for row in artifact.get("rows", []):
            if "latency" not in row:
                continue
            mine = float(row["latency"]["median_ms"])
            timed = [(p50, s) for s in siblings if (p50 := _p50(s, row["batch"])) is not None]
            if not timed:
                continue
            best, sibling = min(timed, key=lambda item: item[0])
            if best <= 0 or mine <= best * (1 + MARGIN):
                continue
            ratio = round(mine / best, 3)
            row["slower_than"] = {
                "label": sibling["label"],
                "precision": sibling["precision"],
                "ratio": ratio,
            }
            warnings.append(
                f"{artifact['label']} batch {row['batch']}: p50 {mine:.2f} ms is {ratio:.2f}x "
                f"the {sibling['label']} ({best:.2f} ms): {artifact['precision']} does not pay "
                "on this device"
            )
