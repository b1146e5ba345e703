"""DINOv2 ViT/14 backbone: upstream numerics and state_dict keys, loaded offline.

A re-implementation of the torch.hub ``facebookresearch/dinov2`` ``DinoVisionTransformer``
(Copyright (c) Meta Platforms, Inc. and affiliates, Apache License 2.0) as the hub builds it:
``img_size=518, patch_size=14, init_values=1.0, ffn_layer="mlp", block_chunks=0,
num_register_tokens=0, interpolate_antialias=False, interpolate_offset=0.1``. Upstream weights
(``dinov2_vit{s,b,l}14_pretrain.pth``) load with identical keys:

    cls_token (1,1,D)  pos_embed (1,1370,D)  mask_token (1,D)  patch_embed.proj.{weight,bias}
    blocks.{i}.{norm1,attn.qkv,attn.proj,ls1.gamma,norm2,mlp.fc1,mlp.fc2,ls2.gamma}.*  norm.{weight,bias}

Differences from upstream that do not change the numbers beyond float rounding: attention uses
``torch.nn.functional.scaled_dot_product_attention``; the interpolated position embedding is
cached per patch grid (it depends only on the weights), and the cache is dropped whenever the
weights change. Nothing here touches the network.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

PATCH_SIZE = 14
IMG_SIZE = 518  # pos_embed covers a 37x37 patch grid (+1 CLS token)
LAYERNORM_EPS = 1e-6
INTERPOLATE_OFFSET = 0.1


@dataclass(frozen=True)
class BackboneSpec:
    embed_dim: int
    depth: int
    num_heads: int
    hub_name: str | None  # torch.hub model name, None for sizes with no upstream weights

    @property
    def weights_filename(self) -> str | None:
        return f"{self.hub_name}_pretrain.pth" if self.hub_name else None


BACKBONE_SPECS: dict[str, BackboneSpec] = {
    "small": BackboneSpec(384, 12, 6, "dinov2_vits14"),
    "base": BackboneSpec(768, 12, 12, "dinov2_vitb14"),
    "large": BackboneSpec(1024, 24, 16, "dinov2_vitl14"),
    # Same family, tiny: for fast tests only, never has pretrained weights.
    "test-tiny": BackboneSpec(64, 2, 2, None),
}

HUB_REPO_DIRNAME = "facebookresearch_dinov2_main"


class BackboneWeightsNotFound(FileNotFoundError):
    """No backbone weights file was found offline; the message lists every path tried (`.tried`)."""

    def __init__(self, message: str, tried: list[Path] | None = None):
        super().__init__(message)
        self.tried = list(tried or [])


class BackboneWeightsError(ValueError):
    """A backbone weights file exists but does not hold weights for the requested backbone."""


# --------------------------------------------------------------------------------------------
# Layers (upstream dinov2/layers): same attribute names so state_dict keys match.


class PatchEmbed(nn.Module):
    """(N,3,H,W) -> (N, H/14 * W/14, D) patch tokens, row-major over the patch grid."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"input {h}x{w} px is not a multiple of the patch size {self.patch_size}")
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        # Default scale is head_dim ** -0.5, as upstream.
        x = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init_values: float = 1.0):
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale (inference path of upstream's Block)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYERNORM_EPS)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=LAYERNORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


# --------------------------------------------------------------------------------------------


class DinoVisionTransformer(nn.Module):
    """DINOv2 ViT/14. forward(x (N,3,H,W) float32 normalized, H and W multiples of 14) -> (N, D)
    CLS token after the final LayerNorm."""

    def __init__(
        self,
        embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        img_size: int = IMG_SIZE,
        patch_size: int = PATCH_SIZE,
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        self.embed_dim = self.num_features = embed_dim
        self.num_heads = num_heads
        self.patch_size = patch_size
        self.patch_embed = PatchEmbed(patch_size, 3, embed_dim)
        num_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=LAYERNORM_EPS)
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))  # unused at inference; keeps keys
        self._pos_cache: dict[tuple, torch.Tensor] = {}
        self.register_load_state_dict_post_hook(_clear_pos_cache_hook)
        self.init_weights()

    def init_weights(self) -> None:
        """Upstream's random init (timm ViT): the caller seeds torch for reproducibility."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.clear_pos_cache()

    @property
    def depth(self) -> int:
        return len(self.blocks)

    def clear_pos_cache(self) -> None:
        self._pos_cache.clear()

    def _interpolate_pos_embed(self, gh: int, gw: int) -> torch.Tensor:
        """(1, 1 + gh*gw, D) float32 position embedding for a gh x gw patch grid, as upstream."""
        pos_embed = self.pos_embed.float()
        n = pos_embed.shape[1] - 1
        m = int(math.sqrt(n))
        if gh * gw == n and gh == gw:
            return pos_embed
        dim = pos_embed.shape[-1]
        patch_pos = F.interpolate(
            pos_embed[:, 1:].reshape(1, m, m, dim).permute(0, 3, 1, 2),
            # Upstream's offset: the ops use the scale factor, so it changes the numbers.
            scale_factor=((gh + INTERPOLATE_OFFSET) / m, (gw + INTERPOLATE_OFFSET) / m),
            mode="bicubic",
            antialias=False,
        )
        assert patch_pos.shape[-2:] == (gh, gw)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, gh * gw, dim)
        return torch.cat((pos_embed[:, :1], patch_pos), dim=1)

    def pos_embed_for(self, gh: int, gw: int) -> torch.Tensor:
        """Interpolated position embedding (float32), cached per grid while the weights are unchanged."""
        p = self.pos_embed
        if (p.requires_grad and torch.is_grad_enabled()) or torch.compiler.is_compiling():
            # Keep the autograd graph / let the compiler trace (and fold) the interpolation.
            return self._interpolate_pos_embed(gh, gw)
        # _version changes on every in-place write (load_state_dict, copy_, optimizer steps), so a
        # cached grid can never outlive the weights it came from, even without the load hook.
        key = (gh, gw, p.device, p.dtype, p.data_ptr(), p._version)
        cached = self._pos_cache.get(key)
        if cached is None:
            self._pos_cache.clear()
            with torch.no_grad():
                cached = self._interpolate_pos_embed(gh, gw).detach()
            self._pos_cache[key] = cached
        return cached

    def prepare_tokens(self, x: torch.Tensor) -> torch.Tensor:
        gh, gw = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        x = self.patch_embed(x)
        # As upstream: cat type-promotes (e.g. bf16 patches under autocast + fp32 CLS -> fp32).
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        return x + self.pos_embed_for(gh, gw).to(x.dtype)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) -> (N, 1 + H/14 * W/14, D) tokens after the final norm."""
        x = self.prepare_tokens(x)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_tokens(x)[:, 0]


