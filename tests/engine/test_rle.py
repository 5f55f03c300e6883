"""The engine's one run-length codec: exact round trips, and COCO strings byte-identical
to pycocotools', without torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pycocotools.mask as coco
import pytest

from model.images.rle import coco_rle, coco_rle_to_mask, decode_rle, encode_rle


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (64, 96), (33, 1)])
def test_both_layouts_round_trip_and_coco_strings_equal_pycocotools(shape):
    rng = np.random.default_rng(sum(shape))
    for density in (0.0, 0.02, 0.5, 1.0):
        mask = rng.random(shape) < density
        assert np.array_equal(decode_rle(encode_rle(mask)), mask)
        ours = coco_rle(mask)
        reference = coco.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert ours["counts"] == reference["counts"].decode() and ours["size"] == list(shape)
        assert np.array_equal(coco_rle_to_mask(ours), mask)
        assert np.array_equal(coco.decode({**ours, "counts": ours["counts"].encode()}).astype(bool), mask)


def test_the_codec_and_the_exporters_do_not_import_torch():
    code = "import sys, model.images.rle, sam2_ui.output.export; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
