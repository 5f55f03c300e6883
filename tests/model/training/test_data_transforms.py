"""Clip transforms: one geometry for every frame of a clip, masks moving with their image, the colour steps
of the official recipe, and a plain resize without augmentation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from model.training.data import AugmentSettings, ClipTransforms

H, W, S = 48, 64, 32
NO_COLOUR = dict(clip_jitter=(0.0, 0.0, 0.0), grayscale_prob=0.0, frame_jitter=(0.0, 0.0, 0.0))
STILL = AugmentSettings(hflip_prob=0.0, degrees=0.0, shear=0.0, **NO_COLOUR)


def red_block_clip(num_frames: int = 3) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Identical frames: a red block (the one object) on a grey ramp, off centre so a flip moves it."""
    frame = np.zeros((H, W, 3), np.uint8)
    frame[...] = np.linspace(60, 140, W, dtype=np.uint8)[None, :, None]
    mask = np.zeros((H, W), bool)
    mask[10:30, 6:26] = True
    frame[mask] = (230, 20, 20)
    return [frame.copy() for _ in range(num_frames)], [mask[None].copy() for _ in range(num_frames)]


def red(frames: np.ndarray) -> np.ndarray:
    """T, S, S bool: the clearly red pixels."""
    r, g, b = (frames[..., c].astype(int) for c in range(3))
    return (r - g > 100) & (r - b > 100)


def test_without_augmentation_a_square_clip_of_the_output_size_is_unchanged():
    frames, masks = red_block_clip()
    frames = [f[:, :H] for f in frames]
    masks = [m[:, :, :H] for m in masks]
    out_frames, out_masks = ClipTransforms(H)(frames, masks, np.random.default_rng(0))
    np.testing.assert_array_equal(out_frames, np.stack(frames))
    np.testing.assert_array_equal(out_masks, np.stack(masks))


def test_a_flip_applies_to_every_frame_and_its_masks():
    frames, masks = red_block_clip()
    plain_frames, plain_masks = ClipTransforms(S)(frames, masks, np.random.default_rng(0))
    flip = replace(STILL, hflip_prob=1.0)
    flipped_frames, flipped_masks = ClipTransforms(S, flip)(frames, masks, np.random.default_rng(0))
    np.testing.assert_array_equal(flipped_frames, plain_frames[:, :, ::-1])
    np.testing.assert_array_equal(flipped_masks, plain_masks[:, :, :, ::-1])


@pytest.mark.parametrize("seed", range(6))
def test_the_affine_is_one_for_the_clip_and_masks_move_with_the_image(seed):
    frames, masks = red_block_clip()
    settings = AugmentSettings(hflip_prob=0.5, **NO_COLOUR)
    out_frames, out_masks = ClipTransforms(S, settings)(frames, masks, np.random.default_rng(seed))
    assert out_frames.shape == (3, S, S, 3) and out_masks.shape == (3, 1, S, S)
    for t in range(1, 3):  # identical input frames: identical geometry
        np.testing.assert_array_equal(out_frames[t], out_frames[0])
        np.testing.assert_array_equal(out_masks[t], out_masks[0])
    mask, block = out_masks[:, 0], red(out_frames)
    assert (mask & block).sum() / (mask | block).sum() > 0.8


def test_the_affine_is_dropped_when_it_would_hide_the_first_frame_object():
    frames, _ = red_block_clip(1)
    corner = np.zeros((1, H, W), bool)
    corner[0, 0, 0] = True  # a one-pixel object in the corner: any real rotation moves it out of view
    settings = replace(STILL, degrees=25.0)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        peek = np.random.default_rng(seed)
        peek.random()  # the flip's draw comes first
        if abs(peek.uniform(-25, 25)) < 5:
            continue
        out_frames, _ = ClipTransforms(W, settings)([frames[0][:, :W]], [corner], rng)
        plain, _ = ClipTransforms(W)([frames[0][:, :W]], [corner], rng)
        np.testing.assert_array_equal(out_frames, plain)


def test_grayscale_turns_every_frame_grey():
    frames, masks = red_block_clip()
    settings = replace(STILL, grayscale_prob=1.0)
    out_frames, _ = ClipTransforms(S, settings)(frames, masks, np.random.default_rng(0))
    assert (out_frames[..., 0] == out_frames[..., 1]).all() and (
        out_frames[..., 1] == out_frames[..., 2]
    ).all()


def test_the_clip_jitter_is_shared_and_the_frame_jitter_is_per_frame():
    frames, masks = red_block_clip()
    plain, _ = ClipTransforms(S)(frames, masks, np.random.default_rng(0))
    shared = replace(STILL, clip_jitter=(0.3, 0.3, 0.3))
    out, _ = ClipTransforms(S, shared)(frames, masks, np.random.default_rng(1))
    assert not np.array_equal(out[0], plain[0])
    assert all(np.array_equal(out[t], out[0]) for t in range(3))
    own = replace(STILL, frame_jitter=(0.3, 0.3, 0.3))
    out, _ = ClipTransforms(S, own)(frames, masks, np.random.default_rng(1))
    assert not np.array_equal(out[1], out[0]) and not np.array_equal(out[2], out[1])


def test_the_same_generator_state_gives_the_same_clip():
    frames, masks = red_block_clip()
    transforms = ClipTransforms(S, AugmentSettings())
    a = transforms(frames, masks, np.random.default_rng(3))
    b = transforms(frames, masks, np.random.default_rng(3))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_many_objects_warp_together_and_keep_their_area():
    frames, _ = red_block_clip(1)
    masks = np.zeros((10, H, W), bool)
    for k in range(10):
        masks[k, 4 * k : 4 * k + 6, 10:40] = True
    settings = replace(STILL, degrees=10.0)
    _, out = ClipTransforms(S, settings)(frames, [masks], np.random.default_rng(0))
    assert out.shape == (1, 10, S, S)
    areas = out[0].reshape(10, -1).sum(axis=1)
    expected = 6 * 30 * (S / H) * (S / W)
    assert (areas > 0.7 * expected).all() and (areas < 1.3 * expected).all()  # more than 8: two bit chunks
    rows = [np.argwhere(out[0, k])[:, 0].mean() for k in range(10)]
    assert rows == sorted(rows)  # each object stays itself: none swapped with another of the same warp
