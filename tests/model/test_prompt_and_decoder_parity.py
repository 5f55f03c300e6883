"""Parity of our prompt encoder, two-way transformer and mask decoder with the official ones.

The official tiny 2.1 model is built with seeded random weights; its ``sam_prompt_encoder`` and
``sam_mask_decoder`` state dicts are loaded strictly into ours, and both run in fp32 on CPU on the same
random image embeddings and high-res features.
"""

from __future__ import annotations

import pytest
import torch

from model.network.mask_decoder import MaskDecoder
from model.network.prompt_encoder import PromptEncoder
from model.network.two_way_transformer import TwoWayTransformer
from tests.support.official_ref import build_official, rel_max_abs_diff

pytestmark = pytest.mark.parity

TOL = 1e-4
BATCH = 3


class Pair:
    """Official and our prompt encoder + mask decoder sharing one set of weights, plus test inputs."""

    def __init__(self, image_size: int, seed: int = 0) -> None:
        official = build_official("sam2.1_hiera_tiny", image_size=image_size, seed=seed)
        self.ref_pe = official.sam_prompt_encoder
        self.ref_dec = official.sam_mask_decoder
        self.image_size = image_size
        h = image_size // 16
        self.pe = PromptEncoder(
            embed_dim=256, image_embedding_size=(h, h), input_image_size=(image_size, image_size)
        )
        self.dec = MaskDecoder(transformer_dim=256, transformer=TwoWayTransformer())
        self.pe.load_state_dict(self.ref_pe.state_dict(), strict=True)

        gen = torch.Generator().manual_seed(seed + 1)
        self.image = torch.randn(BATCH, 256, h, h, generator=gen)
        self.high_res = [
            torch.randn(BATCH, 32, 4 * h, 4 * h, generator=gen),
            torch.randn(BATCH, 64, 2 * h, 2 * h, generator=gen),
        ]
        self.coords = torch.rand(BATCH, 2, 2, generator=gen) * image_size
        self.labels = torch.tensor([[1, 0], [1, 1], [0, 1]])

        # With random weights every object score has the same sign; shift the head's last bias (in the
        # official model, before copying) so these inputs straddle zero and both outcomes are tested.
        with torch.no_grad():
            sparse, dense = self.ref_pe((self.coords, self.labels), None, None)
            pos = self.ref_pe.get_dense_pe()
            *_, scores = self.ref_dec(self.image, pos, sparse, dense, False, False, self.high_res)
            lowest = scores.flatten().sort().values
            self.ref_dec.pred_obj_score_head.layers[-1].bias -= (lowest[0] + lowest[1]) / 2
        self.dec.load_state_dict(self.ref_dec.state_dict(), strict=True)
        for m in (self.ref_pe, self.ref_dec, self.pe, self.dec):
            m.eval()
        self._decoded: dict[bool, tuple] = {}

    def decoded(self, multimask: bool) -> tuple:
        """(ours, official) decoder outputs for the default point prompts, computed once per mode."""
        if multimask not in self._decoded:
            self._decoded[multimask] = _decode(self, multimask)
        return self._decoded[multimask]


@pytest.fixture(scope="module")
def pair() -> Pair:
    return Pair(image_size=1024)


@pytest.fixture(scope="module")
def pair512() -> Pair:
    return Pair(image_size=512, seed=3)


def _assert_close(ours: torch.Tensor, ref: torch.Tensor, what: str) -> float:
    diff = rel_max_abs_diff(ours, ref)
    print(f"{what}: rel max abs diff {diff:.2e}")
    assert diff <= TOL, f"{what} differs from the official by {diff:.2e} (relative)"
    return diff


def test_state_dict_keys_and_shapes_match_official(pair: Pair) -> None:
    for ours, ref in ((pair.pe, pair.ref_pe), (pair.dec, pair.ref_dec)):
        ours_sd, ref_sd = ours.state_dict(), ref.state_dict()
        assert list(ours_sd) == list(ref_sd)
        assert {k: v.shape for k, v in ours_sd.items()} == {k: v.shape for k, v in ref_sd.items()}


