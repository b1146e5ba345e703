"""Checkpoint round trips in every supported layout, and every error case (checkpoint.py)."""

import argparse
from collections import OrderedDict

import numpy as np
import pytest
import torch

from pose_classifier_ros.labels import VIEWPOINTS
from pose_classifier_ros.model.backbone import build_backbone
from pose_classifier_ros.model.checkpoint import (
    FORMAT,
    CheckpointError,
    CheckpointNotFound,
    build_model_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from pose_classifier_ros.model.head import build_head
from pose_classifier_ros.model.viewpoint_model import ModelConfig, ViewpointModel


def _model(head_type="mlp", seed=0) -> ViewpointModel:
    torch.manual_seed(seed)
    bb = build_backbone("test-tiny", pretrained=False)
    with torch.no_grad():
        for p in bb.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model = ViewpointModel(bb, build_head(head_type, 64))
    with torch.no_grad():
        for p in model.head.parameters():
            p.add_(0.1 * torch.randn_like(p))  # LayerNorm weight 1 / bias 0 would hide a bad load
    return model.eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(5))


def _logits(model, x):
    with torch.no_grad():
        return model.eval()(x)


def _head_only(model):
    return {k: v for k, v in model.state_dict().items() if k.startswith("head.")}


def _bare_head(model):
    return model.head.state_dict()


LAYOUTS = {
    # name: (make payload from model, has backbone, expected source_format)
    "full": (lambda m: m.state_dict(), True, "full_state_dict"),
    "full-module-prefix": (
        lambda m: OrderedDict((f"module.{k}", v) for k, v in m.state_dict().items()),
        True,
        "full_state_dict",
    ),
    "head-prefixed": (_head_only, False, "head_state_dict"),
    "head-bare": (_bare_head, False, "head_state_dict"),
    "wrapped-full": (
        lambda m: {
            "model_state_dict": m.state_dict(),
            "epoch": 12,
            "val_acc": np.float64(0.91),
            "class_names": list(VIEWPOINTS),
            "model_size": "test-tiny",
            "optimizer_state_dict": {"state": {}, "param_groups": []},
            "args": argparse.Namespace(lr=1e-3, model_size="test-tiny"),
        },
        True,
        "wrapped_full_state_dict",
    ),
    "wrapped-head": (
        lambda m: {"state_dict": _head_only(m), "best_acc": 0.8, "classes": [c.replace("-", "_") for c in VIEWPOINTS]},
        False,
        "wrapped_head_state_dict",
    ),
    "wrapped-model": (
        lambda m: {
            "model": _bare_head(m),
            "epoch": np.int64(3),
            "class_to_idx": {c: i for i, c in enumerate(VIEWPOINTS)},
        },
        False,
        "wrapped_head_state_dict",
    ),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_reference_layouts_reproduce_logits(tmp_path, images, layout):
    make, has_backbone, fmt = LAYOUTS[layout]
    model = _model()
    expected = _logits(model, images)
    path = tmp_path / "best_pose_model.pth"
    torch.save(make(model), path)
    ckpt = load_checkpoint(path)
    assert ckpt.source_format == fmt and ckpt.has_backbone == has_backbone
    assert ckpt.config.backbone == "test-tiny" and ckpt.config.head_type == "mlp"
    assert ckpt.config.class_names == VIEWPOINTS
    backbone_weights = None
    if not has_backbone:
        backbone_weights = tmp_path / "backbone.pth"
        torch.save(model.backbone.state_dict(), backbone_weights)
    loaded, config = build_model_from_checkpoint(path, backbone_weights=backbone_weights)
    assert config == ckpt.config and not loaded.training
    assert torch.equal(_logits(loaded, images), expected)
    if layout == "wrapped-full":
        assert ckpt.metadata["epoch"] == 12 and ckpt.metadata["val_acc"] == pytest.approx(0.91)
        assert ckpt.metadata["args"] == {"lr": 1e-3, "model_size": "test-tiny"}
        assert not any("optimizer" in k for k in ckpt.metadata)


@pytest.mark.parametrize("head_type", ["mlp", "linear"])
@pytest.mark.parametrize("include_backbone", [True, False])
def test_our_format_round_trip(tmp_path, images, head_type, include_backbone):
    model = _model(head_type)
    expected = _logits(model, images)
    cfg = ModelConfig(backbone="test-tiny", head_type=head_type, resize_size=240)
    path = save_checkpoint(
        tmp_path / "sub" / "ours.pt",
        model,
        cfg,
        include_backbone=include_backbone,
        metrics={"accuracy": np.float32(0.75), "per_class": {"front": 0.5}},
        epoch=4,
        data="flights-v2",
    )
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["config"] == cfg.to_dict()
    assert any(k.startswith("backbone.") for k in raw["state_dict"]) == include_backbone
    ckpt = load_checkpoint(path)
    assert ckpt.source_format == FORMAT and ckpt.config == cfg
    assert ckpt.metrics == {"accuracy": pytest.approx(0.75), "per_class": {"front": 0.5}}
    assert ckpt.metadata["epoch"] == 4 and ckpt.metadata["data"] == "flights-v2"
    weights = None
    if not include_backbone:
        weights = tmp_path / "bb.pth"
        torch.save({"model": model.backbone.state_dict()}, weights)
    loaded, config = build_model_from_checkpoint(path, backbone_weights=weights)
    assert config == cfg and config.resize_size == 240
    assert torch.equal(_logits(loaded, images), expected)
    assert not list(tmp_path.joinpath("sub").glob("*.tmp"))  # atomic write leaves no temp file


def test_head_only_without_backbone_weights_explains_what_was_tried(tmp_path):
    path = tmp_path / "head.pth"
    torch.save(_bare_head(_model()), path)
    with pytest.raises(CheckpointError) as info:
        build_model_from_checkpoint(path, backbone_weights=tmp_path / "missing_backbone.pth")
    msg = str(info.value)
    assert "head.pth" in msg and "head-only" in msg and "missing_backbone.pth" in msg


def _error(path, **kw) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, **kw)
    assert str(path) in str(info.value)
    return str(info.value)


