"""Backbone (upstream DINOv2 numerics, keys, offline loading), heads and ViewpointModel."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pose_classifier_ros.labels import VIEWPOINTS
from pose_classifier_ros.model import backbone as bbmod
from pose_classifier_ros.model.backbone import (
    BACKBONE_SPECS,
    BackboneSpec,
    BackboneWeightsError,
    BackboneWeightsNotFound,
    DinoVisionTransformer,
    build_backbone,
)
from pose_classifier_ros.model.head import LinearProbeHead, ViewpointHead, build_head
from pose_classifier_ros.model.viewpoint_model import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ModelConfig,
    ViewpointModel,
    infer_backbone_size,
)


def _tiny(seed=0, perturb=True) -> DinoVisionTransformer:
    """test-tiny backbone with every weight perturbed, so LayerScale/LayerNorm are not identities."""
    torch.manual_seed(seed)
    bb = build_backbone("test-tiny", pretrained=False)
    if perturb:
        with torch.no_grad():
            for p in bb.parameters():
                p.add_(0.05 * torch.randn_like(p))
    return bb


def upstream_reference(bb: DinoVisionTransformer, x: torch.Tensor) -> torch.Tensor:
    """Upstream DinoVisionTransformer inference (hub settings) written out with explicit math:
    manual softmax attention with q * head_dim**-0.5, bicubic pos-embed with the 0.1 offset."""
    sd = bb.state_dict()
    B, _, w, h = x.shape  # upstream's (misleading) naming: w is the image height
    t = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=14).flatten(2).transpose(1, 2)
    t = torch.cat((sd["cls_token"].expand(B, -1, -1), t), dim=1)
    pos = sd["pos_embed"].float()
    N = pos.shape[1] - 1
    M = int(math.sqrt(N))
    dim = pos.shape[-1]
    w0, h0 = w // 14, h // 14
    patch_pos = F.interpolate(
        pos[:, 1:].reshape(1, M, M, dim).permute(0, 3, 1, 2),
        mode="bicubic",
        antialias=False,
        scale_factor=(float(w0 + 0.1) / M, float(h0 + 0.1) / M),
    )
    pos = torch.cat((pos[:, :1], patch_pos.permute(0, 2, 3, 1).reshape(1, -1, dim)), dim=1)
    t = t + pos
    heads = bb.num_heads
    for i in range(len(bb.blocks)):
        p = f"blocks.{i}."
        y = F.layer_norm(t, (dim,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], 1e-6)
        n = y.shape[1]
        qkv = F.linear(y, sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"])
        qkv = qkv.reshape(B, n, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        attn = ((qkv[0] * (dim // heads) ** -0.5) @ qkv[1].transpose(-2, -1)).softmax(dim=-1)
        o = (attn @ qkv[2]).transpose(1, 2).reshape(B, n, dim)
        t = t + sd[p + "ls1.gamma"] * F.linear(o, sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
        y = F.layer_norm(t, (dim,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], 1e-6)
        y = F.linear(
            F.gelu(F.linear(y, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])),
            sd[p + "mlp.fc2.weight"],
            sd[p + "mlp.fc2.bias"],
        )
        t = t + sd[p + "ls2.gamma"] * y
    return F.layer_norm(t, (dim,), sd["norm.weight"], sd["norm.bias"], 1e-6)[:, 0]


# ---------------------------------------------------------------------------------- backbone


def test_small_backbone_has_upstream_keys_shapes_and_parameter_count():
    torch.manual_seed(0)
    bb = build_backbone("small", pretrained=False)
    assert sum(p.numel() for p in bb.parameters()) == 22_056_576  # 22.06 M, as ViT-S/14
    sd = bb.state_dict()
    expected = {
        "cls_token": (1, 1, 384),
        "pos_embed": (1, 1370, 384),
        "mask_token": (1, 384),
        "patch_embed.proj.weight": (384, 3, 14, 14),
        "patch_embed.proj.bias": (384,),
        "norm.weight": (384,),
        "norm.bias": (384,),
    }
    per_block = {
        "norm1.weight": (384,),
        "norm1.bias": (384,),
        "attn.qkv.weight": (1152, 384),
        "attn.qkv.bias": (1152,),
        "attn.proj.weight": (384, 384),
        "attn.proj.bias": (384,),
        "ls1.gamma": (384,),
        "norm2.weight": (384,),
        "norm2.bias": (384,),
        "mlp.fc1.weight": (1536, 384),
        "mlp.fc1.bias": (1536,),
        "mlp.fc2.weight": (384, 1536),
        "mlp.fc2.bias": (384,),
        "ls2.gamma": (384,),
    }
    for i in range(12):
        expected.update({f"blocks.{i}.{k}": s for k, s in per_block.items()})
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    assert not any(p.requires_grad for p in bb.parameters()) and not bb.training
    assert bb.norm.eps == 1e-6 and bb.blocks[0].norm1.eps == 1e-6


@pytest.mark.parametrize("size", [(224, 224), (224, 308)])
def test_forward_matches_upstream_formulation(size):
    bb = _tiny()
    torch.manual_seed(1)
    x = torch.randn(3, 3, *size)
    with torch.no_grad():
        out = bb(x)
        ref = upstream_reference(bb, x)
    assert out.shape == (3, 64)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_pos_embed_interpolation_grid_and_offset():
    bb = _tiny()
    pos = bb.pos_embed_for(16, 16)
    assert pos.shape == (1, 1 + 16 * 16, 64) and pos.dtype == torch.float32
    assert torch.equal(pos[:, 0], bb.pos_embed[:, 0])
    assert bb.prepare_tokens(torch.zeros(1, 3, 224, 224)).shape == (1, 257, 64)
    # The 518 px grid is used as stored; upstream's 0.1 offset changes the 224 px numbers.
    assert torch.equal(bb.pos_embed_for(37, 37), bb.pos_embed)
    grid = bb.pos_embed[:, 1:].reshape(1, 37, 37, 64).permute(0, 3, 1, 2)
    by_size = F.interpolate(grid, size=(16, 16), mode="bicubic").permute(0, 2, 3, 1).reshape(1, 256, 64)
    assert not torch.allclose(pos[:, 1:], by_size, atol=1e-4)
    # Non-square inputs get an (H/14) x (W/14) grid.
    assert bb.pos_embed_for(16, 22).shape == (1, 1 + 16 * 22, 64)


def test_pos_embed_cache_is_reused_and_invalidated_when_weights_change():
    bb = _tiny(seed=0)
    first = bb.pos_embed_for(16, 16)
    assert bb.pos_embed_for(16, 16) is first  # cached
    other = _tiny(seed=1)
    bb.load_state_dict(other.state_dict())
    assert len(bb._pos_cache) == 0  # load_state_dict post-hook
    after_load = bb.pos_embed_for(16, 16)
    torch.testing.assert_close(after_load, other.pos_embed_for(16, 16), rtol=0, atol=0)
    assert not torch.allclose(after_load, first)
    # Loading through the parent model clears it too.
    model = ViewpointModel(bb, ViewpointHead(64))
    model.backbone.pos_embed_for(16, 16)
    model.load_state_dict(ViewpointModel(_tiny(seed=2), ViewpointHead(64)).state_dict())
    assert len(model.backbone._pos_cache) == 0
    # Any in-place write (no hook involved) also invalidates it.
    cached = bb.pos_embed_for(16, 16)
    with torch.no_grad():
        bb.pos_embed.mul_(2.0)
    torch.testing.assert_close(bb.pos_embed_for(16, 16), 2.0 * cached)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(bb(x), upstream_reference(bb, x), rtol=1e-5, atol=1e-5)


def test_trainable_pos_embed_keeps_its_gradient():
    bb = DinoVisionTransformer(64, 2, 2)  # not frozen: the cache must not cut the graph
    # A random projection of the features: their plain sum (or sum of squares) is constant after the final
    # LayerNorm (weight 1, bias 0), so its gradient is zero up to rounding whatever the graph.
    weights = torch.randn(64, generator=torch.Generator().manual_seed(0))
    (bb(torch.randn(1, 3, 56, 56)) * weights).sum().backward()
    assert bb.pos_embed.grad is not None and bb.pos_embed.grad.abs().sum() > 0


# ------------------------------------------------------------------------- offline loading


@pytest.fixture
def tiny_hub_spec(monkeypatch):
    """Give test-tiny a hub weights filename so the hub-cache search can be tested cheaply."""
    monkeypatch.setitem(BACKBONE_SPECS, "test-tiny", BackboneSpec(64, 2, 2, "dinov2_tiny14"))
    return "dinov2_tiny14_pretrain.pth"


def _assert_same_weights(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_weights_file_layouts_load(tmp_path):
    src = _tiny(seed=3)
    sd = src.state_dict()
    layouts = {
        "raw.pth": sd,
        "model.pth": {"model": sd, "epoch": 3},
        "module.pth": {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
        "teacher.pth": {
            "teacher": {**{f"backbone.{k}": v for k, v in sd.items()}, "dino_head.last_layer.weight": torch.zeros(4, 4)}
        },
        "chunked.pth": {
            k.replace("blocks.1.", "blocks.0.1.")
            .replace("blocks.0.n", "blocks.0.0.n")
            .replace("blocks.0.a", "blocks.0.0.a")
            .replace("blocks.0.l", "blocks.0.0.l")
            .replace("blocks.0.m", "blocks.0.0.m"): v
            for k, v in sd.items()
        },
    }
    for name, obj in layouts.items():
        torch.save(obj, tmp_path / name)
        loaded = build_backbone("test-tiny", weights=tmp_path / name)
        _assert_same_weights(loaded, src)
        assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())


def test_hub_cache_is_searched_offline(tmp_path, tiny_hub_spec, monkeypatch):
    src = _tiny(seed=4)
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    torch.save(src.state_dict(), hub / "checkpoints" / tiny_hub_spec)
    _assert_same_weights(build_backbone("test-tiny", hub_dir=hub), src)
    # A torch.hub checkout dir only serves to find the weights beside it.
    (hub / bbmod.HUB_REPO_DIRNAME).mkdir()
    _assert_same_weights(build_backbone("test-tiny", hub_dir=hub / bbmod.HUB_REPO_DIRNAME), src)
    # Default: torch.hub.get_dir().
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    _assert_same_weights(build_backbone("test-tiny"), src)


def test_missing_weights_error_lists_paths_and_fixes(tmp_path, tiny_hub_spec):
    with pytest.raises(BackboneWeightsNotFound) as info:
        build_backbone("test-tiny", hub_dir=tmp_path / "empty-hub")
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert str(tmp_path / "empty-hub" / "checkpoints" / tiny_hub_spec) in msg
    assert "pretrained=False" in msg and "weights" in msg
    with pytest.raises(BackboneWeightsNotFound, match="nope.pth"):
        build_backbone("test-tiny", weights=tmp_path / "nope.pth")


def test_weights_of_another_size_are_rejected(tmp_path):
    torch.save(build_backbone("test-tiny", pretrained=False).state_dict(), tmp_path / "tiny.pth")
    with pytest.raises(BackboneWeightsError, match="embed dim 64, 2 blocks.*'test-tiny'") as info:
        build_backbone("small", weights=tmp_path / "tiny.pth")
    assert "tiny.pth" in str(info.value) and "embed dim 384, 12 blocks" in str(info.value)
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(BackboneWeightsError, match="junk.pth"):
        build_backbone("test-tiny", weights=tmp_path / "junk.pth")


def test_unknown_size_is_rejected():
    with pytest.raises(ValueError, match="unknown backbone size 'huge'"):
        build_backbone("huge", pretrained=False)


# ------------------------------------------------------------------------------ heads, model


def test_mlp_head_structure_and_size():
    head = ViewpointHead(384)
    assert isinstance(head, nn.Sequential)
    assert [type(m) for m in head] == [
        nn.LayerNorm,
        nn.Linear,
        nn.GELU,
        nn.Dropout,
        nn.Linear,
        nn.GELU,
        nn.Dropout,
        nn.Linear,
    ]
    assert [(m.in_features, m.out_features) for m in head if isinstance(m, nn.Linear)] == [
        (384, 256),
        (256, 128),
        (128, 8),
    ]
    assert all(m.p == 0.3 for m in head if isinstance(m, nn.Dropout))
    n = sum(p.numel() for p in head.parameters())
    assert n == 2 * 384 + 384 * 256 + 256 + 256 * 128 + 128 + 128 * 8 + 8 and n < 1_000_000
    assert sorted(head.state_dict()) == sorted(f"{i}.{p}" for i in (0, 1, 4, 7) for p in ("weight", "bias"))


def test_linear_probe_and_build_head():
    probe = LinearProbeHead(384)
    assert sorted(probe.state_dict()) == ["0.bias", "0.weight"] and probe(torch.zeros(2, 384)).shape == (2, 8)
    assert isinstance(build_head("mlp", 64), ViewpointHead)
    assert isinstance(build_head("linear", 64), LinearProbeHead)
    with pytest.raises(ValueError, match="unknown head type"):
        build_head("transformer", 64)


def test_model_shapes_and_keys():
    model = ViewpointModel(_tiny(), ViewpointHead(64)).eval()
    x = torch.randn(4, 3, 224, 224)
    with torch.no_grad():
        feats = model.features(x)
        logits = model(x)
    assert feats.shape == (4, 64) and logits.shape == (4, 8)
    torch.testing.assert_close(model.classify_features(feats), logits)
    heads = sorted({k.rsplit(".", 1)[0] for k in model.state_dict() if k.startswith("head.")})
    assert heads == ["head.0", "head.1", "head.4", "head.7"]
    assert "backbone.pos_embed" in model.state_dict() and "backbone.blocks.1.ls2.gamma" in model.state_dict()


def test_only_the_head_trains():
    model = ViewpointModel(_tiny(), ViewpointHead(64))
    model.train()
    assert not model.backbone.training and all(not m.training for m in model.backbone.modules())
    assert model.head.training
    assert not any(p.requires_grad for p in model.backbone.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = F.cross_entropy(model(torch.randn(4, 3, 56, 56)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    opt.step()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("backbone."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("head."))
    # Dropout is live in train mode and off in eval mode.
    f = torch.randn(16, 64)
    assert not torch.equal(model.classify_features(f), model.classify_features(f))
    model.eval()
    assert torch.equal(model.classify_features(f), model.classify_features(f))


def test_model_config_round_trip_and_validation():
    cfg = ModelConfig(backbone="test-tiny", head_type="linear", resize_size=252, crop_size=224)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert ModelConfig.from_dict(data) == cfg
    assert ModelConfig().class_names == VIEWPOINTS and ModelConfig().mean == IMAGENET_MEAN
    assert ModelConfig().std == IMAGENET_STD and ModelConfig().embed_dim == 384
    assert ModelConfig.from_dict({**data, "added_later": 1}) == cfg
    with pytest.raises(ValueError, match="unknown backbone"):
        ModelConfig(backbone="giant")
    with pytest.raises(ValueError, match="patch size"):
        ModelConfig(crop_size=225)


def test_infer_backbone_size():
    model = ViewpointModel(_tiny(), ViewpointHead(64))
    assert infer_backbone_size(model.state_dict()) == "test-tiny"
    assert infer_backbone_size(model.backbone.state_dict()) == "test-tiny"
    assert infer_backbone_size(model.head.state_dict()) is None
    fake_small = {
        "cls_token": torch.zeros(1, 1, 384),
        **{f"blocks.{i}.norm1.weight": torch.zeros(384) for i in range(12)},
    }
    assert infer_backbone_size(fake_small) == "small"
    fake_small.pop("blocks.11.norm1.weight")
    assert infer_backbone_size(fake_small) is None
