"""TensorRT engine build (TensorRT 10.x and 11.x Python API), from a bundle's ONNX files.

Why a pure strategy function: the version rules (docs/export.md, "TensorRT") are the part
that goes wrong silently, so they are decided in `choose_strategy` and tested on
machines without a GPU:
- TensorRT 10: weakly typed network; FP16 builds from the FP32 ONNX with
  `BuilderFlag.FP16`; INT8 parses the symmetric QDQ ONNX with `BuilderFlag.INT8`
  (explicit quantization; no calibrator, those are deprecated since 10.1).
- TensorRT 11 (and later): the FP16/INT8 builder flags and calibrators are gone;
  the network is strongly typed and precision comes from the ONNX graph itself
  (the FP16-typed ONNX, or the QDQ ONNX).
- `unpool` Teachers (and ensembles, which contain one) are refused up front: the
  exporter turns MaxUnpool into ScatterND and TensorRT's ONNX parser has no
  MaxUnpool; their Students (ConvTranspose only) are fine.
Never a silent FP32: an FP16/INT8 request always maps to a graph or flag of that
precision, or to an error.

Torch-free; `tensorrt` is imported only inside `build_engine`.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgemtl.core.errors import UserError
from edgemtl.core.heads import STUDENT, runs_teacher_decoder
from edgemtl.core.io import atomic_write_bytes

if TYPE_CHECKING:
    import tensorrt

SUPPORTED_MAJORS = (10, 11)
DEFAULT_WORKSPACE_BYTES = 2 << 30


@dataclass(frozen=True)
class BuildStrategy:
    """How to build one engine: which ONNX to parse, which flags, typing mode."""

    trt_major: int
    precision: str  # what the engine is (fp32 | fp16 | int8)
    onnx_precision: str  # which bundle ONNX to parse (fp32 | fp16 | int8)
    builder_flags: tuple[str, ...] = ()  # BuilderFlag member names
    strongly_typed: bool = False
    note: str = ""

    @property
    def flags(self) -> list[str]:
        """What the manifest records as the engine's flags."""
        return list(self.builder_flags) + (["STRONGLY_TYPED"] if self.strongly_typed else [])


def parse_version(version: str) -> tuple[int, int]:
    match = re.match(r"^\s*(\d+)\.(\d+)", str(version))
    if not match:
        raise UserError(f"cannot read TensorRT version {version!r}: expected e.g. 10.3.0")
    return int(match.group(1)), int(match.group(2))


def unpool_blocked(head: str, upsampling: str) -> bool:
    """True when this head's graph holds MaxUnpool (ScatterND after export): unpool
    upsampling and a head that runs the Teacher decoder (`heads.runs_teacher_decoder`)."""
    return upsampling == "unpool" and runs_teacher_decoder(head)


def refuse_unpool(head: str, upsampling: str) -> None:
    if unpool_blocked(head, upsampling):
        raise UserError(
            f"TensorRT cannot build the {head} head: its decoder uses unpool (max-pool indices), "
            "which TensorRT's ONNX parser does not support; export the student head for TensorRT, "
            "or use the ONNX files with ONNX Runtime"
        )


def choose_strategy(
    trt_version: str, precision: str, upsampling: str = "bilinear", head: str = STUDENT
) -> BuildStrategy:
    """The build recipe for `precision` on TensorRT `trt_version` (pure; raises UserError)."""
    if precision not in ("fp32", "fp16", "int8"):
        raise UserError(f"unknown precision {precision!r}: expected fp32, fp16 or int8")
    refuse_unpool(head, upsampling)
    major, _minor = parse_version(trt_version)
    if major < SUPPORTED_MAJORS[0]:
        raise UserError(
            f"TensorRT {trt_version} is not supported (10.x or 11.x needed; JetPack 6+): "
            "profile the ONNX files with ONNX Runtime instead"
        )
    if major == 10:
        if precision == "fp32":
            return BuildStrategy(major, "fp32", "fp32", note="TensorRT 10, FP32 ONNX")
        if precision == "fp16":
            return BuildStrategy(
                major,
                "fp16",
                "fp32",
                ("FP16",),
                note="TensorRT 10, FP32 ONNX with the FP16 builder flag",
            )
        return BuildStrategy(
            major,
            "int8",
            "int8",
            ("INT8",),
            note="TensorRT 10, explicit quantization from the QDQ ONNX",
        )
    note = f"TensorRT {major}: strongly typed, precision from the {precision} ONNX"
    if major > SUPPORTED_MAJORS[-1]:
        note += f" (TensorRT {major} is newer than tested: built as for 11)"
    return BuildStrategy(major, precision, precision, (), True, note)


def engine_file(head: str, precision: str) -> str:
    return f"{head}.{precision}.trt"


# ---- environment -------------------------------------------------------------------------


def import_tensorrt() -> Any | None:
    """Real TensorRT or None (`tensorrt-stubs` imports as an empty namespace package)."""
    try:
        import tensorrt as trt
    except Exception:  # noqa: BLE001 (a broken install raises OSError on its libraries)
        return None
    return trt if hasattr(trt, "Builder") and hasattr(trt, "__version__") else None


