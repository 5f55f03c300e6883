"""The run-length codec (`model.images.rle`) loads without torch, and the package root still exports the
model lazily."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pycocotools.mask as coco
import pytest

from model.images import rle

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_the_codec_does_not_load_torch() -> None:
    code = (
        "import json, sys\n"
        "import model.images.rle, model.loading.configs\n"
        "print(json.dumps({'torch': 'torch' in sys.modules}))\n"
    )
    assert run_python(code) == {"torch": False}


@pytest.mark.slow
def test_the_package_root_still_exports_the_model_names() -> None:
    code = (
        "import json, sys\n"
        "import model\n"
        "before = 'torch' in sys.modules\n"
        "from model import SAM2VideoPredictor, build_sam2\n"
        "print(json.dumps({'before': before, 'names': [build_sam2.__name__, SAM2VideoPredictor.__name__],\n"
        "                  'all_resolve': all(getattr(model, n) is not None for n in model.__all__)}))\n"
    )
    assert run_python(code) == {
        "before": False,
        "names": ["build_sam2", "SAM2VideoPredictor"],
        "all_resolve": True,
    }


def test_an_unknown_root_name_is_an_attribute_error() -> None:
    import model

    with pytest.raises(AttributeError, match="no_such_name"):
        model.no_such_name  # noqa: B018
    assert "build_sam2" in dir(model)


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (64, 96), (33, 1), (0, 5)])
def test_coco_strings_equal_pycocotools_and_both_layouts_round_trip(shape: tuple[int, int]) -> None:
    generator = np.random.default_rng(sum(shape))
    for density in (0.0, 0.02, 0.5, 1.0):
        mask = generator.random(shape) < density
        assert np.array_equal(rle.decode_rle(rle.encode_rle(mask)), mask)
        ours = rle.coco_rle(mask)
        reference = coco.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert ours == {"size": list(shape), "counts": reference["counts"].decode()}
        assert np.array_equal(rle.coco_rle_to_mask(ours), mask)
        uncompressed = {"size": list(shape), "counts": rle.run_lengths(mask.ravel(order="F"))}
        assert np.array_equal(rle.coco_rle_to_mask(uncompressed), mask)
        assert rle.rle_area(uncompressed) == int(mask.sum())
