"""Shared fixtures: one torch thread for the engine and front-end tests, an offline Hugging Face hub cache,
and a random-weight checkpoint in the official file format.

``tests`` is a package: pytest puts the repository root on the import path, so tests import ``model``,
``sam2_ui``, ``apps`` and ``tests.support`` as they are.

Everything runs in fp32 unless a test asks for bf16: "auto" would pick bf16 autocast on a CPU with AVX-512
BF16, and the numeric tests pin fp32 results. Set here at import, so subprocesses (notebook kernels, app
servers) inherit it.
"""

import os
from pathlib import Path

import pytest

os.environ.setdefault("SAM2_UI_PRECISION", "fp32")


@pytest.fixture(scope="module")
def torch_single_thread():
    """Run the network on one thread: on a shared 2-core machine, two threads that wait on each other are
    several times slower than one (the image encoder at 256 px takes ~0.3 s on one thread). The engine and
    front-end folders use it for every test module (their conftest.py)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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

    from tests.support.official_ref import build_official, save_official_checkpoint

    model = build_official("sam2.1_hiera_tiny", seed=0, video=True)
    with torch.no_grad():
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias += 5.0
    return save_official_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny.pt")
