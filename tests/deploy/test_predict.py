"""`Predictor` and `predict_command` on a real ONNX bundle with real ONNX Runtime and Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from edgemtl.core.errors import UserError
from edgemtl.deploy.predict import PredictOptions, Predictor, predict_command, read_image
from edgemtl.deploy.runtime import RunnerOptions
from tests.helpers.toy_bundle import MEAN, STD, make_toy_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_toy_bundle(tmp_path_factory.mktemp("p") / "b", "student")


def test_predict_matches_direct_session_at_model_size(bundle: Path) -> None:
    rng = np.random.default_rng(0)
    image = rng.random((16, 32, 3), dtype=np.float32)
    with Predictor(bundle, threads=1) as pred:
        out = pred.predict(image)
    x = ((image - np.array(MEAN, np.float32)) / np.array(STD, np.float32)).transpose(2, 0, 1)[None]
    sess = ort.InferenceSession(
        str(bundle / "student.fp32.onnx"), providers=["CPUExecutionProvider"]
    )
    seg, depth = sess.run(["seg_logits", "depth"], {"image": np.ascontiguousarray(x)})
    np.testing.assert_array_equal(out["seg"], seg[0].argmax(0))
    np.testing.assert_allclose(out["depth"], depth[0, 0], rtol=1e-5, atol=1e-6)
    assert out["seg"].dtype == np.int32 and out["depth"].shape == (16, 32)


def test_outputs_resized_to_the_frame(bundle: Path) -> None:
    image = (np.random.default_rng(1).random((40, 50, 3)) * 255).astype(np.uint8)
    with Predictor(bundle, threads=1) as pred:
        (a, b) = pred.predict_batch([image, image[:20, :30]])
    assert a["seg"].shape == (40, 50) and a["depth"].shape == (40, 50)
    assert b["seg"].shape == (20, 30)
    assert set(np.unique(a["seg"])) <= {0, 1, 2}


def test_command_writes_arrays_and_overlays(bundle: Path, tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    rgb = (np.random.default_rng(2).random((24, 40, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(frames / "a.png")
    Image.fromarray(rgb).save(frames / "b.jpg", quality=95)
    np.save(frames / "c.npy", rgb.astype(np.float32) / 255)
    options = PredictOptions(out=tmp_path / "out", runner=RunnerOptions(threads=1), quiet=True)
    frame_paths = [frames / "a.png", frames / "b.jpg", frames / "c.npy"]
    written = predict_command(bundle, frame_paths, options)
    assert len(written) == 3
    data = np.load(tmp_path / "out" / "a.npz")
    assert data["seg"].shape == (24, 40) and data["depth"].shape == (24, 40)
    seg_png = Image.open(tmp_path / "out" / "a.seg.png")
    assert seg_png.size[0] >= 40 and seg_png.size[1] > 24  # picture + legend strip
    assert (tmp_path / "out" / "c.depth.png").is_file()
    # The .npy frame is the same picture as the PNG: same predictions.
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "c.npz")["seg"], data["seg"])


def test_read_image_errors(tmp_path: Path) -> None:
    bad = tmp_path / "x.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(UserError, match="cannot decode as an image"):
        read_image(bad)
    np.save(tmp_path / "g.npy", np.zeros((4, 4)))
    with pytest.raises(UserError, match="H x W x 3"):
        read_image(tmp_path / "g.npy")
    np.save(tmp_path / "f.npy", np.full((4, 4, 3), 7.0))
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        read_image(tmp_path / "f.npy")
    with pytest.raises(UserError, match="no such image"):
        predict_command(
            tmp_path, [tmp_path / "missing.png"], PredictOptions(out=tmp_path / "o", quiet=True)
        )
