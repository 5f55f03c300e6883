"""from_pretrained through an offline hub cache, and the command-line demo, on random weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from apps import cli
from model import SAM2ImagePredictor, SAM2VideoPredictor, build_sam2, from_pretrained
from model.errors import CheckpointError, ModelNotAvailableError
from tests.support.hub_cache import populate_hub_cache
from tests.support.official_ref import build_official, save_official_checkpoint
from tests.support.synthetic import shapes_image

pytestmark = pytest.mark.parity


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    official = build_official("sam2.1_hiera_tiny", seed=4)
    return save_official_checkpoint(official, tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny.pt")


def test_from_pretrained_loads_the_cached_checkpoint_offline(hub_cache, tiny_checkpoint):
    populate_hub_cache(hub_cache, "facebook/sam2.1-hiera-tiny", "sam2.1_hiera_tiny.pt", tiny_checkpoint)
    model = from_pretrained("facebook/sam2.1-hiera-tiny", device="cpu")
    expected = torch.load(tiny_checkpoint, weights_only=True)["model"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key
    predictor = SAM2ImagePredictor.from_pretrained(
        "facebook/sam2.1-hiera-tiny", device="cpu", mask_threshold=0.5
    )
    assert predictor.mask_threshold == 0.5
    assert torch.equal(predictor.model.no_mem_embed, expected["no_mem_embed"])


def test_from_pretrained_takes_an_official_checkpoint_file_too(tiny_checkpoint, tmp_path):
    expected = torch.load(tiny_checkpoint, weights_only=True)["model"]
    renamed = tmp_path / "my_weights.pt"  # a name that does not say the size: told from the weights
    renamed.write_bytes(tiny_checkpoint.read_bytes())
    for path in (tiny_checkpoint, str(renamed)):
        model = from_pretrained(path, device="cpu")
        assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
    video = SAM2VideoPredictor.from_pretrained(str(tiny_checkpoint), device="cpu", image_size=256)
    assert video.image_size == 256
    with pytest.raises(ModelNotAvailableError, match="There is no checkpoint file at"):
        from_pretrained(str(tmp_path / "missing" / "sam2.1_hiera_tiny.pt"))


def test_from_pretrained_without_cache_names_the_file_and_the_fix(hub_cache):
    with pytest.raises(ModelNotAvailableError) as err:
        from_pretrained("facebook/sam2-hiera-large", device="cpu")
    message = str(err.value)
    assert "facebook/sam2-hiera-large" in message and "sam2_hiera_large.pt" in message
    assert "072824" in message  # where to download it by hand


def test_build_sam2_accepts_official_config_names_and_checkpoint_keyword(tiny_checkpoint):
    model = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", ckpt_path=tiny_checkpoint, device="cpu")
    assert model.sam21 and not model.training
    with pytest.raises(CheckpointError, match="sam2.1_hiera_tiny"):
        build_sam2("sam2.1_hiera_small", tiny_checkpoint, device="cpu")


def test_cli_writes_the_mask_the_predictor_gives(tmp_path, tiny_checkpoint):
    image = shapes_image(120, 160, seed=2)
    image_path = tmp_path / "in.png"
    Image.fromarray(image).save(image_path)
    out = tmp_path / "out" / "mask.png"
    overlay = tmp_path / "overlay.png"
    code = cli.main(
        ["--image", str(image_path), "--point", "50,40", "--out", str(out), "--overlay", str(overlay)]
        + ["--checkpoint", str(tiny_checkpoint), "--device", "cpu"]
    )
    assert code == 0
    written = np.asarray(Image.open(out)) > 0
    predictor = SAM2ImagePredictor(build_sam2("sam2.1_hiera_tiny", tiny_checkpoint, device="cpu"))
    predictor.set_image(image)
    masks, scores, _ = predictor.predict(np.array([[50.0, 40.0]]), np.array([1]))
    np.testing.assert_array_equal(written, masks[int(np.argmax(scores))] > 0)
    assert Image.open(overlay).size == (160, 120)


def test_cli_runs_in_the_precision_asked_and_says_which(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    from model.loading import precision as prec

    image_path = tmp_path / "in.png"
    Image.fromarray(shapes_image(60, 80, seed=2)).save(image_path)
    args = ["--image", str(image_path), "--point", "30,20", "--out", str(tmp_path / "m.png")]
    args += ["--checkpoint", str(tiny_checkpoint)]
    monkeypatch.setattr(prec, "fast_bf16", lambda device: None)
    with pytest.raises(SystemExit, match="CPU has no fast bf16.*--precision"):
        cli.main([*args, "--precision", "bf16"])
    monkeypatch.setattr(prec, "fast_bf16", lambda device: "AVX-512 BF16")
    ran_in = []
    real_autocast = cli.inference_autocast

    def spy(device, precision):
        ran_in.append(precision)
        return real_autocast(device, precision)

    monkeypatch.setattr(cli, "inference_autocast", spy)
    assert cli.main([*args, "--precision", "bf16"]) == 0
    assert ran_in == ["bf16"] and "; bf16 autocast on CPU (AVX-512 BF16))" in capsys.readouterr().out
    assert cli.main(args) == 0  # auto, replaced by the test suite's SAM2_UI_PRECISION=fp32
    assert ran_in == ["bf16", "fp32"] and "; fp32 on CPU)" in capsys.readouterr().out


def test_cli_rejects_a_click_outside_the_image(tmp_path, tiny_checkpoint):
    image_path = tmp_path / "in.png"
    Image.fromarray(shapes_image(50, 60)).save(image_path)
    with pytest.raises(SystemExit, match="outside the 60x50 image"):
        cli.main(["--image", str(image_path), "--point", "70,10", "--checkpoint", str(tiny_checkpoint)])


def test_cli_reports_an_unreadable_image(tmp_path, tiny_checkpoint):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(SystemExit, match="cannot read image"):
        cli.main(["--image", str(bad), "--point", "1,1", "--checkpoint", str(tiny_checkpoint)])