def _clear_pos_cache_hook(module: nn.Module, incompatible_keys) -> None:
    module.clear_pos_cache()


# --------------------------------------------------------------------------------------------
# State dicts and offline loading


def backbone_spec(size: str) -> BackboneSpec:
    if size not in BACKBONE_SPECS:
        raise ValueError(f"unknown backbone size {size!r}; expected one of {', '.join(BACKBONE_SPECS)}")
    return BACKBONE_SPECS[size]


def infer_backbone_size(state_dict: Mapping[str, torch.Tensor], prefix: str = "") -> str | None:
    """Backbone size whose embed dim and depth match `state_dict` (keys under `prefix`), else None."""
    cls = state_dict.get(prefix + "cls_token")
    if cls is None or not hasattr(cls, "shape"):
        return None
    dim = int(cls.shape[-1])
    pat = re.compile(re.escape(prefix) + r"blocks\.(\d+)\.")
    depth = 1 + max((int(m.group(1)) for k in state_dict if (m := pat.match(k))), default=-1)
    for name, spec in BACKBONE_SPECS.items():
        if spec.embed_dim == dim and spec.depth == depth:
            return name
    return None


def describe_state_dict(state_dict: Mapping[str, torch.Tensor], prefix: str = "") -> str:
    """Short human description (embed dim, depth) of backbone weights, for error messages."""
    cls = state_dict.get(prefix + "cls_token")
    dim = int(cls.shape[-1]) if hasattr(cls, "shape") else "?"
    pat = re.compile(re.escape(prefix) + r"blocks\.(\d+)\.")
    depth = 1 + max((int(m.group(1)) for k in state_dict if (m := pat.match(k))), default=-1)
    return f"embed dim {dim}, {depth} blocks"


