"""Every module outside edgemtl/training/ imports without PyTorch, and the layers point one way.

The deploy side (core, data, evaluation, deploy, export, the CLI) runs on a
device with ONNX Runtime or TensorRT and no PyTorch (docs/architecture.md;
docs/deploy.md). The module list is found by walking the folders, so a new
module is covered the day it is added; the AST check catches what importing
alone cannot: a lazy `import torch` or training import inside a function.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers.cli import REPO
from tests.helpers.import_graph import imports_of, module_files

#: Folders whose modules must never import torch or edgemtl.training (at any depth, even lazily).
TORCH_FREE_DIRS = ("core", "data", "evaluation", "deploy", "export")
#: Top-level modules that must import without torch (cli.py may lazily dispatch to training).
TORCH_FREE_FILES = ("edgemtl", "edgemtl.cli", "edgemtl.__main__")
FORBIDDEN = ("torch", "edgemtl.training")


def _layer_modules() -> dict[str, Path]:
    files = module_files(REPO / "edgemtl")
    return {m: p for m, p in files.items() if m.count(".") and m.split(".")[1] in TORCH_FREE_DIRS}


def test_the_walk_finds_every_layer() -> None:
    found = {m.split(".")[1] for m in _layer_modules()}
    assert found == set(TORCH_FREE_DIRS)
    assert "edgemtl.data.synthetic.render" in _layer_modules()  # subpackages too


def test_no_layer_module_imports_torch_or_training() -> None:
    offenders = []
    for module, path in _layer_modules().items():
        for imp in imports_of(module, path):
            if any(imp.name == f or imp.name.startswith(f + ".") for f in FORBIDDEN):
                offenders.append(f"{path.relative_to(REPO)}:{imp.line} imports {imp.name}")
    assert not offenders, "the torch-free layers import upwards:\n" + "\n".join(offenders)


def test_every_torch_free_module_imports_with_torch_blocked() -> None:
    modules = sorted(set(_layer_modules()) | set(TORCH_FREE_FILES) - {"edgemtl.__main__"})
    code = (
        "import contextlib, importlib, io, sys\n"
        "sys.modules['torch'] = None  # any 'import torch' now raises ImportError\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "# edgemtl.__main__ runs the CLI on import: with --help it must exit 0\n"
        "sys.argv = ['edgemtl', '--help']\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        "        importlib.import_module('edgemtl.__main__')\n"
        "    except SystemExit as stop:\n"
        "        assert stop.code in (0, None), stop.code\n"
        "assert 'Usage' in out.getvalue() and 'export' in out.getvalue(), out.getvalue()\n"
        "loaded = [m for m in sys.modules if sys.modules[m] is not None]\n"
        "bad = [m for m in loaded if m.split('.')[0] == 'torch'\n"
        "       or m.startswith('edgemtl.training')]\n"
        "assert not bad, bad\n"
        "print('ok', len(loaded))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stderr[-3000:]
    assert len(modules) > 50  # the walk found the layers, not an empty list


def test_cli_help_and_data_synth_run_without_torch(tmp_path) -> None:
    code = (
        "import sys\nsys.modules['torch'] = None\n"
        "sys.argv = ['edgemtl', 'data', 'synth', sys.argv[1], '--n-train', '2', '--n-val', '1', "
        "'--size', '32x64', '--quiet']\n"
        "from edgemtl.cli import main\nmain()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "synth")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "synth" / "train" / "image" / "1.npy").is_file()
    assert (tmp_path / "synth" / "val" / "edges" / "0.npy").is_file()
