"""Our networks have exactly the official state-dict keys and shapes for all eight configs."""

from __future__ import annotations

import pytest
import torch

from model.loading.build import build_sam2
from model.loading.configs import CONFIGS
from tests.support.official_ref import build_official

pytestmark = pytest.mark.parity


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_state_dict_keys_and_shapes_equal_official(config):
    ours = shapes(build_sam2(config, device="cpu"))
    official = shapes(build_official(config))
    assert sorted(set(official) - set(ours)) == [], "keys missing from ours"
    assert sorted(set(ours) - set(official)) == [], "keys the official model does not have"
    mismatched = {k: (ours[k], official[k]) for k in official if ours[k] != official[k]}
    assert mismatched == {}
    expected_count = {"2.1": {"tiny": 471}, "2": {"tiny": 468}}
    cfg = CONFIGS[config]
    size = config.rsplit("_", 1)[-1]
    if size in expected_count[cfg.version]:
        assert len(ours) == expected_count[cfg.version][size]


def test_official_state_dict_loads_strictly_into_ours():
    official = build_official("sam2.1_hiera_tiny", image_size=256)
    ours = build_sam2("sam2.1_hiera_tiny", device="cpu", image_size=256)
    ours.load_state_dict(official.state_dict(), strict=True)
    for key, value in official.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
