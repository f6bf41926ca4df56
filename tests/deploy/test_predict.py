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
    np.save(tmp_path / "g.npy", np.zeros((4, 4, 2)))  # grey H x W is fine, 2 channels not
    with pytest.raises(UserError, match="H x W x 3"):
        read_image(tmp_path / "g.npy")
    np.save(tmp_path / "f.npy", np.full((4, 4, 3), 7.0))
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        read_image(tmp_path / "f.npy")
    with pytest.raises(UserError, match="no such image"):
        predict_command(
            tmp_path, [tmp_path / "missing.png"], PredictOptions(out=tmp_path / "o", quiet=True)
        )


def test_inputs_sharing_a_stem_keep_their_own_outputs(bundle: Path, tmp_path: Path) -> None:
    """`a.jpg` and `a.png` (and a folder's `a.png`) must not overwrite each other's files."""
    from edgemtl.deploy.predict import output_names

    frames = tmp_path / "frames"
    (frames / "sub").mkdir(parents=True)
    rng = np.random.default_rng(3)
    pictures = {
        name: (rng.random((16, 32, 3)) * 255).astype(np.uint8)
        for name in ("a.png", "a.jpg", "sub/a.png")
    }
    for name, rgb in pictures.items():
        Image.fromarray(rgb).save(frames / name, quality=95)
    inputs = [frames / "a.png", frames / "a.jpg", frames / "sub" / "a.png"]
    assert output_names(inputs) == ["frames_a_png", "a_jpg", "sub_a_png"]
    assert output_names([frames / "x.png", frames / "x.png"]) == ["frames_x_png", "frames_x_png_2"]
    options = PredictOptions(out=tmp_path / "out", runner=RunnerOptions(threads=1), quiet=True)
    predict_command(bundle, inputs, options)
    with Predictor(bundle, threads=1) as pred:
        for stem, name in zip(output_names(inputs), pictures):
            saved = np.load(tmp_path / "out" / f"{stem}.npz")
            expected = pred.predict(read_image(frames / name))
            np.testing.assert_array_equal(saved["seg"], expected["seg"])


def test_phone_photo_is_predicted_upright(bundle: Path, tmp_path: Path) -> None:
    """EXIF orientation 6 (stored turned 90 degrees): the maps come at the upright size and
    equal those of the upright picture."""
    upright = (np.random.default_rng(4).random((24, 40, 3)) * 255).astype(np.uint8)
    stored = np.rot90(upright, k=1)  # what a phone held upright writes with orientation 6
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(stored)).save(tmp_path / "phone.png", exif=exif.tobytes())
    np.testing.assert_array_equal(read_image(tmp_path / "phone.png"), upright / np.float32(255))
    with Predictor(bundle, threads=1) as pred:
        turned = pred.predict(tmp_path / "phone.png")
        straight = pred.predict(upright)
    assert turned["seg"].shape == (24, 40)
    np.testing.assert_array_equal(turned["seg"], straight["seg"])


def test_sixteen_bit_grey_png_is_scaled_not_clipped(bundle: Path, tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 16 * 32).astype(np.uint16).reshape(16, 32)
    Image.fromarray(ramp).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")
    image = read_image(tmp_path / "grey16.png")
    np.testing.assert_allclose(image[..., 0], ramp / 65535.0, atol=1e-6)
    assert (image[..., 0] == image[..., 2]).all() and image.min() == 0 and image.max() == 1
    assert 0.45 < float(image.mean()) < 0.55  # the old decoder gave 1.0 almost everywhere


def test_letterbox_keeps_the_shape_and_stretch_warns_and_records(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from edgemtl.deploy.frames import place
    from edgemtl.deploy.predict import PREDICTIONS_FILE

    # A portrait frame into a 16x32 (landscape) model: letterbox puts it in a centred box.
    assert place((60, 50), (16, 32), "letterbox").box == (0, 9, 16, 13)
    assert place((60, 50), (16, 32), "stretch").box == (0, 0, 16, 32)
    portrait = (np.random.default_rng(3).random((60, 50, 3)) * 255).astype(np.uint8)
    Image.fromarray(portrait).save(tmp_path / "p.png")
    with Predictor(bundle, threads=1, resize="letterbox") as pred:
        boxed = pred.predict(portrait)
    with Predictor(bundle, threads=1) as pred:
        stretched = pred.predict(portrait)
    assert boxed["seg"].shape == stretched["seg"].shape == (60, 50)
    assert not np.array_equal(boxed["depth"], stretched["depth"])
    # The letterboxed input is the frame resized into its box, on the normalisation mean.
    from edgemtl.data.preprocess import InputSpec, preprocess_image
    from edgemtl.deploy.frames import preprocess_frame

    spec = InputSpec(16, 32, tuple(MEAN), tuple(STD))
    frame = portrait.astype(np.float32) / 255
    x = preprocess_frame(frame, spec, place((60, 50), (16, 32), "letterbox"))
    np.testing.assert_array_equal(x[:, :, :9], 0.0)
    np.testing.assert_array_equal(x[:, :, 22:], 0.0)
    inner = preprocess_image(frame, InputSpec(16, 13, tuple(MEAN), tuple(STD)))
    np.testing.assert_allclose(x[:, :, 9:22], inner)

    options = PredictOptions(out=tmp_path / "o", runner=RunnerOptions(threads=1))
    predict_command(bundle, [tmp_path / "p.png"], options)
    err = capsys.readouterr().err
    assert (
        "p.png: 60x50 (portrait, width/height 0.83) stretched to the model input 16x32"
        in " ".join(err.split())
    )
    record = json.loads((tmp_path / "o" / PREDICTIONS_FILE).read_text())
    (entry,) = record["predictions"]
    assert record["resize"] == "stretch" and entry["size"] == [60, 50] and entry["distorted"]
    with pytest.raises(UserError, match="--resize crop: expected stretch or letterbox"):
        PredictOptions(resize="crop")
