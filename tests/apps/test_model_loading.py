"""The app's model loading: a checkpoint without --config is built as the model its weights are, on random
weights saved in the official format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from apps import cli
from apps.model_loading import ModelLoadError, load_predictor
from model.loading.build import compose_sam2
from model.loading.configs import CONFIGS
from tests.support.checkpoints import save_official_checkpoint


def random_checkpoint(config: str, path: Path) -> Path:
    """Random weights of ``config`` saved as ``{"model": state_dict}`` (about 0.5 s for the tiny models)."""
    torch.manual_seed(0)
    return save_official_checkpoint(compose_sam2(CONFIGS[config]), path)


def built_as(predictor) -> str:
    """The official config whose trunk width, block count and version the predictor's network has."""
    trunk = predictor.model.image_encoder.trunk
    width = trunk.patch_embed.proj.out_channels
    version = "2.1" if predictor.model.sam21 else "2"
    (name,) = (
        name
        for name, cfg in CONFIGS.items()
        if (cfg.embed_dim, sum(cfg.stages), cfg.version) == (width, len(trunk.blocks), version)
    )
    return name


def assert_holds_the_weights_of(predictor, checkpoint: Path) -> None:
    saved = torch.load(checkpoint, weights_only=True)["model"]
    state = predictor.model.state_dict()
    assert state.keys() == saved.keys()
    assert all(torch.equal(state[k], saved[k]) for k in saved)


@pytest.mark.parametrize("config", ["sam2.1_hiera_tiny", "sam2_hiera_tiny", "sam2.1_hiera_small"])
def test_a_checkpoint_whose_name_does_not_tell_is_built_as_the_model_its_weights_match(tmp_path, config):
    path = random_checkpoint(config, tmp_path / "rand.pt")
    predictor = load_predictor(checkpoint=path, config=None, device="cpu", image_size=256)
    assert built_as(predictor) == config
    assert_holds_the_weights_of(predictor, path)


def test_an_explicit_config_wins_over_the_weights(tmp_path):
    path = random_checkpoint("sam2.1_hiera_tiny", tmp_path / "rand.pt")
    predictor = load_predictor(checkpoint=path, config="configs/sam2.1/sam2.1_hiera_t.yaml", device="cpu")
    assert built_as(predictor) == "sam2.1_hiera_tiny"
    # The weights are tiny, so building them as small says which config was used, and what to pass instead.
    with pytest.raises(ModelLoadError, match="looks like sam2.1_hiera_tiny"):
        load_predictor(checkpoint=path, config="sam2.1_hiera_small", device="cpu")


def test_an_unknown_config_lists_the_known_ones(tmp_path):
    path = random_checkpoint("sam2.1_hiera_tiny", tmp_path / "rand.pt")
    with pytest.raises(ModelLoadError, match=r"Unknown --config 'huge'.*sam2\.1_hiera_base_plus"):
        load_predictor(checkpoint=path, config="huge", device="cpu")


def test_a_garbage_file_says_it_cannot_be_read_and_which_configs_exist(tmp_path):
    garbage = tmp_path / "rand.pt"
    garbage.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ModelLoadError) as info:
        load_predictor(checkpoint=garbage, config=None, device="cpu")
    message = str(info.value)
    assert "rand.pt is not a SAM 2 checkpoint" in message
    assert "pass --config" in message
    assert all(name in message for name in CONFIGS)


def test_weights_of_no_official_model_say_which_sizes_exist_and_to_pass_config(tmp_path):
    foreign = tmp_path / "rand.pt"
    torch.save({"model": {"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(80, 3, 7, 7)}}, foreign)
    with pytest.raises(ModelLoadError) as info:
        load_predictor(checkpoint=foreign, config=None, device="cpu")
    message = str(info.value)
    assert message.startswith("Cannot tell the model size of rand.pt")
    assert "pass --config" in message
    assert all(name in message for name in CONFIGS)


def test_the_command_line_demo_tells_the_size_the_same_way(tmp_path):
    from PIL import Image

    from tests.support.synthetic import shapes_image

    Image.fromarray(shapes_image(64, 96, seed=1)).save(tmp_path / "in.png")
    foreign = tmp_path / "rand.pt"
    torch.save({"model": {"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(80, 3, 7, 7)}}, foreign)
    argv = ["--image", str(tmp_path / "in.png"), "--point", "30,20", "--checkpoint", str(foreign)]
    with pytest.raises(SystemExit, match="Cannot tell the model size of rand.pt.*pass --config"):
        cli.main(argv + ["--device", "cpu"])
