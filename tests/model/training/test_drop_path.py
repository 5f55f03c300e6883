"""Stochastic depth of the Hiera trunk in training: the official trunk's ``drop_path_rate``, draw for draw."""

from __future__ import annotations

import pytest
import torch
from sam2.modeling.backbones.hieradet import Hiera as OfficialHiera

from model import build_sam2

pytestmark = pytest.mark.parity


def test_drop_path_drops_the_blocks_the_official_trunk_drops():
    ours = build_sam2("sam2.1_hiera_tiny", device="cpu", image_size=64).image_encoder.trunk
    official = OfficialHiera(
        embed_dim=96,
        num_heads=1,
        stages=[1, 2, 7, 2],
        global_att_blocks=[5, 7, 9],
        window_pos_embed_bkg_spatial_size=[7, 7],
        drop_path_rate=0.1,
    )
    ours.load_state_dict(official.state_dict())
    ours.set_drop_path(0.1)
    images = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    ours.train(), official.train()
    torch.manual_seed(5)
    expected = official(images)
    torch.manual_seed(5)
    got = ours(images)
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-5) for a, b in zip(got, expected))
    torch.manual_seed(6)
    assert not all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ours(images), expected))  # it does drop
    ours.eval(), official.eval()
    assert all(
        torch.equal(a, b) or torch.allclose(a, b, atol=1e-6) for a, b in zip(ours(images), official(images))
    )
