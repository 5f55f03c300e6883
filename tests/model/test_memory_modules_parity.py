"""Parity of memory attention, memory encoder and axial RoPE with the official modules (random weights)."""

from __future__ import annotations

import pytest
import torch
from sam2.modeling import position_encoding as official_pe

from model.network.memory_attention import MemoryAttention
from model.network.memory_encoder import MemoryEncoder
from model.network.rope import AxialRoPE, axial_rope_angles, rotate_pairs
from tests.support.official_ref import build_official, rel_max_abs_diff

pytestmark = pytest.mark.parity

TOL = 1e-4
IMAGE_SIZE = 256  # stride-16 grid of 16x16 keeps the official model cheap to build and run


@pytest.fixture(scope="module")
def official():
    return build_official("sam2.1_hiera_tiny", image_size=IMAGE_SIZE, seed=0)


@pytest.fixture(scope="module")
def memory_attention(official) -> MemoryAttention:
    ours = MemoryAttention()
    ours.load_state_dict(official.memory_attention.state_dict(), strict=True)
    return ours.eval()


@pytest.fixture(scope="module")
def memory_encoder(official) -> MemoryEncoder:
    ours = MemoryEncoder()
    ours.load_state_dict(official.memory_encoder.state_dict(), strict=True)
    return ours.eval()


