"""Crop geometry and batched preprocessing against the PIL/torchvision reference."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import pose_classifier_ros.model.preprocess as preprocess
from pose_classifier_ros.model.preprocess import (
    CropConfig,
    crop_batch,
    expand_and_clamp_boxes,
    preprocess_images,
    reference_crops,
    reference_preprocess,
)

# Explicit so these tests do not depend on model.py; the values are the ModelConfig defaults.
MODEL_CFG = SimpleNamespace(resize_size=256, crop_size=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
# Tolerance stated in preprocess.py: one uint8 step in normalised units.
ONE_STEP = 1.0 / 255.0 / min(MODEL_CFG.std)


def textured_frame(width=1280, height=720, seed=0) -> np.ndarray:
    """Photo-like test frame: gradients, sharp-edged shapes, fine stripes, text and sensor noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width * 255, yy / height * 255, 127 + 100 * np.sin(xx / 9.0) * np.cos(yy / 13.0)], axis=-1)
    image = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        w, h = rng.uniform(10, 200, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x, y, x + w, y + h), fill=colour)
        else:
            draw.rectangle((x, y, x + w, y + h), outline=colour, width=3)
    for x in range(0, width, 3):  # 1 px stripes: worst case for the antialiasing filter
        draw.line((x, 0, x, height // 8), fill=(255, 255, 255))
    draw.text((40, height - 60), "pose_classifier_ros 0123456789", fill=(0, 0, 0))
    arr = np.asarray(image).astype(np.int16) + rng.integers(-8, 9, (height, width, 3))
    return arr.clip(0, 255).astype(np.uint8)


def random_boxes(n, width, height, lo=200, hi=800, seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    wh = rng.uniform(lo, min(hi, width, height), (n, 2))
    xy = rng.uniform(0, 1, (n, 2)) * (np.array([width, height]) - wh)
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def frame():
    return textured_frame()


def reference_for(frame, boxes, cfg=None):
    crops, valid = reference_crops(frame, boxes, cfg)
    return reference_preprocess(crops, MODEL_CFG), valid


def test_crop_batch_matches_reference_within_one_uint8_step(frame):
    h, w = frame.shape[:2]
    boxes = np.concatenate(
        [
            random_boxes(12, w, h, 150, 700),
            [
                [-40, -30, 160, 250],  # partly outside, top-left corner
                [w - 90, h - 300, w + 50, h + 20],  # partly outside, bottom-right
                [500, 300, 530, 340],  # small: upscaled by ~7x
                [100, 400, 1200, 520],  # elongated 9:1
                [600, 10, 640, 700],
            ],  # elongated 1:17
        ]
    ).astype(np.float32)
    ours, valid = crop_batch(frame, boxes, model_cfg=MODEL_CFG)
    ref, ref_valid = reference_for(frame, boxes)
    assert valid.all() and np.array_equal(valid, ref_valid)
    assert ours.shape == ref.shape == (len(boxes), 3, 224, 224)
    assert ours.dtype == torch.float32 and ours.is_contiguous()
    diff = (ours - ref).abs()
    assert diff.mean().item() < 1e-3
    assert diff.max().item() <= ONE_STEP + 1e-4


def test_threaded_and_single_threaded_crops_are_identical(frame, monkeypatch):
    boxes = random_boxes(9, frame.shape[1], frame.shape[0])
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    threaded, _ = crop_batch(frame, boxes, model_cfg=MODEL_CFG)
    monkeypatch.setattr(preprocess, "_MIN_CROPS_PER_THREAD", 10_000)
    single, _ = crop_batch(frame, boxes, model_cfg=MODEL_CFG)
    assert torch.equal(threaded, single)


def test_padding_and_rounding_geometry():
    boxes = np.array([[100, 50, 200, 150], [10.4, 20.6, 30.2, 40.9]], dtype=np.float32)
    out, valid = expand_and_clamp_boxes(boxes, 640, 480, CropConfig(padding=0.1))
    assert valid.tolist() == [True, True]
    assert out.dtype == np.int64
    assert out[0].tolist() == [90, 40, 210, 160]
    # 19.8 x 20.3 box, padded by 1.98 / 2.03 and rounded outward.
    assert out[1].tolist() == [8, 18, 33, 43]
    out, _ = expand_and_clamp_boxes(boxes, 640, 480, CropConfig(padding=0.0))
    assert out[0].tolist() == [100, 50, 200, 150]


def test_boxes_outside_degenerate_and_non_finite_are_invalid_not_errors():
    w, h = 640, 480
    boxes = np.array(
        [
            [-20, -10, 50, 40],  # partly outside -> clamped, valid
            [600, 400, 700, 500],  # partly outside bottom-right -> clamped, valid
            [700, 10, 800, 100],  # fully right of the frame
            [-100, -100, -1, -1],  # fully above-left
            [10, 10, 10, 50],  # zero width
            [50, 60, 20, 100],  # inverted
            [10, 10, 15, 40],  # 5 px wide < min_box_size
            [10, 10, 18, 18],  # exactly min_box_size
            [np.nan, 0, 50, 50],
            [0, 0, np.inf, 50],
            [-5, 100, 3, 200],  # only 3 px inside the frame
        ],
        dtype=np.float32,
    )
    out, valid = expand_and_clamp_boxes(boxes, w, h, CropConfig(padding=0.1, min_box_size=8))
    assert valid.tolist() == [True, True, False, False, False, False, False, True, False, False, False]
    assert out[0].tolist() == [0, 0, 57, 45]
    assert out[1].tolist() == [590, 390, 640, 480]
    assert (out[~valid] == 0).all()
    assert ((out[:, [0, 2]] >= 0) & (out[:, [0, 2]] <= w)).all()
    assert ((out[:, [1, 3]] >= 0) & (out[:, [1, 3]] <= h)).all()


def test_empty_box_list():
    out, valid = expand_and_clamp_boxes(np.zeros((0, 4), np.float32), 640, 480)
    assert out.shape == (0, 4) and valid.shape == (0,)
    tensor, valid = crop_batch(np.zeros((48, 64, 3), np.uint8), np.zeros((0, 4)), model_cfg=MODEL_CFG)
    assert tensor.shape == (0, 3, 224, 224) and valid.shape == (0,)


def test_crop_batch_skips_invalid_boxes_and_keeps_order(frame):
    good = random_boxes(3, frame.shape[1], frame.shape[0], seed=5)
    mixed = np.stack([good[0], [np.nan] * 4, good[1], [5000, 5000, 5100, 5100], good[2]])
    tensor, valid = crop_batch(frame, mixed, model_cfg=MODEL_CFG)
    assert valid.tolist() == [True, False, True, False, True]
    expected, _ = crop_batch(frame, good, model_cfg=MODEL_CFG)
    assert torch.equal(tensor, expected)
    none, valid = crop_batch(frame, mixed[[1, 3]], model_cfg=MODEL_CFG)
    assert none.shape == (0, 3, 224, 224) and not valid.any()


def test_frame_as_tensor_gives_the_same_crops(frame):
    boxes = random_boxes(3, frame.shape[1], frame.shape[0], seed=7)
    from_numpy, _ = crop_batch(frame, boxes, model_cfg=MODEL_CFG)
    chw = torch.from_numpy(frame).permute(2, 0, 1).contiguous()
    assert torch.equal(crop_batch(chw, boxes, model_cfg=MODEL_CFG)[0], from_numpy)
    from_float, _ = crop_batch(chw.float() / 255.0, boxes, model_cfg=MODEL_CFG)
    assert torch.equal(from_float, from_numpy)


def test_bad_frames_raise_clear_errors():
    with pytest.raises(ValueError, match="H, W, 3"):
        crop_batch(np.zeros((10, 10), np.uint8), [[0, 0, 9, 9]], model_cfg=MODEL_CFG)
    with pytest.raises(ValueError, match="uint8"):
        crop_batch(np.zeros((10, 10, 3), np.float64), [[0, 0, 9, 9]], model_cfg=MODEL_CFG)
    with pytest.raises(ValueError, match="3, H, W"):
        crop_batch(torch.zeros(10, 10, 3, dtype=torch.uint8), [[0, 0, 9, 9]], model_cfg=MODEL_CFG)


def test_preprocess_images_accepts_pil_numpy_and_tensor(frame):
    crops, _ = reference_crops(frame, random_boxes(3, frame.shape[1], frame.shape[0], seed=9))
    arrays = [np.asarray(c) for c in crops]  # read-only arrays, as PIL gives them
    tensors = [torch.from_numpy(np.array(a)).permute(2, 0, 1) for a in arrays]
    from_pil = preprocess_images(crops, MODEL_CFG)
    assert torch.equal(preprocess_images(arrays, MODEL_CFG), from_pil)
    assert torch.equal(preprocess_images(tensors, MODEL_CFG), from_pil)
    diff = (from_pil - reference_preprocess(crops, MODEL_CFG)).abs()
    assert diff.max().item() <= ONE_STEP + 1e-4
    # An image already at the resize size is only centre-cropped, like torchvision does.
    exact = Image.fromarray(frame[:256, :300])
    diff = (preprocess_images([exact], MODEL_CFG) - reference_preprocess([exact], MODEL_CFG)).abs()
    assert diff.max().item() < 1e-5
    with pytest.raises(TypeError, match="unsupported image type"):
        preprocess_images(["not an image"], MODEL_CFG)


def test_labels_agree_with_reference_on_a_small_network(frame):
    # Downstream what matters is the class; a random conv net stands in for any classifier.
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 14, 14),
        torch.nn.GELU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 8),
    )
    boxes = random_boxes(16, frame.shape[1], frame.shape[0], seed=11)
    ours, _ = crop_batch(frame, boxes, model_cfg=MODEL_CFG)
    ref, _ = reference_for(frame, boxes)
    with torch.inference_mode():
        logits_ours, logits_ref = net(ours), net(ref)
    assert torch.equal(logits_ours.argmax(1), logits_ref.argmax(1))
    assert (logits_ours - logits_ref).abs().max().item() < 1e-2
