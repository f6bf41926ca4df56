"""The prepared GPU check (scripts/gpu_check.sh -> benchmarks/gpu_check.py, issue 16).

On a machine without a GPU every GPU section is skipped with its reason;
`--cpu-smoke` runs the same sections on the CPU at tiny settings; where CUDA
exists `--smoke --device cuda` goes through every CUDA path (a `gpu` test).
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from tests.helpers.cli import REPO

SCRIPT = REPO / "scripts" / "gpu_check.sh"
GPU_SECTIONS = ("cuda_mem", "train", "profile", "train_full", "train_step", "pytest")


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check(out: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--out", str(out), *args],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=900,
    )
    path = out / "gpu_check.json"
    return proc, json.loads(path.read_text()) if path.is_file() else {}


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here: nothing is skipped")
def test_without_a_gpu_every_gpu_section_skips_with_its_reason(tmp_path: Path) -> None:
    proc, result = _check(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for name in GPU_SECTIONS:
        (line,) = [ln for ln in lines if ln.startswith(f"== SKIP {name}: ")]
        assert "torch.cuda.is_available() is False" in line
        assert result["sections"][name] == {"status": "skipped", "reason": line.split(": ", 1)[1]}
    assert "--cpu-smoke runs it" in next(ln for ln in lines if ln.startswith("== SKIP train:"))
    env = result["sections"]["env"]
    assert env["status"] == "ok" and env["facts"]["torch"] == torch.__version__
    install = result["install"]  # everything is in this venv: nothing installed, torch as it was
    assert install["installed"] == [] and install["errors"] == [] and install["missing"] == []
    assert install["torch_before"] == install["torch_after"] == md.version("torch")


@pytest.mark.slow
def test_cpu_smoke_runs_every_section_and_reruns_one(tmp_path: Path) -> None:
    proc, result = _check(tmp_path, "--cpu-smoke", "--no-install")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sections = result["sections"]
    assert result["smoke"] is True and result["device"] == "cpu"
    for name in ("cuda_mem", "pytest"):
        assert sections[name]["status"] == "skipped" and sections[name]["reason"]
    for name in ("env", "train", "profile", "train_full", "train_step"):
        assert sections[name]["status"] == "ok", sections[name]
    train = sections["train"]["rows"]
    assert [r["setting"] for r in train] == ["fp32", "bf16 channels_last"]
    assert all(r["img_per_s_steady"] > 0 and r["checkpoint_finite"] for r in train)
    assert all(r["steps"] == 4 and r["device"] == "cpu" for r in train)  # 2 epochs x 2 steps
    timed = sections["profile"]["rows"]
    assert {(r["head"], r["batch"]) for r in timed} == {
        (h, b) for h in ("student", "teacher") for b in (1, 2)
    }
    assert all(0 < r["p50_ms"] <= r["p99_ms"] and r["count"] == 3 for r in timed)
    params = {r["head"]: r["params_m"] for r in timed}
    assert 0 < params["student"] < params["teacher"]
    assert [r["row"] for r in sections["train_step"]["rows"]] == ["vanilla", "sd"]
    assert [r["option"] for r in sections["train_full"]["rows"]] == ["fp32", "channels_last+bf16"]
    text = _module().markdown(result)
    for title in ("edgemtl train recipes", "train_step_speed.py", "train_step.py", "Torch runner"):
        assert title in text
    assert "smoke run" in text and "| student | host wall time | 0.125 | 1 |" in text
    before = json.dumps(sections["profile"])
    proc, again = _check(tmp_path, "--cpu-smoke", "--no-install", "--only", "train_full")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.dumps(again["sections"]["profile"]) == before  # kept, not rerun
    assert "== train_full: ok" in proc.stdout and "== profile" not in proc.stdout
    assert again["started"] != result["started"] or again["elapsed_s"] != result["elapsed_s"]


def test_a_section_past_its_cap_is_killed_and_recorded(tmp_path: Path) -> None:
    args = ("--cpu-smoke", "--no-install", "--only", "train", "--cap", "train=3")
    proc, result = _check(tmp_path, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    train = result["sections"]["train"]
    assert train["status"] == "timeout" and train["cap_s"] == 3 and train["seconds"] < 10
    assert "== train: timeout in" in proc.stdout
    assert result["sections"]["env"]["status"] == "ok"  # the others still ran and were written


def test_never_writes_into_committed_results_nor_runs_unknown_sections(tmp_path: Path) -> None:
    results = REPO / "benchmarks" / "results"
    proc, _ = _check(results, "--no-install")
    assert proc.returncode == 1 and "never inside benchmarks/results/" in proc.stdout
    assert not (results / "gpu_check.json").exists()
    proc, _ = _check(tmp_path, "--only", "train,warp", "--no-install")
    assert proc.returncode == 1 and "unknown warp" in proc.stdout
    assert not (tmp_path / "gpu_check.json").exists()


def test_only_absent_or_older_carried_wheels_are_installed() -> None:
    pick = _module().wheels_to_install
    have = md.version("pydantic")
    wheels = [
        Path(f"pydantic-{have}-py3-none-any.whl"),  # same version: kept as is
        Path("pydantic-0.1-py3-none-any.whl"),  # older than installed: kept as is
        Path("pydantic-999.0-py3-none-any.whl"),  # newer: installed
        Path("nosuchdist_xyz-1.0-py3-none-any.whl"),  # absent: installed
    ]
    assert pick(wheels) == wheels[2:]


def test_every_carried_wheel_has_a_version_to_pin_here() -> None:
    """scripts/gpu_wheels.sh pins each carried distribution to this venv's version."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--carried"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = proc.stdout.split()
    assert names == list(_module().CARRIED) and "pydantic" in names and "onnxsim" in names
    assert all(md.version(name) for name in names)
    for script in ("gpu_check.sh", "gpu_wheels.sh"):
        subprocess.run(["bash", "-n", str(REPO / "scripts" / script)], check=True)


