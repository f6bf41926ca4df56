"""The runner registry: format -> "module:attribute" homes, so deploy/ never imports training/.

A new runtime is one new module plus one `register_runner` call: the test writes
such a module to a temporary folder and runs it through `resolve_artifacts` and
`open_runner`, exactly as `profile` and `predict` do.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from edgemtl.core.errors import UserError
from edgemtl.deploy.runtime import (
    RunnerOptions,
    open_runner,
    register_runner,
    registry,
    resolve_artifacts,
)

SCALE_RUNTIME = '''"""A new runtime in one file: a `.scale` JSON holds a factor.

depth = factor * mean(RGB).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.core.manifest import Manifest
from edgemtl.deploy.runtime.base import ModelRef, Runner


def scale_ref(path: Path, head: str | None, fp16: bool) -> ModelRef:
    manifest = Manifest.model_validate({
        "head": head or "student",
        "tasks": {"depth": {"key": "depth", "kind": "depth", "channels": 1, "units": "m"}},
        "input": {"shape": ["batch", 3, 4, 6], "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
    })
    return ModelRef(path=path, format="scale", manifest=manifest)


class ScaleRunner(Runner):
    backend = "scale"

    def load(self) -> None:
        self.factor = float(json.loads(Path(self.ref.path).read_text())["factor"])

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return {"depth": self.factor * batch.mean(axis=1, keepdims=True)}

    def device_facts(self) -> dict[str, Any]:
        return {"backend": self.backend, "runner": self.name}
'''


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test vanish after it."""
    monkeypatch.setattr(registry, "_RUNNERS", dict(registry._RUNNERS))


def test_builtin_formats_resolve_by_name_only() -> None:
    from edgemtl.deploy.runtime.onnxruntime_runner import OrtRunner
    from edgemtl.deploy.runtime.tensorrt_runner import TrtRunner

    assert registry.formats() == ("onnx", "trt", "torch")
    assert registry.runner_class("onnx") is OrtRunner and registry.runner_class("trt") is TrtRunner
    assert registry.ref_builder(".onnx") is None and registry.ref_builder(".txt") is None
    entry = registry._RUNNERS["torch"]
    assert entry.runner == "edgemtl.training.torch_runner:TorchRunner"
    assert entry.suffixes == (".pt", ".pth")


def test_checkpoint_suffix_loads_the_torch_side_lazily() -> None:
    pytest.importorskip("torch")
    from edgemtl.training.torch_runner import TorchRunner, checkpoint_ref

    assert registry.ref_builder(".PT") is checkpoint_ref
    assert registry.runner_class("torch") is TorchRunner


@pytest.mark.usefixtures("scratch_registry")
def test_a_new_runtime_is_one_file_and_one_registration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "scale_runtime.py").write_text(SCALE_RUNTIME)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "scale_runtime", raising=False)
    (tmp_path / "model.scale").write_text(json.dumps({"factor": 2.5}))
    with pytest.raises(UserError, match="not a model file"):
        resolve_artifacts(tmp_path / "model.scale")

    register_runner(
        "scale", "scale_runtime:ScaleRunner", suffixes=(".scale",), ref="scale_runtime:scale_ref"
    )
    assert "scale_runtime" not in sys.modules  # named, not imported, until an artifact is opened
    [ref] = resolve_artifacts(tmp_path / "model.scale", head="teacher")
    assert (ref.format, ref.head, ref.input_hw) == ("scale", "teacher", (4, 6))
    batch = np.arange(2 * 3 * 4 * 6, dtype=np.float32).reshape(2, 3, 4, 6)
    with open_runner(ref, RunnerOptions()) as runner:
        assert type(runner).__name__ == "ScaleRunner"
        depth = ref.decode(runner.infer(batch))["depth"]
    np.testing.assert_allclose(depth, 2.5 * batch.mean(axis=1, keepdims=True))


@pytest.mark.usefixtures("scratch_registry")
def test_bad_registrations_and_unknown_formats(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not 'module:attribute'"):
        register_runner("x", "no_colon")
    with pytest.raises(ValueError, match="without a ref"):
        register_runner("x", "m:R", suffixes=(".x",))
    with pytest.raises(ValueError, match="already belongs to 'torch'"):
        register_runner("x", "m:R", suffixes=(".PTH",), ref="m:ref")
    with pytest.raises(UserError, match="unknown artifact format 'x'"):
        registry.runner_class("x")
    register_runner("missing", "edgemtl_no_such_module:Runner")
    with pytest.raises(UserError, match="artifact format 'missing': cannot load its runner"):
        registry.runner_class("missing")
    register_runner("notarunner", "json:dumps")
    with pytest.raises(UserError, match="is not a Runner subclass"):
        registry.runner_class("notarunner")