def gpu_info() -> dict[str, str] | None:
    """{gpu, compute_capability} of GPU 0 via a CUDA binding, else nvidia-smi; None if no GPU."""
    try:  # the runtime's probe (cuda-python or pycuda); imported by name to keep mypy's scope here
        facts = importlib.import_module("edgemtl.deploy.runtime.trt_env").gpu_facts()
        return {"gpu": str(facts["gpu"]), "compute_capability": str(facts["compute_capability"])}
    except Exception:  # noqa: BLE001, S110 (no binding or no GPU: try nvidia-smi next)
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()[0] if out.strip() else ""
    if "," not in first:
        return None
    name, cc = (part.strip() for part in first.rsplit(",", 1))
    return {"gpu": name, "compute_capability": cc}


def availability() -> tuple[bool, str]:
    """(True, version) where engines can be built here, else (False, the reason)."""
    trt = import_tensorrt()
    if trt is None:
        return False, "TensorRT is not installed here (only its type stubs, or nothing)"
    if gpu_info() is None:
        return False, f"TensorRT {trt.__version__} is installed but no CUDA GPU is visible"
    return True, str(trt.__version__)


# ---- the build -----------------------------------------------------------------------------


@dataclass
class BuildResult:
    engine: Path
    version: str
    gpu: str
    compute_capability: str
    flags: list[str]
    warnings: list[str] = field(default_factory=list)

    def trt_record(self, strategy: BuildStrategy, built_from: str) -> dict[str, Any]:
        return {
            "version": self.version,
            "gpu": self.gpu,
            "compute_capability": self.compute_capability,
            "flags": self.flags,
            "strategy": strategy.note,
            "built_from": built_from,
        }


def _parser_errors(parser: tensorrt.OnnxParser) -> list[str]:
    errors = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        where = (
            f"node {err.node()} ({err.node_operator()} {err.node_name()!r})"
            if err.node() >= 0
            else "graph"
        )
        errors.append(f"{where}: {err.desc()}")
    return errors


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    strategy: BuildStrategy,
    *,
    input_name: str,
    chw: tuple[int, int, int],
    batch: tuple[int, int, int],
    dynamic: bool,
    timing_cache: str | Path | None = None,
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
) -> BuildResult:
    """Parse `onnx_path`, build, write the serialized engine to `engine_path` atomically.

    `batch` is (min, opt, max); with `dynamic` an optimisation profile spans it.
    The timing cache is read if present and written back after the build.
    """
    if import_tensorrt() is None:
        raise UserError("TensorRT is not installed here: build the engine on the target device")
    import tensorrt as trt  # the real module now; mypy checks these calls against tensorrt-stubs

    gpu = gpu_info() or {"gpu": "unknown", "compute_capability": "unknown"}
    messages: list[str] = []

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: tensorrt.ILogger.Severity, msg: str) -> None:
            if severity in keep:
                messages.append(str(msg))

    sev = trt.ILogger.Severity
    keep = (sev.INTERNAL_ERROR, sev.ERROR, sev.WARNING)
    logger = _Logger()
    builder: tensorrt.Builder = trt.Builder(logger)
    creation = 0
    if strategy.strongly_typed:
        creation |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network: tensorrt.INetworkDefinition = builder.create_network(creation)
    parser: tensorrt.OnnxParser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = _parser_errors(parser) or ["(the parser gave no details)"]
        raise UserError(
            f"{onnx_path}: TensorRT's ONNX parser failed with {len(errors)} error(s): "
            + "; ".join(errors)
        )

    config: tensorrt.IBuilderConfig = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    for name in strategy.builder_flags:
        flag = getattr(trt.BuilderFlag, name, None)
        if flag is None:  # never fall back to FP32 silently
            raise UserError(
                f"TensorRT {trt.__version__} has no BuilderFlag.{name}: cannot build "
                f"{strategy.precision}"
            )
        config.set_flag(flag)

    cache_path = Path(timing_cache) if timing_cache else None
    cache_bytes = cache_path.read_bytes() if cache_path and cache_path.is_file() else b""
    cache: tensorrt.ITimingCache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, False)

    if dynamic:
        profile: tensorrt.IOptimizationProfile = builder.create_optimization_profile()
        lo, opt, hi = batch
        profile.set_shape(
            input_name, trt.Dims([lo, *chw]), trt.Dims([opt, *chw]), trt.Dims([hi, *chw])
        )
        config.add_optimization_profile(profile)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        tail = "; ".join(messages[-3:]) or "no message from TensorRT"
        raise UserError(f"{onnx_path}: TensorRT engine build failed ({strategy.note}): {tail}")
    atomic_write_bytes(engine_path, bytes(memoryview(serialized)))
    if cache_path is not None:
        atomic_write_bytes(cache_path, bytes(memoryview(config.get_timing_cache().serialize())))
    return BuildResult(
        Path(engine_path),
        str(trt.__version__),
        gpu["gpu"],
        gpu["compute_capability"],
        strategy.flags,
        [m for m in messages if m],
    )
