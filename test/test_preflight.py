"""check_model_files: a checkpoint that passes the check also builds; a head-only one needs its backbone."""

from pathlib import Path

import pytest
import torch

from pose_classifier_ros.model.checkpoint import CheckpointError, save_checkpoint
from pose_classifier_ros.model.preflight import check_model_files
from pose_classifier_ros.model.viewpoint_model import ModelConfig, build_model


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("preflight")
    config = ModelConfig(backbone="test-tiny")
    torch.manual_seed(0)
    model = build_model(config, pretrained=False).eval()
    full = save_checkpoint(tmp / "full.pt", model, config)
    head = save_checkpoint(tmp / "head.pt", model, config, include_backbone=False)
    weights = tmp / "backbone.pth"
    torch.save(model.backbone.state_dict(), weights)
    bad = tmp / "bad_backbone.pth"
    torch.save({"not": torch.zeros(3)}, bad)
    return {"full": full, "head": head, "weights": weights, "bad": bad, "tmp": tmp}


def test_full_checkpoint_needs_nothing_else(files):
    config, has_backbone = check_model_files(files["full"], backbone_weights=files["tmp"] / "missing.pth")
    assert has_backbone and config.backbone == "test-tiny"


def test_head_only_checkpoint_with_its_backbone(files):
    config, has_backbone = check_model_files(files["head"], backbone_weights=files["weights"])
    assert not has_backbone and config.backbone == "test-tiny"


def test_head_only_checkpoint_without_usable_backbone(files):
    with pytest.raises(CheckpointError, match="head-only .*no 'test-tiny' backbone weights were found"):
        check_model_files(files["head"])
    with pytest.raises(CheckpointError, match="backbone weights file .*missing.pth does not exist"):
        check_model_files(files["head"], backbone_weights=files["tmp"] / "missing.pth")
    with pytest.raises(CheckpointError, match="head-only and its backbone weights cannot be used"):
        check_model_files(files["head"], backbone_weights=files["bad"])
    with pytest.raises(CheckpointError):
        check_model_files(files["tmp"] / "nothing.pt")