def _third_party_imports() -> set[str]:
    local = {"edgemtl", "tests", *(p.stem for p in (REPO / "benchmarks").glob("*.py"))}
    names = set()
    for folder in ("edgemtl", "benchmarks"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in local}


def _norm(dist: str) -> str:
    return dist.lower().replace("_", "-")


def test_the_device_image_and_carried_wheels_cover_every_import() -> None:
    """A new dependency must be in the device image or carried (CARRIED, scripts/gpu_wheels.sh)."""
    gpu_check = _module()
    known = {_norm(n) for n in (*gpu_check.DEVICE_IMAGE, *gpu_check.CARRIED)}
    # Imported only where present (TensorRT engines, pycuda on Jetson): never carried.
    optional = {"tensorrt", "pycuda"}
    dists = md.packages_distributions()
    dists.update(cuda=["cuda-bindings"], pynvml=["nvidia-ml-py"])  # not in this venv
    uncovered = {
        module: dists.get(module)
        for module in _third_party_imports() - optional
        if not {_norm(d) for d in dists.get(module, [])} & known
    }
    assert uncovered == {}, "add them to DEVICE_IMAGE or CARRIED in benchmarks/gpu_check.py"


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the CUDA smoke run)")
def test_cuda_smoke_goes_through_every_cuda_path(tmp_path: Path) -> None:
    proc, result = _check(tmp_path, "--smoke", "--device", "cuda", "--no-install")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sections = result["sections"]
    assert sections["pytest"]["status"] == "skipped"  # no recursion into this test
    for name in ("env", "train", "profile", "train_full", "train_step"):
        assert sections[name]["status"] == "ok", sections[name]
    for row in sections["train"]["rows"]:  # fit on CUDA, pinned-memory loading, AMP
        assert row["device"].startswith("cuda") and row["pin_memory"] and row["peak_mem_mib"] > 0
        assert row["checkpoint_finite"]
    for row in sections["profile"]["rows"]:
        assert row["latency_kind"] == "compute (CUDA events)" and row["p50_ms"] > 0
    assert all(r["device"] == "cuda" and r["peak_mem_mib"] for r in sections["train_full"]["rows"])
    assert all(r["peak_mem_kind"].startswith("cuda") for r in sections["train_step"]["rows"])
    if sections["env"]["facts"]["cuda_binding"]:
        mem = sections["cuda_mem"]
        assert mem["status"] == "ok", mem
        assert all(r["round_trip_equal"] for r in mem["rows"])
        assert all(r["h2d_ms"] > 0 and r["d2h_ms"] > 0 for r in mem["rows"] if "h2d_ms" in r)
