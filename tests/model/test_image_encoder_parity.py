"""Hiera trunk, FPN neck and image encoder against the official implementation on random weights."""

from __future__ import annotations

import pytest
import torch
from hydra import compose
from hydra.utils import instantiate

from model.loading.configs import CONFIGS, SAM2Config
from model.network.hiera import Hiera
from model.network.image_encoder import ImageEncoder
from model.network.neck import FpnNeck
from model.network.position_encoding import SinePositionEncoding2d
from tests.support.official_ref import build_official, rel_max_abs_diff

pytestmark = pytest.mark.parity

TOL = 1e-4


def build_encoder(cfg: SAM2Config) -> ImageEncoder:
    trunk = Hiera(
        embed_dim=cfg.embed_dim,
        num_heads=cfg.num_heads,
        stages=cfg.stages,
        global_att_blocks=cfg.global_att_blocks,
        window_spec=cfg.window_spec,
        window_pos_embed_bkg_spatial_size=cfg.window_pos_embed_bkg_spatial_size,
    )
    neck = FpnNeck(256, cfg.backbone_channel_list, SinePositionEncoding2d(256))
    return ImageEncoder(trunk, neck, scalp=1)


def loaded_encoder(cfg: SAM2Config, state: dict[str, torch.Tensor]) -> ImageEncoder:
    """Our encoder holding ``state``; built on the meta device because its own init would be overwritten."""
    with torch.device("meta"):
        ours = build_encoder(cfg)
    ours.load_state_dict(state, strict=True, assign=True)
    return ours.eval()


def official_encoder_skeleton(cfg: SAM2Config) -> torch.nn.Module:
    """The official image encoder alone, instantiated from its own config (default init, no SAM heads)."""
    return instantiate(compose(config_name=cfg.official_config).model.image_encoder, _recursive_=True)


def shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def run_with_trunk_outputs(encoder: torch.nn.Module, x: torch.Tensor) -> tuple[list[torch.Tensor], object]:
    """One encoder pass, also returning what its trunk produced (so the trunk runs once)."""
    seen: list[list[torch.Tensor]] = []
    handle = encoder.trunk.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        with torch.no_grad():
            out = encoder(x)
    finally:
        handle.remove()
    return seen[0], out


def assert_close(name: str, ours: torch.Tensor, ref: torch.Tensor, worst: dict[str, float]) -> None:
    assert ours.dtype == ref.dtype, f"{name}: dtype {ours.dtype} != official {ref.dtype}"
    diff = rel_max_abs_diff(ours, ref)
    worst[name] = diff
    assert diff < TOL, f"{name}: relative max abs diff {diff:.2e} >= {TOL}"


def check_parity(config_name: str, image_size: int, seed: int) -> dict[str, float]:
    cfg = CONFIGS[config_name]
    official = build_official(config_name, image_size=image_size, seed=seed).image_encoder
    ours = loaded_encoder(cfg, official.state_dict())

    x = torch.randn(1, 3, image_size, image_size, generator=torch.Generator().manual_seed(seed))
    ref_trunk, ref_out = run_with_trunk_outputs(official, x)
    our_trunk, (feats, pos) = run_with_trunk_outputs(ours, x)

    worst: dict[str, float] = {}
    assert len(our_trunk) == len(ref_trunk) == 4
    for i, (a, b) in enumerate(zip(our_trunk, ref_trunk)):
        assert_close(f"trunk[{i}]", a, b, worst)
    assert len(feats) == len(ref_out["backbone_fpn"]) == 3
    assert len(pos) == len(ref_out["vision_pos_enc"]) == 3
    for i, (a, b) in enumerate(zip(feats, ref_out["backbone_fpn"])):
        assert_close(f"features[{i}]", a, b, worst)
    for i, (a, b) in enumerate(zip(pos, ref_out["vision_pos_enc"])):
        assert_close(f"pos[{i}]", a, b, worst)
    assert_close("image_embedding", feats[-1], ref_out["vision_features"], worst)
    print(f"{config_name}@{image_size}: largest relative diff {max(worst.values()):.2e}")
    return worst


def test_tiny_encoder_matches_official_at_1024():
    check_parity("sam2.1_hiera_tiny", 1024, seed=0)


@pytest.mark.parametrize(
    "config_name, image_size",
    [
        ("sam2.1_hiera_small", 256),  # windows of 14 and 7 pad the 16x16 and 8x8 grids
        ("sam2.1_hiera_base_plus", 512),  # 14x14 background embedding, two heads
        ("sam2_hiera_large", 256),  # windows 16/8, deepest trunk
    ],
)
def test_encoder_matches_official_at_small_sizes(config_name: str, image_size: int):
    check_parity(config_name, image_size, seed=1)


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_encoder_state_dict_keys_and_shapes_equal_official(config_name: str):
    cfg = CONFIGS[config_name]
    official = official_encoder_skeleton(cfg)
    with torch.device("meta"):
        ours = build_encoder(cfg)
    assert shapes(ours.state_dict()) == shapes(official.state_dict())
    assert ours.trunk.channel_list == tuple(official.trunk.channel_list)


def test_encoder_outputs_strides_and_widths():
    ours = build_encoder(CONFIGS["sam2.1_hiera_tiny"]).eval()
    with torch.no_grad():
        trunk = ours.trunk(torch.zeros(2, 3, 256, 256))
        feats, pos = ours(torch.zeros(2, 3, 256, 256))
    assert [tuple(t.shape) for t in trunk] == [
        (2, 96, 64, 64),
        (2, 192, 32, 32),
        (2, 384, 16, 16),
        (2, 768, 8, 8),
    ]
    assert [tuple(f.shape) for f in feats] == [(2, 256, 64, 64), (2, 256, 32, 32), (2, 256, 16, 16)]
    assert [tuple(p.shape) for p in pos] == [tuple(f.shape) for f in feats]


def test_encoder_runs_under_bf16_autocast_on_cpu_like_official():
    official = build_official("sam2.1_hiera_tiny", image_size=256, seed=2).image_encoder
    ours = loaded_encoder(CONFIGS["sam2.1_hiera_tiny"], official.state_dict())
    x = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        feats, pos = ours(x)
        ref = official(x)
    assert [tuple(f.shape) for f in feats] == [(1, 256, 64, 64), (1, 256, 32, 32), (1, 256, 16, 16)]
    # The stride-16 level receives the fp32 top-down sum; the lateral-only levels stay in bf16.
    assert [f.dtype for f in feats] == [torch.bfloat16, torch.bfloat16, torch.float32]
    assert [f.dtype for f in feats] == [f.dtype for f in ref["backbone_fpn"]]
    assert [p.dtype for p in pos] == [p.dtype for p in ref["vision_pos_enc"]]
    assert all(torch.isfinite(f.float()).all() for f in feats)
    for a, b in zip(feats, ref["backbone_fpn"]):
        assert rel_max_abs_diff(a, b) < 1e-2  # same bf16 kernels; loose only for safety across CPUs
