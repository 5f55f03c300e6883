"""Loading by Hugging Face id without network, from a hub cache laid out as huggingface_hub lays it out."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub
import pytest
import torch
from huggingface_hub import constants, scan_cache_dir, try_to_load_from_cache

from model.errors import ModelNotAvailableError
from model.loading.checkpoint import read_checkpoint
from model.loading.hub import HF_MODELS, download_checkpoint
from tests.support.hub_cache import DEFAULT_COMMIT, populate_hub_cache

TINY_ID = "facebook/sam2.1-hiera-tiny"


@pytest.fixture
def small_checkpoint(tmp_path) -> Path:
    """A tiny file in the official format: the hub path does not care how big the weights are."""
    path = tmp_path / "src" / "sam2.1_hiera_tiny.pt"
    path.parent.mkdir()
    torch.save({"model": {"no_mem_embed": torch.arange(256.0).reshape(1, 1, 256)}}, path)
    return path


def test_populated_cache_is_what_huggingface_hub_expects(hub_cache, small_checkpoint):
    snapshot = populate_hub_cache(hub_cache, TINY_ID, "sam2.1_hiera_tiny.pt", small_checkpoint)

    found = try_to_load_from_cache(TINY_ID, "sam2.1_hiera_tiny.pt", cache_dir=hub_cache)
    assert found == str(snapshot)
    assert snapshot.is_symlink() and snapshot.read_bytes() == small_checkpoint.read_bytes()

    (repo,) = scan_cache_dir(hub_cache).repos
    assert repo.repo_id == TINY_ID and repo.repo_type == "model"
    (revision,) = repo.revisions
    assert revision.commit_hash == DEFAULT_COMMIT
    assert revision.refs == frozenset({"main"})
    (file,) = revision.files
    assert file.file_name == "sam2.1_hiera_tiny.pt"
    assert file.size_on_disk == small_checkpoint.stat().st_size


def test_hf_models_lists_the_eight_official_ids():
    assert len(HF_MODELS) == 8
    assert HF_MODELS["facebook/sam2.1-hiera-tiny"] == ("sam2.1_hiera_tiny", "sam2.1_hiera_tiny.pt")
    assert HF_MODELS["facebook/sam2-hiera-base-plus"] == ("sam2_hiera_base_plus", "sam2_hiera_base_plus.pt")
    assert HF_MODELS["facebook/sam2.1-hiera-large"] == ("sam2.1_hiera_large", "sam2.1_hiera_large.pt")


def test_download_checkpoint_returns_the_cached_file_offline(hub_cache, small_checkpoint, tmp_path):
    other_cache = tmp_path / "other"
    snapshot = populate_hub_cache(other_cache, TINY_ID, "sam2.1_hiera_tiny.pt", small_checkpoint)

    config_name, path = download_checkpoint(TINY_ID, cache_dir=other_cache)

    assert config_name == "sam2.1_hiera_tiny"
    assert path == snapshot
    assert torch.equal(read_checkpoint(path)["no_mem_embed"].flatten(), torch.arange(256.0))


def test_download_checkpoint_searches_the_default_hub_cache(hub_cache, small_checkpoint):
    snapshot = populate_hub_cache(
        hub_cache, "facebook/sam2-hiera-small", "sam2_hiera_small.pt", small_checkpoint
    )
    assert download_checkpoint("facebook/sam2-hiera-small") == ("sam2_hiera_small", snapshot)


def test_download_checkpoint_finds_a_pinned_revision_offline(hub_cache, small_checkpoint):
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = populate_hub_cache(
        hub_cache, TINY_ID, "sam2.1_hiera_tiny.pt", small_checkpoint, revision_sha=commit
    )
    assert download_checkpoint(TINY_ID, revision=commit)[1] == snapshot


def test_download_checkpoint_uses_the_cache_when_the_network_is_unreachable(
    hub_cache, small_checkpoint, monkeypatch
):
    # Online mode, but every request goes to a closed local port: the first call fails to connect.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    dead = "http://127.0.0.1:9"
    monkeypatch.setattr(constants, "ENDPOINT", dead)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", dead + "/{repo_id}/resolve/{revision}/{filename}"
    )
    calls = []
    real_download = huggingface_hub.hf_hub_download

    def recording_download(*args, **kwargs):
        calls.append(kwargs.get("local_files_only", False))
        return real_download(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", recording_download)
    snapshot = populate_hub_cache(hub_cache, TINY_ID, "sam2.1_hiera_tiny.pt", small_checkpoint)

    assert download_checkpoint(TINY_ID) == ("sam2.1_hiera_tiny", snapshot)
    assert calls[0] is False  # it tried the network first


def test_download_checkpoint_retries_from_the_cache_after_a_connection_error(
    hub_cache, small_checkpoint, monkeypatch
):
    real_download = huggingface_hub.hf_hub_download
    calls = []

    def unreachable_hub(*args, local_files_only=False, **kwargs):
        calls.append(local_files_only)
        if not local_files_only:
            raise ConnectionError("Connection refused")
        return real_download(*args, local_files_only=True, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable_hub)
    snapshot = populate_hub_cache(hub_cache, TINY_ID, "sam2.1_hiera_tiny.pt", small_checkpoint)

    assert download_checkpoint(TINY_ID) == ("sam2.1_hiera_tiny", snapshot)
    assert calls == [False, True]


def test_connection_error_is_named_when_nothing_is_cached(hub_cache, monkeypatch):
    def unreachable_hub(*args, local_files_only=False, **kwargs):
        raise (
            ConnectionError("Connection refused") if not local_files_only else FileNotFoundError("not cached")
        )

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable_hub)
    with pytest.raises(ModelNotAvailableError, match=r"could not be downloaded \(Connection refused\)"):
        download_checkpoint(TINY_ID, revision="v1")


def test_file_missing_from_cache_raises_model_not_available(hub_cache):
    with pytest.raises(ModelNotAvailableError) as info:
        download_checkpoint(TINY_ID)
    message = str(info.value)
    assert TINY_ID in message and "sam2.1_hiera_tiny.pt" in message
    assert str(hub_cache) in message
    assert "connect to the internet once" in message
    assert "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt" in message
    assert isinstance(info.value, FileNotFoundError)


def test_missing_sam2_checkpoint_points_to_the_sam2_release(hub_cache, small_checkpoint):
    # Another file of the same repo in the cache does not stand in for the requested one.
    populate_hub_cache(hub_cache, "facebook/sam2-hiera-large", "README.md", small_checkpoint)
    with pytest.raises(ModelNotAvailableError, match="072824/sam2_hiera_large.pt"):
        download_checkpoint("facebook/sam2-hiera-large")


def test_unknown_model_id_raises_value_error_listing_the_ids(hub_cache):
    with pytest.raises(ValueError, match="unknown SAM 2 model id") as info:
        download_checkpoint("facebook/sam3-hiera-tiny")
    for model_id in HF_MODELS:
        assert model_id in str(info.value)
