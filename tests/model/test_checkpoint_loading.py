"""Reading official-format checkpoints, recognising which model they belong to, and strict loading."""

from __future__ import annotations

import copy
from pathlib import Path
from unittest import mock

import pytest
import torch

from model.errors import CheckpointError, ModelNotAvailableError
from model.loading.checkpoint import identify_config, load_into, official_url, read_checkpoint
from model.loading.configs import CONFIGS
from tests.support.official_ref import build_official, official_build_sam2, save_official_checkpoint

pytestmark = pytest.mark.parity

_INITS = ("trunc_normal_", "normal_", "uniform_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_")


@pytest.fixture(scope="session")
def official_tiny() -> torch.nn.Module:
    return build_official("sam2.1_hiera_tiny")


@pytest.fixture(scope="session")
def tiny_checkpoint(official_tiny, tmp_path_factory) -> Path:
    return save_official_checkpoint(official_tiny, tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny.pt")


@pytest.fixture(scope="session")
def official_shapes() -> dict[str, dict[str, torch.Tensor]]:
    """Each official config's state dict as meta tensors: the real keys and shapes, no memory.

    The official Hiera calls .item() while building, so it cannot be built on the meta device; weight
    initialisation is skipped instead, which makes building all eight take seconds.
    """
    shapes = {}
    with mock.patch.multiple(torch.nn.init, **{name: (lambda t, *a, **k: t) for name in _INITS}):
        for name, cfg in CONFIGS.items():
            model = official_build_sam2(cfg.official_config, None, device="cpu", apply_postprocessing=False)
            shapes[name] = {k: torch.empty_like(v, device="meta") for k, v in model.state_dict().items()}
            del model
    return shapes


def test_read_checkpoint_returns_the_official_state_dict(official_tiny, tiny_checkpoint):
    state = read_checkpoint(tiny_checkpoint)
    expected = official_tiny.state_dict()
    assert list(state) == list(expected)
    for key, tensor in expected.items():
        assert torch.equal(state[key], tensor), key
        assert state[key].device.type == "cpu"


def test_read_checkpoint_accepts_a_bare_state_dict(tmp_path):
    state = {"a.weight": torch.randn(3, 2), "a.bias": torch.zeros(3)}
    torch.save(state, tmp_path / "bare.pt")
    loaded = read_checkpoint(tmp_path / "bare.pt")
    assert loaded.keys() == state.keys()
    assert torch.equal(loaded["a.weight"], state["a.weight"])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_identify_config_recognises_each_official_model(official_shapes, name):
    assert identify_config(official_shapes[name]) == name


def test_identify_config_returns_none_for_a_foreign_state_dict():
    assert identify_config({"vision_encoder.patch_embed.weight": torch.zeros(96, 3, 7, 7)}) is None
    odd_width = {"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(80, 3, 7, 7)}
    assert identify_config(odd_width) is None


def test_truncated_checkpoint_says_truncated_or_corrupt_and_gives_expected_size(tiny_checkpoint, tmp_path):
    data = tiny_checkpoint.read_bytes()
    cut = tmp_path / "sam2.1_hiera_tiny.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        read_checkpoint(cut)
    message = str(info.value)
    assert str(cut) in message
    assert "about 156 MB" in message
    assert "download it again" in message


def test_empty_file_is_reported_as_truncated(tmp_path):
    empty = tmp_path / "sam2_hiera_large.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="truncated or corrupt.*about 898 MB"):
        read_checkpoint(empty)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("just some notes\n", "not a PyTorch file"),
        ("<!DOCTYPE html><html><body>Access denied</body></html>", "an HTML page"),
        ("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 155906050\n", "Git LFS pointer"),
    ],
)
def test_a_file_that_is_not_a_checkpoint_raises_checkpoint_error(tmp_path, content, expected):
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    path.write_text(content)
    with pytest.raises(CheckpointError, match=expected) as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)