def _memory_inputs(side: int, batch: int, frames: int, ptr_tokens: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    hw, m = side * side, frames * side * side + ptr_tokens
    curr = torch.randn(hw, batch, 256, generator=gen)
    curr_pos = torch.randn(hw, batch, 256, generator=gen)
    memory = torch.randn(m, batch, 64, generator=gen)
    memory_pos = torch.randn(m, batch, 64, generator=gen)
    return curr, curr_pos, memory, memory_pos


def _official_memory_attention(official, curr, curr_pos, memory, memory_pos, ptr_tokens):
    return official.memory_attention(
        curr=curr, curr_pos=curr_pos, memory=memory, memory_pos=memory_pos, num_obj_ptr_tokens=ptr_tokens
    )


def test_state_dict_keys_and_shapes_equal_official(official):
    for ours, ref in (
        (MemoryAttention(), official.memory_attention),
        (MemoryEncoder(), official.memory_encoder),
    ):
        ours_sd, ref_sd = ours.state_dict(), ref.state_dict()
        assert list(ours_sd) == list(ref_sd)
        assert {k: v.shape for k, v in ours_sd.items()} == {k: v.shape for k, v in ref_sd.items()}


@pytest.mark.parametrize(
    "side, batch, frames, ptr_tokens",
    [
        pytest.param(16, 1, 1, 0, id="one_frame_no_pointers"),
        pytest.param(16, 1, 3, 8, id="three_frames_two_pointers"),
        pytest.param(16, 2, 2, 4, id="batch_two"),
        pytest.param(32, 1, 2, 4, id="grid_32x32_as_at_512"),
    ],
)
@torch.no_grad()
def test_memory_attention_matches_official(official, memory_attention, side, batch, frames, ptr_tokens):
    inputs = _memory_inputs(side, batch, frames, ptr_tokens)
    ref = _official_memory_attention(official, *inputs, ptr_tokens)
    ours = memory_attention(*inputs, num_obj_ptr_tokens=ptr_tokens)
    diff = rel_max_abs_diff(ours, ref)
    print(f"memory attention {side}x{side} B={batch} frames={frames} ptr={ptr_tokens}: rel {diff:.2e}")
    assert diff <= TOL


@torch.no_grad()
def test_pointer_tokens_are_not_rotated(memory_attention):
    # Moving a pointer token to another slot among pointers must not change the output, since pointers
    # carry no grid position; a rotated pointer would break that symmetry.
    curr, curr_pos, memory, memory_pos = _memory_inputs(16, 1, 1, 8)
    swapped = torch.cat((memory[:256], memory[-4:], memory[256:-4]))
    swapped_pos = torch.cat((memory_pos[:256], memory_pos[-4:], memory_pos[256:-4]))
    a = memory_attention(curr, curr_pos, memory, memory_pos, num_obj_ptr_tokens=8)
    b = memory_attention(curr, curr_pos, swapped, swapped_pos, num_obj_ptr_tokens=8)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_bf16_memory_with_fp32_queries_equals_fp32_on_rounded_memory(official, memory_attention):
    curr, curr_pos, memory, memory_pos = _memory_inputs(16, 1, 2, 8)
    memory_bf16, memory_pos_bf16 = memory.bfloat16(), memory_pos.bfloat16()
    ours = memory_attention(curr, curr_pos, memory_bf16, memory_pos_bf16, num_obj_ptr_tokens=8)
    assert ours.dtype == torch.float32
    rounded = memory_bf16.float(), memory_pos_bf16.float()
    ref = _official_memory_attention(official, curr, curr_pos, *rounded, 8)
    diff = rel_max_abs_diff(ours, ref)
    print(f"bf16 memory vs official fp32 on rounded memory: rel {diff:.2e}")
    assert diff <= TOL


@torch.no_grad()
def test_memory_attention_runs_under_cpu_autocast_like_official(official, memory_attention):
    curr, curr_pos, memory, memory_pos = _memory_inputs(16, 1, 1, 4)
    # As in tracking: stored bf16 memory, fp32 positions (they include the learned temporal encoding).
    memory = memory.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = memory_attention(curr, curr_pos, memory, memory_pos, num_obj_ptr_tokens=4)
        ref = _official_memory_attention(official, curr, curr_pos, memory, memory_pos, 4)
    diff = rel_max_abs_diff(ours, ref)
    print(f"memory attention under bf16 autocast: rel {diff:.2e}")
    assert diff <= 1e-3  # same bf16 ops; only accumulation order could differ


@pytest.mark.parametrize("skip_mask_sigmoid", [False, True], ids=["logits", "skip_sigmoid"])
@torch.no_grad()
def test_memory_encoder_matches_official(official, memory_encoder, skip_mask_sigmoid):
    gen = torch.Generator().manual_seed(1)
    h = IMAGE_SIZE // 16
    pix_feat = torch.randn(2, 256, h, h, generator=gen)
    masks = torch.randn(2, 1, 16 * h, 16 * h, generator=gen) * 10
    if skip_mask_sigmoid:
        masks = torch.sigmoid(masks) * 20 - 10  # what tracking feeds: scaled probabilities
    ref = official.memory_encoder(pix_feat, masks, skip_mask_sigmoid=skip_mask_sigmoid)
    feats, pos = memory_encoder(pix_feat, masks, skip_mask_sigmoid=skip_mask_sigmoid)
    diff = rel_max_abs_diff(feats, ref["vision_features"])
    pos_diff = rel_max_abs_diff(pos, ref["vision_pos_enc"][0])
    print(f"memory encoder skip_sigmoid={skip_mask_sigmoid}: features rel {diff:.2e}, pos rel {pos_diff:.2e}")
    assert diff <= TOL and pos_diff <= TOL


@pytest.mark.parametrize("head_dim, side", [(256, 64), (256, 16), (64, 8)])
def test_rope_angles_match_official_frequencies(head_dim, side):
    ref = official_pe.compute_axial_cis(dim=head_dim, end_x=side, end_y=side, theta=10000.0)
    angles = axial_rope_angles(head_dim, side, side)
    assert angles.shape == ref.shape
    torch.testing.assert_close(angles.cos(), ref.real, rtol=0, atol=1e-6)
    torch.testing.assert_close(angles.sin(), ref.imag, rtol=0, atol=1e-6)


@pytest.mark.parametrize("use_complex", [True, False], ids=["complex", "real_mps_path"])
@pytest.mark.parametrize("frames, excluded", [(1, 0), (3, 0), (2, 8)])
def test_rope_rotation_matches_official(frames, excluded, use_complex):
    gen = torch.Generator().manual_seed(2)
    side, head_dim = 8, 32
    q = torch.randn(2, 1, side * side, head_dim, generator=gen)
    k = torch.randn(2, 1, frames * side * side + excluded, head_dim, generator=gen)
    freqs = official_pe.compute_axial_cis(dim=head_dim, end_x=side, end_y=side)
    n_rot = k.shape[-2] - excluded
    ref_q, ref_k_rot = official_pe.apply_rotary_enc(q, k[..., :n_rot, :], freqs, repeat_freqs_k=frames > 1)
    rotation = AxialRoPE(head_dim).table(side * side, q.device)
    ours_q = rotate_pairs(q, rotation, use_complex)
    ours_k = rotate_pairs(k[..., :n_rot, :], rotation, use_complex)
    torch.testing.assert_close(ours_q, ref_q, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours_k, ref_k_rot, rtol=0, atol=1e-5)


def test_rope_leaves_pointer_keys_untouched():
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(1, 1, 16, 16, generator=gen)
    k = torch.randn(1, 1, 2 * 16 + 8, 16, generator=gen)
    _, out_k = AxialRoPE(16)(q, k, repeat_k=True, num_k_exclude=8)
    assert torch.equal(out_k[..., -8:, :], k[..., -8:, :])
    assert not torch.allclose(out_k[..., :-8, :], k[..., :-8, :])


def test_rope_keeps_low_precision_dtype_and_rejects_mismatched_keys():
    rope = AxialRoPE(16)
    q = torch.randn(1, 1, 16, 16, dtype=torch.bfloat16)
    out_q, out_k = rope(q, q.clone())
    assert out_q.dtype == out_k.dtype == torch.bfloat16
    with pytest.raises(ValueError):
        rope(q, torch.randn(1, 1, 32, 16), repeat_k=False)
    with pytest.raises(ValueError):
        rope(torch.randn(1, 1, 15, 16), torch.randn(1, 1, 15, 16))
