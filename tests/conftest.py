"""Shared fixtures: an offline Hugging Face hub cache."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty hub cache used as the default one, with the network switched off.

    huggingface_hub reads its environment once at import, so the constants are patched as well.
    """
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory) -> Path:
    """SAM 2.1 tiny with random weights, written as the official ``{"model": state_dict}`` file under its
    official name. The object score bias is raised so masks are not all empty (random weights score objects
    near zero). For code that loads a checkpoint in another process (a notebook kernel)."""
    import torch
    from official_ref import build_official, save_official_checkpoint

    model = build_official("sam2.1_hiera_tiny", seed=0, video=True)
    with torch.no_grad():
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias += 5.0
    return save_official_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny.pt")
