"""One prepared GPU check: CUDA training and AMP, CUDA-event latency, the cuda-python buffer path.

    bash scripts/gpu_check.sh [--out DIR] [--only SECTION,...] [--smoke] [--device auto|cpu|cuda]

Steps: `install` (in this process: the carried wheels of `.whl/` the Python
lacks, then `pip install --no-deps --no-build-isolation -e .`; never torch,
never the network), then each section in its own child process
(benchmarks/gpu_check_sections.py) under a time cap: `env`, `cuda_mem`,
`train`, `profile`, `train_full`, `train_step`, `pytest`. Without a CUDA GPU
every GPU section is skipped with one line saying why; `--smoke --device cpu`
runs them at tiny settings on the CPU instead (the test suite does). The
result is rewritten to DIR/gpu_check.json after every section (DIR: `--out`,
else `$OUT`, else runs/gpu_check; never benchmarks/results/), and
`--only` reruns some sections into the same file. `markdown(result)` renders
a committed copy, benchmarks/results/gpu_h200.json, for the README
(`<!-- bench:gpu_check:gpu_h200 -->`, benchmarks/readme_tables.py).
Why this size: the install step, the section runner and the tables of one
JSON document belong together; the section bodies live in gpu_check_sections.py.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SECTIONS_PY = REPO / "benchmarks" / "gpu_check_sections.py"
SCHEMA_VERSION = 1

#: section -> (time cap s, expected s on an H200 (FULL plan), needs CUDA whatever --device says).
#: The expected seconds are estimates from the work each section does (see docs/deploy.md).
SECTIONS: dict[str, tuple[int, int, bool]] = {
    "env": (60, 10, False),
    "cuda_mem": (60, 5, True),
    "train": (150, 70, False),
    "profile": (120, 60, False),
    "train_full": (90, 30, False),
    "train_step": (120, 70, False),
    "pytest": (150, 75, True),
}
#: Python distributions the device image lacks (or may hold older): carried as wheels in
#: .whl/ (scripts/gpu_wheels.sh downloads them at this repository's .venv versions).
CARRIED = (
    "pydantic",
    "pydantic-core",
    "annotated-types",
    "typing-inspection",
    "typing-extensions",
    "onnxsim",
    "adjustText",
    "torchjd",
)
#: What edgemtl, its tests and benchmarks import that the image already has.
DEVICE_IMAGE = (
    "torch",
    "numpy",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "typer",
    "rich",
    "pyyaml",
    "pillow",
    "matplotlib",
    "scipy",
    "tensorboard",
    "pytest",
    "packaging",
    "setuptools",
    # optional extras (TensorRT buffers, NVML power): their absence only skips a section
    "cuda-bindings",
    "nvidia-ml-py",
)
OPTIONAL = ("cuda-bindings", "nvidia-ml-py")
#: Code paths this check cannot reach on one H200 with this image.
NOT_CHECKED = {
    "SyncBatchNorm / NCCL under torchrun": "needs 2 GPUs; the lent device has one",
    "TensorRT engines": "TensorRT is not in the device image",
    "ONNX Runtime CUDA provider": "the image's onnxruntime is the CPU build",
}


def _say(line: str, log: Path | None = None) -> None:
    print(line, flush=True)
    if log is not None:
        with log.open("a") as fh:
            fh.write(line + "\n")


def _write(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def _installed(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def _older(have: str, want: str) -> bool:
    try:
        from packaging.version import Version
    except ImportError:  # packaging comes with pip's environment almost everywhere
        return have != want
    return Version(have) < Version(want)


def wheels_to_install(wheels: list[Path]) -> list[Path]:
    """The wheels (file names `NAME-VERSION-...whl`) whose distribution is absent here or older."""
    wanted = []
    for whl in wheels:
        name, version = whl.name.split("-")[:2]
        have = _installed(name)
        if have is None or _older(have, version):
            wanted.append(whl)
    return wanted


def install(log: Path) -> dict[str, Any]:
    """Carried wheels this Python lacks, then edgemtl itself (editable); torch never moves."""
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
    pip += ["--disable-pip-version-check", "--root-user-action=ignore"]
    record: dict[str, Any] = {"python": sys.executable, "torch_before": _installed("torch")}
    wheels = wheels_to_install(sorted((REPO / ".whl").glob("*.whl")))
    steps = []
    if wheels:
        steps.append(("wheels", [*pip, *map(str, wheels)]))
    probe = "import edgemtl, pathlib; print(pathlib.Path(edgemtl.__file__).resolve())"
    found = subprocess.run([sys.executable, "-c", probe], cwd="/", capture_output=True, text=True)
    here = found.returncode == 0 and found.stdout.strip().startswith(str(REPO / "edgemtl"))
    if not here:
        steps.append(("edgemtl", [*pip, "--no-build-isolation", "-e", str(REPO)]))
    names = [" ".join(w.name.split("-")[:2]) for w in wheels]
    record["installed"] = names + ([] if here else ["edgemtl (editable)"])
    record["errors"] = []
    for what, cmd in steps:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            record["errors"].append(f"{what}: {(proc.stderr or proc.stdout).strip()[-800:]}")
    record["torch_after"] = _installed("torch")
    needed = [n for n in (*DEVICE_IMAGE, *CARRIED) if n not in OPTIONAL]
    record["missing"] = [n for n in needed if _installed(n) is None]
    done = ", ".join(record["installed"]) or "nothing (all present)"
    same = record["torch_before"] == record["torch_after"]
    _say(
        f"== install: {done}; torch {record['torch_after']} {'untouched' if same else 'CHANGED'}",
        log,
    )
    if not same:
        record["errors"].append(
            f"torch changed: {record['torch_before']} -> {record['torch_after']}"
        )
    for problem in record["errors"] + [f"missing: {n}" for n in record["missing"]]:
        _say(f"   install problem: {problem} (bash scripts/gpu_wheels.sh carries wheels)", log)
    return record


def run_section(
    name: str, cap: float, device: str, smoke: bool, work: Path, log: Path
) -> dict[str, Any]:
    """One section in a child process (its own process group, killed at `cap` seconds)."""
    part = work / f"{name}.part.json"
    start = time.perf_counter()
    if name == "pytest":
        cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-rs", "-q", "-p", "no:cacheprovider"]
    else:
        cmd = [sys.executable, str(SECTIONS_PY), name, "--part", str(part)]
        cmd += ["--work", str(work / name), "--device", device] + (["--smoke"] if smoke else [])
    env = {**os.environ, "EDGEMTL_CACHE": str(work / "cache"), "PYTHONUNBUFFERED": "1"}
    # The checkout imports even if its editable install failed (the failure is recorded).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    status, tail = "ok", ""
    with log.open("a") as fh:
        fh.write(f"\n===== {name}: {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )  # fmt: skip
        try:
            out, _ = proc.communicate(timeout=cap)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            status = "timeout"
        fh.write(out)
        if status == "ok" and proc.returncode != 0:
            status = "failed"
        tail = "\n".join(out.strip().splitlines()[-15:])
    section: dict[str, Any] = {"status": status, "seconds": round(time.perf_counter() - start, 1)}
    section["cap_s"] = round(cap)
    if part.is_file():
        section.update(json.loads(part.read_text()))
    if name == "pytest":
        section["summary"] = tail.splitlines()[-1] if tail else ""
        section["skipped"] = [ln for ln in out.splitlines() if ln.startswith("SKIPPED")]
    if status != "ok":
        section["error"] = tail
    return section


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder of gpu_check.json (default $OUT)")
    parser.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--smoke", action="store_true", help="tiny settings (seconds on a CPU)")
    parser.add_argument("--cpu-smoke", action="store_true", help="= --smoke --device cpu")
    parser.add_argument("--budget-s", type=float, default=450, help="stop starting sections")
    parser.add_argument(
        "--cap", action="append", default=[], metavar="SECTION=S", help="override a section's cap"
    )
    parser.add_argument("--no-install", action="store_true")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--carried", action="store_true", help="print CARRIED and exit")
    args = parser.parse_args()
    if args.carried:
        print(" ".join(CARRIED))
        return 0
    if args.cpu_smoke:
        args.smoke, args.device = True, "cpu"
    out = (args.out or Path(os.environ.get("OUT") or REPO / "runs" / "gpu_check")).resolve()
    if out == RESULTS or RESULTS in out.parents:
        print(f"--out {out}: never inside benchmarks/results/ (committed results)")
        return 1
    only = args.only.split(",") if args.only else list(SECTIONS)
    unknown = [s for s in only if s not in SECTIONS]
    if unknown:
        print(f"--only {args.only}: unknown {', '.join(unknown)}; expected: {', '.join(SECTIONS)}")
        return 1
    caps = {name: spec[0] for name, spec in SECTIONS.items()}
    for item in args.cap:
        name, _, seconds = item.partition("=")
        if name not in SECTIONS or not seconds.replace(".", "", 1).isdigit():
            print(
                f"--cap {item}: expected SECTION=SECONDS with a section of: {', '.join(SECTIONS)}"
            )
            return 1
        caps[name] = float(seconds)
    out.mkdir(parents=True, exist_ok=True)
    path, log = out / "gpu_check.json", out / "gpu_check.log"
    start = time.perf_counter()
    old = json.loads(path.read_text()) if args.only and path.is_file() else {}
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "what": "edgemtl GPU check (benchmarks/gpu_check.py)",
        "command": " ".join(["scripts/gpu_check.sh", *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "smoke": args.smoke,
        "budget_s": args.budget_s,
        "not_checked": NOT_CHECKED,
        "sections": dict(old.get("sections", {})),
    }
    result["install"] = old.get("install") if args.no_install else install(log)
    work = args.work or Path(tempfile.mkdtemp(prefix="edgemtl-gpu-check-"))
    env = run_section("env", caps["env"], "cpu", args.smoke, work, log)
    result["sections"]["env"] = env
    facts = env.get("facts", {})
    cuda = bool(facts.get("cuda_available"))
    _say(f"== env: {env['status']}: torch {facts.get('torch')}, GPU {facts.get('gpu')}", log)
    if args.device == "cuda" and not cuda:
        print("--device cuda: this PyTorch sees no CUDA GPU (torch.cuda.is_available() is False)")
        return 1
    device = "cpu" if args.device == "cpu" else "cuda" if cuda else None
    result["device"] = device
    for name in [s for s in SECTIONS if s in only and s != "env"]:
        cap, cuda_only = caps[name], SECTIONS[name][2]
        left = args.budget_s - (time.perf_counter() - start)
        reason = None
        if env["status"] != "ok":
            reason = f"the env section {env['status']} (its error is in the JSON)"
        elif device is None:
            reason = "needs a CUDA GPU: torch.cuda.is_available() is False here" + (
                "" if cuda_only else " (--cpu-smoke runs it on the CPU at tiny settings)"
            )
        elif cuda_only and device != "cuda":
            reason = f"needs CUDA; this run is on {device}"
        elif name == "cuda_mem" and not facts.get("cuda_binding"):
            reason = "no CUDA binding (cuda-python / cuda-bindings or pycuda) importable"
        elif name == "pytest" and args.smoke:
            reason = "not in a --smoke run (the GPU tests run the smoke check themselves)"
        elif left < 15:
            reason = f"time budget spent (--budget-s {args.budget_s:g})"
        if reason:
            result["sections"][name] = {"status": "skipped", "reason": reason}
            _say(f"== SKIP {name}: {reason}", log)
        else:
            section = run_section(name, min(cap, left), device, args.smoke, work, log)
            result["sections"][name] = section
            rows = len(section.get("rows", []))
            _say(f"== {name}: {section['status']} in {section['seconds']} s, {rows} row(s)", log)
            if section["status"] != "ok":
                _say("   " + section.get("error", "").replace("\n", "\n   "), log)
        result["elapsed_s"] = round(time.perf_counter() - start, 1)
        _write(path, result)
    result["elapsed_s"] = round(time.perf_counter() - start, 1)
    _write(path, result)
    _say(f"== wrote {path} ({result['elapsed_s']} s)", log)
    if args.work is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


# ------------------------------------------------------------------------------- tables
def _table(head: list[str], rows: list[list[Any]], right: int) -> list[str]:
    """A Markdown table; columns from index `right` on are right-aligned numbers."""
    align = ["---" if i < right else "---:" for i in range(len(head))]
    body = ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return [f"| {' | '.join(head)} |", f"|{'|'.join(align)}|", *body, ""]


def _fmt(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _size(size: Any) -> str:
    return size if isinstance(size, str) else "x".join(map(str, size))


def _train_rows(rows: list[dict[str, Any]]) -> list[str]:
    head = ["setting", "width", "size", "batch", "img/s steady", "img/s fit", "peak MiB"]
    body = [
        [r["setting"], r["width"], _size(r["size"]), r["batch"], _fmt(r["img_per_s_steady"])]
        + [_fmt(r["img_per_s_fit"]), _fmt(r["peak_mem_mib"], 0)]
        for r in rows
    ]
    title = "`edgemtl train recipes/synthetic.yaml` (sd, 5 tasks), 2 epochs per setting:"
    return [title, "", *_table(head, body, 1)]


def _full_rows(rows: list[dict[str, Any]]) -> list[str]:
    head = ["option", "width", "size", "batch", "img/s", "ms/step", "peak MiB"]
    body = [
        [r["option"], r["width"], _size(r["size"]), r["batch"], _fmt(r["images_per_s"])]
        + [_fmt(r["step_ms"]), _fmt(r["peak_mem_mib"], 0)]
        for r in rows
    ]
    title = "The trainer's step (sd, Adam, `benchmarks/train_step_speed.py`) per speed option:"
    return [title, "", *_table(head, body, 1)]


def _step_rows(rows: list[dict[str, Any]]) -> list[str]:
    base = {(r["width"], r["size"], r["batch"]): r for r in rows if r["row"] == "vanilla"}
    head = ["method", "width", "size", "batch", "s/step", "x vanilla", "img/s", "peak MiB"]
    body = []
    for r in rows:
        ref = base.get((r["width"], r["size"], r["batch"]))
        ratio = r["s_per_step_median"] / ref["s_per_step_median"] if ref else None
        body.append(
            [r["row"], r["width"], r["size"], r["batch"], _fmt(r["s_per_step_median"], 4)]
            + [_fmt(ratio, 2), _fmt(r["img_per_s"]), _fmt(r["peak_mem_mib"], 0)]
        )
    return ["`benchmarks/train_step.py` (fp32), vanilla vs sd:", "", *_table(head, body, 1)]


def _profile_rows(rows: list[dict[str, Any]], device: str) -> list[str]:
    teacher = {(_size(r["size"]), r["batch"]): r for r in rows if r["head"] == "teacher"}
    head = ["size", "head", "latency", "width", "batch", "p50 ms", "p99 ms", "img/s"]
    head.append("p50 vs teacher")
    body = []
    for r in rows:
        ref = teacher.get((_size(r["size"]), r["batch"]))
        ratio = r["p50_ms"] / ref["p50_ms"] if ref else None
        body.append(
            [_size(r["size"]), r["head"], r["latency_kind"], r["width"], r["batch"]]
            + [_fmt(r["p50_ms"], 3), _fmt(r["p99_ms"], 3), _fmt(r["img_per_s"]), _fmt(ratio, 2)]
        )
    title = f"Torch runner (`edgemtl profile CKPT --device {device}`), one-step checkpoints:"
    return [title, "", *_table(head, body, 3)]


def markdown(result: dict[str, Any]) -> str:
    """The README / docs tables of one check (benchmarks/readme_tables.py)."""
    sections = result["sections"]
    facts = sections.get("env", {}).get("facts", {})
    gpu = facts.get("gpu")
    lines = [
        (f"{gpu} ({facts.get('gpu_memory_gib')} GiB)" if gpu else f"{facts.get('machine')} CPU")
        + f", torch {facts.get('torch')} (CUDA {facts.get('torch_cuda')}, cuDNN "
        f"{facts.get('cudnn')}), driver CUDA {facts.get('cuda_driver', '-')}, Python "
        f"{facts.get('python')}"
        + (", **smoke run: tiny settings, not figures to quote**" if result.get("smoke") else "")
        + f"; {result.get('elapsed_s')} s in all.",
        "",
    ]
    rows = {name: s.get("rows", []) for name, s in sections.items()}
    if rows.get("train"):
        lines += _train_rows(rows["train"])
    if rows.get("train_full"):
        lines += _full_rows(rows["train_full"])
    if rows.get("train_step"):
        lines += _step_rows(rows["train_step"])
    timed = [r for r in rows.get("profile", []) if "p50_ms" in r]
    if timed:
        lines += _profile_rows(timed, result.get("device") or "cuda")
    pinned = [r for r in rows.get("cuda_mem", []) if r.get("kind") == "pinned"]
    if pinned:
        best = max(pinned, key=lambda r: r["h2d_gb_s"] or 0)
        same = all(r["round_trip_equal"] for r in rows["cuda_mem"])
        lines.append(
            f"cuda-python buffers ({sections['cuda_mem']['facts'].get('cuda_binding')}): "
            f"{best['bytes'] / 2**20:.0f} MiB pinned round trip "
            f"{'equal' if same else 'DIFFERENT'}, H2D {_fmt(best['h2d_gb_s'])} GB/s, "
            f"D2H {_fmt(best['d2h_gb_s'])} GB/s (best of {len(pinned)}, CUDA events)."
        )
    if sections.get("pytest", {}).get("status") not in (None, "skipped"):
        lines.append(f"`pytest -m gpu`: {sections['pytest'].get('summary', '')}")
    others = [
        f"{name} {s['status']}" + (f" ({s['reason']})" if s.get("reason") else "")
        for name, s in sections.items()
        if s.get("status") != "ok"
    ]
    if others:
        lines.append("Skipped or failed: " + "; ".join(others) + ".")
    lines.append(
        "Not checked: " + "; ".join(f"{k} ({v})" for k, v in result["not_checked"].items())
    )
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.exit(main())