def test_dict_without_model_entry_raises_checkpoint_error(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": {"a": torch.zeros(1)}, "epoch": 3}, path)
    with pytest.raises(CheckpointError, match="no \"model\" entry.*'weights'"):
        read_checkpoint(path)


def test_non_tensor_entries_raise_checkpoint_error(tmp_path):
    path = tmp_path / "odd.pt"
    torch.save({"model": {"a": torch.zeros(1), "step": 7}}, path)
    with pytest.raises(CheckpointError, match="not tensors.*step"):
        read_checkpoint(path)


def test_pickled_python_objects_are_refused(tmp_path):
    path = tmp_path / "objects.pt"
    torch.save({"model": {"a": torch.nn.Linear(2, 2)}}, path)
    with pytest.raises(CheckpointError, match="Python objects besides tensors"):
        read_checkpoint(path)


def test_missing_file_raises_model_not_available_naming_the_path(tmp_path):
    path = tmp_path / "nowhere" / "sam2.1_hiera_tiny.pt"
    with pytest.raises(ModelNotAvailableError, match="not found") as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_safetensors_file_is_read_or_names_the_missing_package(tmp_path):
    path = tmp_path / "weights.safetensors"
    try:
        from safetensors.torch import save_file
    except ImportError:
        path.write_bytes(b"\x00" * 16)
        with pytest.raises(CheckpointError, match="pip install safetensors"):
            read_checkpoint(path)
        return
    save_file({"a": torch.arange(4.0)}, str(path))
    assert torch.equal(read_checkpoint(path)["a"], torch.arange(4.0))


def test_load_into_copies_every_weight(official_tiny, tiny_checkpoint):
    fresh = copy.deepcopy(official_tiny)
    with torch.no_grad():
        for tensor in fresh.state_dict().values():
            tensor.zero_()
    load_into(fresh, read_checkpoint(tiny_checkpoint), "sam2.1_hiera_tiny")
    loaded = fresh.state_dict()
    for key, tensor in official_tiny.state_dict().items():
        assert torch.equal(loaded[key], tensor), key


def test_large_checkpoint_in_tiny_model_names_the_large_config(official_tiny, official_shapes):
    before = official_tiny.image_encoder.trunk.patch_embed.proj.weight.clone()
    with pytest.raises(CheckpointError) as info:
        load_into(official_tiny, official_shapes["sam2.1_hiera_large"], "sam2.1_hiera_tiny")
    message = str(info.value)
    assert "looks like sam2.1_hiera_large" in message
    assert "built as sam2.1_hiera_tiny" in message
    assert "pass config='sam2.1_hiera_large'" in message
    assert "shape mismatches" in message and "unexpected" in message
    assert torch.equal(official_tiny.image_encoder.trunk.patch_embed.proj.weight, before)


def test_sam2_checkpoint_in_sam21_model_hints_at_the_version(official_tiny, official_shapes):
    with pytest.raises(CheckpointError) as info:
        load_into(official_tiny, official_shapes["sam2_hiera_tiny"], "configs/sam2.1/sam2.1_hiera_t.yaml")
    message = str(info.value)
    assert "3 missing" in message and "no_obj_embed_spatial" in message
    assert "looks like sam2_hiera_tiny (SAM 2)" in message
    assert "pass config='sam2_hiera_tiny'" in message


def test_sam21_checkpoint_in_sam2_model_hints_at_the_version(official_shapes):
    sam2_model = torch.nn.Module()
    sam2_model.register_buffer("no_mem_embed", torch.zeros(1, 1, 256))
    state = dict(official_shapes["sam2.1_hiera_small"])
    with pytest.raises(
        CheckpointError, match="looks like sam2.1_hiera_small .*pass config='sam2.1_hiera_small'"
    ):
        load_into(sam2_model, state, "sam2_hiera_small")


def test_foreign_checkpoint_says_it_is_not_a_sam2_checkpoint(official_tiny):
    with pytest.raises(CheckpointError, match="not an official SAM 2"):
        load_into(official_tiny, {"vision_encoder.weight": torch.zeros(2)}, "sam2.1_hiera_tiny")


def test_official_urls_use_the_release_folder_of_each_version():
    assert official_url("sam2.1_hiera_tiny").endswith("/092824/sam2.1_hiera_tiny.pt")
    assert official_url("sam2_hiera_base_plus").endswith("/072824/sam2_hiera_base_plus.pt")
