"""Check at configure time everything that building the model at activate time will need.

A lifecycle node that configures should also activate: `check_model_files` loads the checkpoint and,
for a head-only checkpoint, builds the backbone from its weights file (or the torch.hub cache) exactly as
`build_model_from_checkpoint` will, then drops everything again. Raises CheckpointError (naming the
file and the fix) for anything activate would fail on.
"""

from __future__ import annotations

import os
from pathlib import Path

from pose_classifier_ros.model.checkpoint import CheckpointError, build_model_from_checkpoint, load_checkpoint
from pose_classifier_ros.model.viewpoint_model import ModelConfig


def check_model_files(
    checkpoint: str | os.PathLike,
    backbone_weights: str | os.PathLike | None = None,
    hub_dir: str | os.PathLike | None = None,
) -> tuple[ModelConfig | None, bool]:
    """(the checkpoint's config, whether it carries its backbone) after checking that the model can be built.

    backbone_weights: the weights file for a head-only checkpoint (ignored when the checkpoint carries its
    backbone). CheckpointError on a missing/corrupt checkpoint, a missing or unfitting backbone file.
    """
    try:
        loaded = load_checkpoint(checkpoint)
    except OSError as exc:
        raise CheckpointError(f"cannot read {checkpoint}: {exc}") from exc
    config, has_backbone = loaded.config, loaded.has_backbone
    del loaded
    if has_backbone:
        return config, True
    if backbone_weights is not None and not Path(backbone_weights).is_file():
        raise CheckpointError(
            f"{checkpoint} is head-only and its backbone weights file {backbone_weights} "
            "does not exist (model.backbone_weights)"
        )
    try:  # builds what activate builds (head-only checkpoints are small; the backbone is read once here)
        model, _ = build_model_from_checkpoint(checkpoint, backbone_weights=backbone_weights, hub_dir=hub_dir)
    except OSError as exc:
        raise CheckpointError(f"cannot read the backbone weights for {checkpoint}: {exc}") from exc
    del model
    return config, False


__all__ = ["check_model_files"]