def extract_backbone_state_dict(obj) -> dict[str, torch.Tensor]:
    """Backbone weights (upstream keys) from a loaded file: a raw state_dict, one nested under
    "model"/"state_dict"/"teacher", keys prefixed "backbone."/"module.", or chunked "blocks.c.i."."""
    sd = obj
    for _ in range(3):  # e.g. {"teacher": {"backbone.blocks...": ...}}
        if isinstance(sd, Mapping):
            inner = next(
                (
                    sd[k]
                    for k in ("model", "state_dict", "model_state_dict", "teacher")
                    if isinstance(sd.get(k), Mapping)
                ),
                None,
            )
            if inner is not None and not any(k.endswith("cls_token") for k in sd):
                sd = inner
                continue
        break
    if not isinstance(sd, Mapping):
        raise BackboneWeightsError(f"expected a state_dict, found {type(obj).__name__}")
    sd = {str(k): v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    for pfx in ("module.", "_orig_mod."):
        if sd and all(k.startswith(pfx) for k in sd):
            sd = {k[len(pfx) :]: v for k, v in sd.items()}
    if any(k.startswith("backbone.") for k in sd):
        sd = {k[len("backbone.") :]: v for k, v in sd.items() if k.startswith("backbone.")}
    for pfx in ("module.", "_orig_mod."):
        if sd and all(k.startswith(pfx) for k in sd):
            sd = {k[len(pfx) :]: v for k, v in sd.items()}
    # Training checkpoints use block_chunks > 0: blocks.<chunk>.<index>.* -> blocks.<index>.*
    chunked = re.compile(r"^blocks\.\d+\.(\d+)\.")
    if any(chunked.match(k) for k in sd):
        sd = {chunked.sub(r"blocks.\1.", k): v for k, v in sd.items()}
    return sd


def check_backbone_state_dict(
    model: DinoVisionTransformer, state_dict: Mapping[str, torch.Tensor], source: str = "state_dict"
) -> None:
    """Raise BackboneWeightsError (what is missing / unexpected / mis-shaped) unless `state_dict`
    has exactly `model`'s upstream keys and shapes."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} (expected {tuple(v.shape)})"
        for k, v in own.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    not_float = sorted(k for k, v in state_dict.items() if k in own and not v.is_floating_point())
    if missing or unexpected or wrong or not_float:
        size = infer_backbone_size(state_dict)
        parts = [
            f"{source} does not hold DINOv2 weights for this backbone "
            f"(embed dim {model.embed_dim}, {model.depth} blocks); it has "
            f"{describe_state_dict(state_dict)}" + (f" = size {size!r}" if size else "")
        ]
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong),
            ("not floating point", not_float),
        ):
            if items:
                parts.append(f"{label}: {', '.join(items[:5])}" + (" ..." if len(items) > 5 else ""))
        raise BackboneWeightsError("; ".join(parts))


def backbone_from_state_dict(
    size: str, state_dict: Mapping[str, torch.Tensor], source: str = "state_dict"
) -> DinoVisionTransformer:
    """Frozen eval() backbone that takes over `state_dict`'s tensors (cast to float32).

    Built on the meta device and filled with assign=True: skips the random init, which costs
    seconds for the larger sizes on a CPU. The model shares storage with float32 input tensors.
    """
    spec = backbone_spec(size)
    with torch.device("meta"):
        model = DinoVisionTransformer(spec.embed_dim, spec.depth, spec.num_heads)
    check_backbone_state_dict(model, state_dict, source)
    model.load_state_dict({k: v.detach().to(torch.float32) for k, v in state_dict.items()}, strict=True, assign=True)
    return freeze(model)


def hub_weight_candidates(size: str, hub_dir: str | os.PathLike | None = None) -> list[Path]:
    """Where torch.hub would keep the upstream weights for `size`, most specific first."""
    filename = backbone_spec(size).weights_filename
    if filename is None:
        return []
    hub = Path(hub_dir) if hub_dir is not None else Path(torch.hub.get_dir())
    candidates = [hub / "checkpoints" / filename]
    if hub.name == HUB_REPO_DIRNAME:  # given the hub checkout itself: weights sit beside it
        candidates.append(hub.parent / "checkpoints" / filename)
    elif (hub / HUB_REPO_DIRNAME).is_dir():
        candidates.append(hub / HUB_REPO_DIRNAME / "checkpoints" / filename)
    if hub.name == "checkpoints":
        candidates.insert(0, hub / filename)
    return list(dict.fromkeys(candidates))


def load_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Backbone state_dict from a weights file (tensors only, never unpickles code)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files
        raise BackboneWeightsError(f"cannot read backbone weights {path}: {exc}") from exc
    try:
        return extract_backbone_state_dict(obj)
    except BackboneWeightsError as exc:
        raise BackboneWeightsError(f"{path}: {exc}") from exc


def build_backbone(
    size: str = "small",
    weights: str | os.PathLike | None = None,
    hub_dir: str | os.PathLike | None = None,
    pretrained: bool = True,
) -> DinoVisionTransformer:
    """Frozen (requires_grad False), eval() DINOv2 backbone, loaded offline.

    Weights come from, in order: `weights` (a file; raw state_dict or nested under
    "model"/"state_dict"/"teacher", "backbone."/"module." prefixes stripped), then the torch.hub
    cache `<hub_dir or torch.hub.get_dir()>/checkpoints/dinov2_vit{s,b,l}14_pretrain.pth`.
    pretrained=False (and no `weights`) gives upstream's random init; the caller seeds torch.
    Raises BackboneWeightsNotFound listing every path tried, BackboneWeightsError for a file that
    holds the wrong weights.
    """
    spec = backbone_spec(size)
    tried: list[Path] = []
    source: Path | None = None
    if weights is not None:
        path = Path(weights).expanduser()
        tried.append(path)
        if not path.is_file():
            raise BackboneWeightsNotFound(_not_found_message(size, tried), tried)
        source = path
    elif pretrained:
        for path in hub_weight_candidates(size, hub_dir):
            tried.append(path)
            if path.is_file():
                source = path
                break
        if source is None:
            raise BackboneWeightsNotFound(_not_found_message(size, tried), tried)
    if source is not None:
        model = backbone_from_state_dict(size, load_weights_file(source), source=str(source))
        logger.info("loaded %s backbone weights from %s", size, source)
        return model
    logger.info("built %s backbone with random weights (pretrained=False)", size)
    return freeze(DinoVisionTransformer(spec.embed_dim, spec.depth, spec.num_heads))


def freeze(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def _not_found_message(size: str, tried: list[Path]) -> str:
    spec = BACKBONE_SPECS[size]
    lines = [f"no DINOv2 weights found for backbone {size!r} (nothing is downloaded). Tried:"]
    lines += [f"  {p}" for p in tried] or [f"  (no path: size {size!r} has no upstream weights)"]
    fix = ["Fix: pass a weights file (weights=PATH / --backbone-weights PATH)"]
    if spec.weights_filename:
        fix.append(
            f"copy {spec.weights_filename} into <torch hub dir>/checkpoints/ "
            "(or point hub_dir / --hub-dir at that hub dir)"
        )
    fix.append("or build random weights with pretrained=False")
    lines.append("; ".join(fix) + ".")
    return "\n".join(lines)
