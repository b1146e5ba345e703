"""A test-tiny ViewpointModel whose head gives confident probabilities, for classifier and backend tests."""

from __future__ import annotations

import torch

from pose_classifier_ros.model.viewpoint_model import ModelConfig, build_model


def tiny_model(seed: int = 0):
    """(ViewpointModel, ModelConfig): the test-tiny backbone with random weights seeded by `seed`."""
    torch.manual_seed(seed)
    config = ModelConfig(backbone="test-tiny")
    model = build_model(config, pretrained=False).eval()
    with torch.no_grad():  # a random head gives near-uniform probabilities; spread them out
        model.head[-1].weight.mul_(40.0)
    return model, config
