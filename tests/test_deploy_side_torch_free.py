"""The deploy side imports without PyTorch (DESIGN.md: two layers)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

DEPLOY_MODULES = [
    "edgemtl.cli", "edgemtl.core.config", "edgemtl.core.tasks", "edgemtl.evaluation.metrics", "edgemtl.evaluation.scoring", "edgemtl.core.tables",
    "edgemtl.evaluation.baselines", "edgemtl.core.io", "edgemtl.core.errors", "edgemtl.core.progress",
    "edgemtl.data.sample", "edgemtl.data.preprocess", "edgemtl.data.registry", "edgemtl.data.synthetic",
    "edgemtl.data.npy_layout", "edgemtl.data.synth_command",
    "edgemtl.core.manifest", "edgemtl.deploy.runtime", "edgemtl.deploy.profile.command", "edgemtl.deploy.report", "edgemtl.deploy.predict",
]


def test_deploy_modules_import_with_torch_blocked() -> None:
    code = (
        "import sys, importlib\n"
        "sys.modules['torch'] = None  # any 'import torch' now raises ImportError\n"
        f"for name in {DEPLOY_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules if sys.modules[m] is not None)\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_cli_help_and_data_synth_run_without_torch(tmp_path) -> None:
    code = (
        "import sys\nsys.modules['torch'] = None\n"
        "sys.argv = ['edgemtl', 'data', 'synth', sys.argv[1], '--n-train', '2', '--n-val', '1', '--size', '32x64', '--quiet']\n"
        "from edgemtl.cli import main\nmain()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "synth")], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "synth" / "train" / "image" / "1.npy").is_file()
    assert (tmp_path / "synth" / "val" / "edges" / "0.npy").is_file()
