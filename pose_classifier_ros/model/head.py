"""Classification heads on top of the (N, D) backbone CLS features.

Both heads are plain ``nn.Sequential`` so their state_dict keys are the reference training
script's: the MLP head's LayerNorm is ``0.*`` and its Linear layers ``1.*``, ``4.*``, ``7.*``
(``head.0.*`` ... ``head.7.*`` inside ViewpointModel); the linear probe is ``0.*``.
"""

from __future__ import annotations

from torch import nn

from ..labels import NUM_CLASSES

HEAD_TYPES = ("mlp", "linear")


class ViewpointHead(nn.Sequential):
    """(N, in_dim) features -> (N, num_classes) logits: LN, 256, GELU, Drop .3, 128, GELU, Drop .3, out."""

    def __init__(self, in_dim: int, num_classes: int = NUM_CLASSES, dropout: float = 0.3):
        super().__init__(
            nn.LayerNorm(in_dim),
            nn.Linear(in_dim, 256),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(256, 128),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(128, num_classes),
        )
        self.in_dim = in_dim
        self.num_classes = num_classes

    def __getitem__(self, idx):
        # nn.Sequential rebuilds slices with type(self)(...), which our __init__ signature does not take.
        if isinstance(idx, slice):
            return nn.Sequential(*list(self.children())[idx])
        return super().__getitem__(idx)


class LinearProbeHead(nn.Sequential):
    """(N, in_dim) features -> (N, num_classes) logits with a single Linear layer (key ``0.*``)."""

    def __init__(self, in_dim: int, num_classes: int = NUM_CLASSES):
        super().__init__(nn.Linear(in_dim, num_classes))
        self.in_dim = in_dim
        self.num_classes = num_classes


def build_head(head_type: str, in_dim: int, num_classes: int = NUM_CLASSES) -> nn.Module:
    """Head by name: "mlp" -> ViewpointHead, "linear" -> LinearProbeHead."""
    if head_type == "mlp":
        return ViewpointHead(in_dim, num_classes)
    if head_type == "linear":
        return LinearProbeHead(in_dim, num_classes)
    raise ValueError(f"unknown head type {head_type!r}; expected one of {', '.join(HEAD_TYPES)}")