def test_corrupt_truncated_and_foreign_files(tmp_path):
    good = tmp_path / "good.pth"
    torch.save(_model().state_dict(), good)
    data = good.read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    assert "corrupt or truncated" in _error(tmp_path / "truncated.pth")
    (tmp_path / "notes.pth").write_text("these are not weights")
    assert "not a PyTorch checkpoint" in _error(tmp_path / "notes.pth")
    # Overwritten with other bytes (found by fault injection): say what the file is not and what to do, never
    # PyTorch's advice on weights_only (about trusted pickles), cut mid-sentence.
    (tmp_path / "overwritten.pth").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    text = _error(tmp_path / "overwritten.pth")
    assert "not a PyTorch checkpoint: neither the zip archive torch.save writes nor a legacy pickle" in text
    assert "weights_only" not in text and text.endswith("copy it again if it was being written or transferred")
    (tmp_path / "empty.pth").write_bytes(b"")
    assert "the file is empty (0 bytes)" in _error(tmp_path / "empty.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    assert "holds a list" in _error(tmp_path / "list.pth")
    torch.save({"epoch": 3, "note": "no tensors"}, tmp_path / "meta.pth")
    assert "not a model checkpoint" in _error(tmp_path / "meta.pth")
    with pytest.raises(CheckpointNotFound, match="does not exist") as info:
        load_checkpoint(tmp_path / "absent.pth")
    assert isinstance(info.value, FileNotFoundError)


def test_pickled_module_is_refused_not_executed(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")
    msg = _error(tmp_path / "module.pth")
    assert "torch.nn.modules.linear.Linear" in msg and "state_dict" in msg


def test_backbone_only_file_and_unknown_layouts(tmp_path):
    model = _model()
    torch.save(model.backbone.state_dict(), tmp_path / "dinov2_backbone.pth")
    assert "only DINOv2 backbone weights" in _error(tmp_path / "dinov2_backbone.pth")
    torch.save({"encoder.weight": torch.zeros(3, 3), "decoder.weight": torch.zeros(3)}, tmp_path / "other.pth")
    msg = _error(tmp_path / "other.pth")
    assert "unknown state_dict key layout" in msg and "encoder.weight" in msg
    sd = model.state_dict()
    sd["head.1.weight"] = torch.zeros(256, 32)
    torch.save(sd, tmp_path / "badshape.pth")
    assert "1.weight (256, 32)" in _error(tmp_path / "badshape.pth")


def test_size_disagreements(tmp_path):
    model = _model()
    torch.save(model.state_dict(), tmp_path / "tiny.pth")
    msg = _error(tmp_path / "tiny.pth", backbone_size="small")
    assert "'test-tiny'" in msg and "requested backbone says 'small'" in msg
    with pytest.raises(CheckpointError, match="requested backbone says 'base'"):
        build_model_from_checkpoint(tmp_path / "tiny.pth", backbone="base")
    torch.save({"model_state_dict": model.state_dict(), "model_size": "vitb14"}, tmp_path / "meta.pth")
    assert "metadata says 'base'" in _error(tmp_path / "meta.pth")
    # Head built for 384-d (small) features next to tiny backbone weights.
    sd = model.state_dict()
    sd.update({f"head.{k}": v for k, v in build_head("mlp", 384).state_dict().items()})
    torch.save(sd, tmp_path / "mixed.pth")
    msg = _error(tmp_path / "mixed.pth")
    assert "head input dim 384 says 'small'" in msg and "backbone weights says 'test-tiny'" in msg
    # Our format whose config claims another size than its weights.
    save_checkpoint(tmp_path / "ours.pt", model, ModelConfig(backbone="test-tiny"))
    raw = torch.load(tmp_path / "ours.pt", weights_only=True)
    raw["config"]["backbone"] = "large"
    torch.save(raw, tmp_path / "ours_large.pt")
    assert "config says 'large'" in _error(tmp_path / "ours_large.pt")


def test_class_list_disagreements(tmp_path):
    sd = _model().state_dict()
    shuffled = list(VIEWPOINTS[::-1])
    torch.save({"state_dict": sd, "class_names": shuffled}, tmp_path / "order.pth")
    msg = _error(tmp_path / "order.pth")
    assert "differs from the supported order" in msg and str(shuffled) in msg
    torch.save({"state_dict": sd, "args": {"classes": ["cat", "dog"]}}, tmp_path / "other.pth")
    assert "['cat', 'dog']" in _error(tmp_path / "other.pth")
    six = _model().state_dict()
    six["head.7.weight"], six["head.7.bias"] = torch.zeros(6, 128), torch.zeros(6)
    torch.save(six, tmp_path / "six.pth")
    assert "head outputs 6 classes" in _error(tmp_path / "six.pth")
    save_checkpoint(tmp_path / "ours.pt", _model(), ModelConfig(backbone="test-tiny"))
    raw = torch.load(tmp_path / "ours.pt", weights_only=True)
    raw["config"]["class_names"] = shuffled
    torch.save(raw, tmp_path / "ours_shuffled.pt")
    assert "class list in its config" in _error(tmp_path / "ours_shuffled.pt")


def test_save_rejects_inconsistent_config_and_unstorable_metadata(tmp_path):
    model = _model()
    with pytest.raises(ValueError, match="config backbone 'small' does not match"):
        save_checkpoint(tmp_path / "x.pt", model, ModelConfig(backbone="small"))
    with pytest.raises(TypeError, match="metadata\\['callback'\\]"):
        save_checkpoint(tmp_path / "x.pt", model, ModelConfig(backbone="test-tiny"), callback=object())
    assert not (tmp_path / "x.pt").exists()


def test_reference_sized_small_checkpoint(tmp_path):
    """The plausible reference best_pose_model.pth: a full ViT-S/14 + MLP head state_dict (~88 MB)."""
    from pose_classifier_ros.model.backbone import DinoVisionTransformer, backbone_from_state_dict

    gen = torch.Generator().manual_seed(7)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in DinoVisionTransformer(384, 12, 6).state_dict().items()}
    bb_sd = {k: 0.02 * torch.randn(s, generator=gen) for k, s in shapes.items()}
    model = ViewpointModel(backbone_from_state_dict("small", bb_sd), build_head("mlp", 384)).eval()
    path = tmp_path / "best_pose_model.pth"
    torch.save(model.state_dict(), path)
    assert 85e6 < path.stat().st_size < 92e6
    ckpt = load_checkpoint(path)
    assert ckpt.config.backbone == "small" and ckpt.source_format == "full_state_dict"
    loaded, config = build_model_from_checkpoint(path, backbone="small")
    x = torch.randn(2, 3, 112, 112, generator=gen)
    assert torch.equal(_logits(loaded, x), _logits(model, x))
