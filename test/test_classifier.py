"""ViewpointClassifier on the test-tiny backbone: API, invalid boxes, backends against fp32 eager."""

import numpy as np
import pytest
import torch
from helpers.tiny_model import tiny_model
from PIL import Image

from pose_classifier_ros.labels import VIEWPOINTS
from pose_classifier_ros.model.classifier import CPU_BACKENDS, FramePrediction, ViewpointClassifier, resolve_backend
from pose_classifier_ros.model.preprocess import crop_batch

# Max |probability difference| to fp32 eager on the tiny model (head scaled so that classes are
# well separated); measured: onnx 7e-7, bf16 6e-3, int8 0.03, onnx-int8 0.05.
PROB_TOLERANCE = {"eager": 1e-6, "onnx": 1e-4, "int8": 0.1, "onnx-int8": 0.1, "bf16": 3e-2}


@pytest.fixture(scope="module")
def model_and_config():
    return tiny_model()


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:360, 0:640]
    base = np.stack([xx * 255 / 640, yy * 255 / 360, 127 + 120 * np.sin(xx / 7.0 + yy / 11.0)], -1)
    return (base + rng.normal(0, 20, base.shape)).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def eager(model_and_config):
    model, config = model_and_config
    return ViewpointClassifier(model, config, backend="eager")


def test_predict_frame_gives_nan_rows_for_invalid_boxes(eager, frame):
    boxes = np.array(
        [[10, 10, 120, 150], [np.nan, 0, 5, 5], [700, 10, 800, 100], [200, 100, 203, 200], [300, 50, 620, 340]],
        dtype=np.float32,
    )
    pred = eager.predict_frame(frame, boxes)
    assert isinstance(pred, FramePrediction)
    assert pred.valid.tolist() == [True, False, False, False, True]
    assert pred.probs.shape == (5, 8) and pred.probs.dtype == np.float32
    assert np.isnan(pred.probs[~pred.valid]).all()
    np.testing.assert_allclose(pred.probs[pred.valid].sum(axis=1), 1.0, atol=1e-5)
    assert set(pred.timings_ms) == {"preprocess", "backbone", "head"}
    assert all(v >= 0 for v in pred.timings_ms.values()) and pred.timings_ms["backbone"] > 0
    # The same crops through the crop API give the same probabilities.
    images, _ = crop_batch(frame, boxes, eager.crop, eager.config)
    with torch.inference_mode():
        direct = torch.softmax(eager.model(images), dim=1).numpy()
    np.testing.assert_allclose(pred.probs[pred.valid], direct, atol=1e-5)


def test_predict_frame_with_no_valid_box(eager, frame):
    pred = eager.predict_frame(frame, np.array([[-50, -50, -10, -10]], np.float32))
    assert pred.valid.tolist() == [False] and np.isnan(pred.probs).all()
    assert eager.predict_frame(frame, np.zeros((0, 4), np.float32)).probs.shape == (0, 8)


def test_one_line_api_on_pil_numpy_and_tensor(eager, frame):
    crops = [frame[0:200, 0:150], frame[100:300, 200:600], frame[50:90, 500:540]]
    names = eager([Image.fromarray(c) for c in crops])
    assert len(names) == 3 and all(n in VIEWPOINTS for n in names)
    assert eager(crops) == names
    assert eager([torch.from_numpy(np.array(c)).permute(2, 0, 1) for c in crops]) == names
    assert eager(Image.fromarray(crops[1])) == [names[1]]  # a single crop
    assert eager(crops[1]) == [names[1]]
    probs = eager.predict_proba(crops)
    assert probs.shape == (3, 8) and probs.dtype == np.float32
    assert [VIEWPOINTS[i] for i in probs.argmax(1)] == names
    assert eager.predict_proba([]).shape == (0, 8)


def test_batch_size_chunks_give_the_same_result(model_and_config, eager, frame):
    model, config = model_and_config
    small = ViewpointClassifier(model, config, backend="eager", batch_size=3)
    boxes = np.array([[i * 60, 10, i * 60 + 100, 200] for i in range(7)], np.float32)
    np.testing.assert_allclose(
        small.predict_frame(frame, boxes).probs, eager.predict_frame(frame, boxes).probs, atol=1e-5
    )


@pytest.mark.parametrize("backend", [b for b in CPU_BACKENDS if b not in ("auto", "eager")])
def test_cpu_backends_agree_with_fp32_eager(backend, model_and_config, eager, frame, tmp_path):
    model, config = model_and_config
    clf = ViewpointClassifier(model, config, backend=backend, onnx_cache_dir=tmp_path)
    assert clf.backend == backend
    rng = np.random.default_rng(4)
    xy = rng.uniform(0, 1, (16, 2)) * [480, 200]
    boxes = np.concatenate([xy, xy + rng.uniform(40, 160, (16, 2))], axis=1).astype(np.float32)
    ref = eager.predict_frame(frame, boxes).probs
    got = clf.predict_frame(frame, boxes).probs
    assert ref.argmax(1).tolist() == got.argmax(1).tolist()
    print(f"{backend}: max |prob diff| {np.abs(got - ref).max():.2e}")
    assert np.abs(got - ref).max() <= PROB_TOLERANCE[backend]
    assert len(set(ref.argmax(1).tolist())) > 1  # the test model does not predict one class only


def test_onnx_export_is_cached_per_weights(tmp_path, frame):
    model, config = tiny_model(seed=1)
    first = ViewpointClassifier(model, config, backend="onnx", onnx_cache_dir=tmp_path)
    path = first._backbone.path
    mtime = path.stat().st_mtime_ns
    again = ViewpointClassifier(model, config, backend="onnx", onnx_cache_dir=tmp_path)
    assert again._backbone.path == path and path.stat().st_mtime_ns == mtime
    other, _ = tiny_model(seed=2)
    changed = ViewpointClassifier(other, config, backend="onnx", onnx_cache_dir=tmp_path)
    assert changed._backbone.path != path


def test_unknown_backend_and_unavailable_device_raise_clear_errors(model_and_config):
    model, config = model_and_config
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'.*eager.*onnx"):
        ViewpointClassifier(model, config, backend="tensorrt")
    with pytest.raises(ValueError, match="does not run on cpu"):
        ViewpointClassifier(model, config, backend="fp16")
    with pytest.raises(ValueError, match="batch_size"):
        ViewpointClassifier(model, config, batch_size=0)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            ViewpointClassifier(model, config, device="cuda")
    assert resolve_backend("auto", "cpu") in CPU_BACKENDS


def test_from_checkpoint_round_trip(model_and_config, eager, frame, tmp_path):
    from pose_classifier_ros.model.checkpoint import save_checkpoint

    model, config = model_and_config
    path = save_checkpoint(tmp_path / "tiny.pt", model, config)
    loaded = ViewpointClassifier.from_checkpoint(path, backend="eager")
    boxes = np.array([[10, 10, 200, 200], [300, 20, 600, 300]], np.float32)
    np.testing.assert_allclose(
        loaded.predict_frame(frame, boxes).probs, eager.predict_frame(frame, boxes).probs, atol=1e-6
    )