def _prompt_cases(p: Pair) -> dict[str, tuple]:
    box = torch.tensor([[100.0, 150.0, 600.0, 700.0], [10.0, 20.0, 30.0, 40.0], [0.0, 0.0, 1023.0, 1023.0]])
    box = box * p.image_size / 1024
    corner_labels = torch.tensor([[2, 3]]).expand(BATCH, 2)
    mask = torch.randn(
        BATCH, 1, p.image_size // 4, p.image_size // 4, generator=torch.Generator().manual_seed(7)
    )
    return {
        "single_point": ((p.coords[:, :1], p.labels[:, :1]), None, None),
        "positive_and_negative_points": ((p.coords, p.labels), None, None),
        "explicit_padding_label": ((p.coords, torch.tensor([[1, -1], [0, -1], [-1, 1]])), None, None),
        "box": (None, box, None),
        "box_as_corner_points": ((box.reshape(BATCH, 2, 2), corner_labels), None, None),
        "box_corners_then_click": (
            (torch.cat([box.reshape(BATCH, 2, 2), p.coords[:, :1]], 1), torch.tensor([[2, 3, 1]] * BATCH)),
            None,
            None,
        ),
        "points_with_box": ((p.coords, p.labels), box, None),
        "mask": (None, None, mask),
        "point_and_mask": ((p.coords[:, :1], p.labels[:, :1]), None, mask),
        "no_prompt": (None, None, None),
    }


@pytest.mark.parametrize(
    "case",
    [
        "single_point",
        "positive_and_negative_points",
        "explicit_padding_label",
        "box",
        "box_as_corner_points",
        "box_corners_then_click",
        "points_with_box",
        "mask",
        "point_and_mask",
        "no_prompt",
    ],
)
def test_prompt_encoder_matches_official(pair: Pair, case: str) -> None:
    args = _prompt_cases(pair)[case]
    with torch.no_grad():
        ref_sparse, ref_dense = pair.ref_pe(*args)
        sparse, dense = pair.pe(*args)
    assert sparse.shape == ref_sparse.shape
    if sparse.numel():
        _assert_close(sparse, ref_sparse, f"{case} sparse")
    _assert_close(dense, ref_dense, f"{case} dense")


def test_prompt_encoder_dense_pe_matches_official_at_512(pair512: Pair) -> None:
    assert pair512.pe.get_dense_pe().shape == (1, 256, 32, 32)
    _assert_close(pair512.pe.get_dense_pe(), pair512.ref_pe.get_dense_pe(), "dense pe 512")


def _decode(p: Pair, multimask: bool, prompts: tuple | None = None, repeat_image: bool = False):
    prompts = prompts if prompts is not None else ((p.coords, p.labels), None, None)
    image, high_res = p.image, p.high_res
    if repeat_image:
        image, high_res = image[:1], [f[:1] for f in high_res]
    with torch.no_grad():
        ref_sparse, ref_dense = p.ref_pe(*prompts)
        sparse, dense = p.pe(*prompts)
        ref = p.ref_dec(
            image, p.ref_pe.get_dense_pe(), ref_sparse, ref_dense, multimask, repeat_image, high_res
        )
        ours = p.dec(image, p.pe.get_dense_pe(), sparse, dense, multimask, repeat_image, high_res)
    return ours, ref


def _compare_decoder(ours, ref, multimask: bool, what: str) -> None:
    masks, iou, tokens, scores = ours
    ref_masks, ref_iou, ref_tokens, ref_scores = ref
    _assert_close(masks, ref_masks, f"{what} masks")
    _assert_close(iou, ref_iou, f"{what} iou")
    _assert_close(scores, ref_scores, f"{what} object scores")
    if ref_tokens.shape[1] > 1:
        # The official hands back all multimask tokens and its caller keeps the best-IoU one.
        best = ref_iou.argmax(-1)
        ref_tokens = ref_tokens[torch.arange(best.shape[0]), best].unsqueeze(1)
    assert tokens.shape == (masks.shape[0], 1, 256)
    _assert_close(tokens, ref_tokens, f"{what} pointer token")


