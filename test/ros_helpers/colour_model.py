"""A test-tiny checkpoint whose label is set by the colour of the crop, so tests control per-frame labels.

Real architecture and loading path (DINOv2 test-tiny backbone + MLP head, saved with save_checkpoint),
hand-set weights: the patch embedding passes each patch's mean R, G, B through; block 0 attends
uniformly (zero query/key) so the CLS token becomes the crop's mean colour; block 1 and both MLPs are
switched off (LayerScale 0). The head matches the CLS feature against the 8 templates of the pure
colours below. Class k is the colour whose (R, G, B) bits are k's bits (k = 4R + 2G + B), e.g. 0 black
"front", 3 cyan "left", 4 red "right", 7 white "back". A decoder that swaps R and B (BGR read as RGB)
turns red "right" (4) into blue "front-right" (1), so encodings are checked too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pose_classifier_ros.labels import VIEWPOINTS
from pose_classifier_ros.model.checkpoint import save_checkpoint
from pose_classifier_ros.model.viewpoint_model import ModelConfig, build_model

LABEL_COLOURS: dict[str, tuple[int, int, int]] = {
    name: (255 * ((k >> 2) & 1), 255 * ((k >> 1) & 1), 255 * (k & 1)) for k, name in enumerate(VIEWPOINTS)
}
BACKGROUND = (110, 110, 110)
_OFFSET = 10.0  # constant feature that keeps the per-token LayerNorm nearly linear (no amplification of grey)


def _solid_batch(config: ModelConfig, colours) -> torch.Tensor:
    rgb = torch.tensor(colours, dtype=torch.float32) / 255.0
    mean, std = torch.tensor(config.mean), torch.tensor(config.std)
    norm = (rgb - mean) / std
    return norm[:, :, None, None].expand(-1, -1, config.crop_size, config.crop_size).contiguous()


@torch.no_grad()
def build_colour_model(config: ModelConfig | None = None):
    """(ViewpointModel, ModelConfig) with the colour -> label weights."""
    config = config or ModelConfig(backbone="test-tiny")
    torch.manual_seed(0)
    model = build_model(config, pretrained=False).eval()
    bb, dim = model.backbone, model.backbone.embed_dim
    for p in bb.parameters():
        p.zero_()
    ps = bb.patch_embed.proj.weight.shape[-1]
    for c in range(3):
        bb.patch_embed.proj.weight[c, c] = 1.0 / (ps * ps)
    bb.patch_embed.proj.bias[3] = _OFFSET
    for blk in bb.blocks:
        blk.norm1.weight.fill_(1.0)
        blk.norm2.weight.fill_(1.0)
    first = bb.blocks[0]
    for c in range(3):
        first.attn.qkv.weight[2 * dim + c, c] = 1.0  # value = colour dims; query = key = 0 -> uniform
        first.attn.proj.weight[c, c] = 1.0
    first.ls1.gamma.fill_(1.0)
    bb.norm.weight.fill_(1.0)
    bb.clear_pos_cache()

    head = model.head
    for p in head.parameters():
        p.zero_()
    head[0].weight.fill_(1.0)
    colours = list(LABEL_COLOURS.values())
    feats = head[0](bb(_solid_batch(config, colours)))  # (8, D) templates after the head's LayerNorm
    templates = feats / feats.norm(dim=1, keepdim=True)
    sims = templates @ feats.T  # [k, j]: template k on colour j
    for k in range(len(colours)):
        others = torch.cat([sims[k, :k], sims[k, k + 1 :]])
        threshold = 0.5 * (sims[k, k] + others.max())
        scale = 6.0 / float(sims[k, k] - threshold)
        head[1].weight[k] = templates[k] * scale
        head[1].bias[k] = -threshold * scale
        head[4].weight[k, k] = 1.0
        head[7].weight[k, k] = 2.0
    return model, config


def save_colour_checkpoint(path: str | Path) -> Path:
    model, config = build_colour_model()
    return save_checkpoint(path, model, config, purpose="test: label = colour of the crop")


def colour_frame(width: int, height: int, boxes_labels, channels: int = 3) -> np.ndarray:
    """(H, W, 3) uint8 RGB frame, grey background, each xyxy box filled with its label's colour."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = BACKGROUND
    for (x1, y1, x2, y2), label in boxes_labels:
        xa, ya, xb, yb = max(0, int(x1)), max(0, int(y1)), min(width, int(x2)), min(height, int(y2))
        frame[ya:yb, xa:xb] = LABEL_COLOURS[label]
    return frame
