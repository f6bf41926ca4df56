"""`profile` (with --all-formats, which derives the bundle's FP16 and INT8 ONNX first) and
`predict` on an ONNX bundle in a fresh interpreter where torch cannot be imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from edgemtl.core.errors import TRAIN_EXTRA
from tests.helpers.cli import REPO
from tests.helpers.toy_bundle import make_toy_bundle

SCRIPT = textwrap.dedent("""
    import json, sys
    sys.modules["torch"] = None  # any `import torch` now raises ImportError
    from pathlib import Path
    from edgemtl.core.options import OutputFiles
    from edgemtl.deploy.profile.command import ProfileOptions, profile_command
    from edgemtl.deploy.profile.timing import TimingConfig
    from edgemtl.deploy.predict import PredictOptions, Predictor, predict_command
    from edgemtl.deploy.runtime import RunnerOptions
    bundle, frame, out = map(Path, sys.argv[1:4])
    files = OutputFiles(json=str(out / "r.json"), plot=str(out / "p.png"),
                        markdown=str(out / "r.md"))
    timing = TimingConfig(warmup_iterations=1, warmup_s=0.0, iterations=3)
    result = profile_command([bundle], ProfileOptions(
        batches=[1, 2], timing=timing, idle_s=0.0, runner=RunnerOptions(threads=1), output=files,
        quiet=True, all_formats=True))
    one_thread = RunnerOptions(threads=1)
    predict_command(bundle, [frame],
                    PredictOptions(out=out / "pred", runner=one_thread, quiet=True))
    seg = Predictor(bundle, threads=1).predict(frame)["seg"]
    from edgemtl.core.errors import UserError
    ckpt = out / "best.pt"
    ckpt.write_bytes(b"not needed: torch is checked first")
    try:
        profile_command([ckpt], ProfileOptions(quiet=True))
        pt_error = ""
    except UserError as err:
        pt_error = str(err)
    sentinel = sys.modules.pop("torch")  # still the blocker: nothing imported torch for real
    print(json.dumps({"torch_modules": [m for m in sys.modules if m.startswith("torch.")],
                      "torch_in": sentinel is not None or "torch" in sys.modules,
                      "rows": len(result["artifacts"][0]["rows"]), "seg": list(seg.shape),
                      "labels": [a["label"] for a in result["artifacts"]],
                      "frame": sorted(result["artifacts"][0]["frame_pipeline"]["stages_ms"]),
                      "pt": pt_error}))
""")


def test_profile_and_predict_without_torch(tmp_path: Path) -> None:
    bundle = make_toy_bundle(tmp_path / "b")
    frame = tmp_path / "f.png"
    Image.fromarray((np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)).save(
        frame
    )
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(bundle), str(frame), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert TRAIN_EXTRA in report.pop("pt")  # a checkpoint says what to install
    assert report == {
        "torch_modules": [],
        "torch_in": False,
        "rows": 2,
        "seg": [20, 30],
        "labels": ["student fp32 onnx", "student fp16 onnx", "student int8 onnx"],
        "frame": ["decode", "infer", "postprocess", "preprocess"],
    }
    assert (
        (out / "r.json").is_file()
        and (out / "p.png").is_file()
        and (out / "pred" / "f.seg.png").is_file()
    )