@pytest.mark.parametrize("multimask", [True, False], ids=["multimask", "single_mask"])
def test_decoder_matches_official(pair: Pair, multimask: bool) -> None:
    ours, ref = pair.decoded(multimask)
    assert ours[0].shape == (BATCH, 3 if multimask else 1, 256, 256)
    _compare_decoder(ours, ref, multimask, "multimask" if multimask else "single")


def test_decoder_object_scores_match_official_with_both_signs(pair: Pair) -> None:
    (_, _, _, scores), (_, _, _, ref_scores) = pair.decoded(multimask=False)
    assert (ref_scores > 0).any() and (ref_scores <= 0).any(), "inputs must give present and absent objects"
    _assert_close(scores, ref_scores, "object scores")
    assert torch.equal(scores > 0, ref_scores > 0)


def test_dynamic_multimask_falls_back_like_official(pair: Pair) -> None:
    box = torch.tensor([[100.0, 150.0, 600.0, 700.0]]).expand(BATCH, 4)
    coords = torch.cat([box.reshape(BATCH, 2, 2), pair.coords], 1)  # box corners first, then clicks
    prompts = ((coords, torch.tensor([[2, 3, 1, 0]] * BATCH)), None, None)
    with torch.no_grad():
        sparse, dense = pair.pe(*prompts)
        all_masks, all_iou, _, _ = pair.dec.predict_all_masks(
            pair.image, pair.pe.get_dense_pe(), sparse, dense, False, pair.high_res
        )
    stability = pair.dec._stability(all_masks[:, 0])
    # A threshold between the rows' stabilities makes some rows keep mask 0 and others fall back.
    thresh = float(stability.sort().values[:2].mean())
    for dec in (pair.dec, pair.ref_dec):
        dec.dynamic_multimask_via_stability = True
        dec.dynamic_multimask_stability_thresh = thresh
    try:
        ours, ref = _decode(pair, False, prompts)
    finally:
        for dec in (pair.dec, pair.ref_dec):
            dec.dynamic_multimask_via_stability = False
            dec.dynamic_multimask_stability_thresh = 0.98

    fell_back = stability < thresh
    assert fell_back.any() and not fell_back.all(), "both branches must be exercised"
    best = all_iou[:, 1:].argmax(-1) + 1
    for row in range(BATCH):
        expected = best[row] if fell_back[row] else 0
        assert torch.equal(ours[0][row, 0], all_masks[row, expected])
    _compare_decoder(ours, ref, False, "dynamic")


def test_dynamic_multimask_default_threshold_matches_official(pair: Pair) -> None:
    for dec in (pair.dec, pair.ref_dec):
        dec.dynamic_multimask_via_stability = True
    try:
        ours, ref = _decode(pair, False)
    finally:
        for dec in (pair.dec, pair.ref_dec):
            dec.dynamic_multimask_via_stability = False
    plain = pair.decoded(multimask=False)[0]
    assert not torch.equal(ours[0], plain[0]), "random weights must trigger the stability fallback"
    _compare_decoder(ours, ref, False, "dynamic 0.98")


@pytest.mark.parametrize("multimask", [True, False], ids=["multimask", "single_mask"])
def test_decoder_repeat_image_for_prompt_batch_matches_official(pair: Pair, multimask: bool) -> None:
    ours, ref = _decode(pair, multimask, repeat_image=True)
    assert ours[0].shape[0] == BATCH
    _compare_decoder(ours, ref, multimask, "repeat_image")


def test_decoder_matches_official_at_512(pair512: Pair) -> None:
    ours, ref = pair512.decoded(multimask=True)
    assert ours[0].shape == (BATCH, 3, 128, 128)
    _compare_decoder(ours, ref, True, "512")
