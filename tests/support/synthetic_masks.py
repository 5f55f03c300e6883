"""Synthetic tracked masks for long sessions: what a mask store holds after tracking a video, without a model.

Each object follows a smooth path across the frame, grows and shrinks over time (its height from a few
percent of the frame to most of it), and has its own kind of shape, cycling through five:

- ``ellipse``: a rotating ellipse;
- ``blob``: an irregular outline (the radius wobbles with the angle, and the wobble turns);
- ``ragged``: an irregular outline with a blocky jitter along its edge, like SAM's low-resolution logits
  upsampled, plus single-pixel noise where the jitter is;
- ``parts``: two or three lobes that touch or come apart, with a hole;
- ``speckled``: a blob with scattered pixels missing inside and stray pixels around it.

Objects leave the video for stretches of frames (their mask is empty there), and may stand partly outside the
frame. Everything is deterministic in (seed, frame, object), so a frame's masks can be made again on demand.
"""

from __future__ import annotations

import numpy as np

KINDS = ("ellipse", "blob", "ragged", "parts", "speckled")
SIZES = (
    0.3,
    0.1,
    0.25,
    0.15,
    0.2,
)  # half-heights as a fraction of the frame's shorter side (they vary +-50 %)
ABSENT_EVERY = 250  # frames: each object leaves the video for a stretch of every such span
ABSENT_FOR = 40  # frames


def object_mask(frame: int, obj: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """The H, W bool mask of object ``obj`` (0-based) on ``frame``."""
    mask = np.zeros((height, width), bool)
    if (frame + 97 * obj) % ABSENT_EVERY < ABSENT_FOR:
        return mask
    path = np.random.default_rng([seed, obj]).uniform(0, 1, 6)  # fixed per object: its path and size
    phase = frame / (150 + 60 * path[0])
    cy = height * (0.5 + 0.45 * np.sin(phase + 6 * path[1]))
    cx = width * (0.5 + 0.5 * np.sin(0.7 * phase + 6 * path[2]))
    size = min(height, width) * SIZES[obj % len(SIZES)] * (1 + 0.5 * np.sin(1.3 * phase + 6 * path[3]))
    aspect = 0.5 + path[4]
    ry, rx = size, size * aspect
    top, bottom = int(max(0, cy - 1.6 * ry)), int(min(height, cy + 1.6 * ry + 1))
    left, right = int(max(0, cx - 1.6 * rx)), int(min(width, cx + 1.6 * rx + 1))
    if top >= bottom or left >= right:
        return mask  # off the frame
    dy = ((np.arange(top, bottom, dtype=np.float32) - cy) / ry)[:, None]  # rows, 1
    dx = ((np.arange(left, right, dtype=np.float32) - cx) / rx)[None, :]  # 1, columns
    turn = frame / 40 + 6 * path[5]
    radius = np.hypot(dy, dx)
    noise = np.random.default_rng([seed, obj, frame])
    kind = KINDS[obj % len(KINDS)]
    if kind == "ellipse":
        c, s = np.cos(turn / 4), np.sin(turn / 4)
        inside = (c * dx + s * dy) ** 2 + ((c * dy - s * dx) / 0.7) ** 2 < 1
    elif kind == "parts":
        inside = radius < 0.35
        for lobe in range(2 + obj % 2):
            offset = 0.55 + 0.25 * np.sin(turn + lobe)
            ly, lx = offset * np.sin(2.1 * lobe + turn / 3), offset * np.cos(2.1 * lobe + turn / 3)
            inside |= np.hypot(dy - ly, dx - lx) < 0.4
        inside &= np.hypot(dy + 0.1, dx - 0.1) > 0.12  # a hole
    else:
        angle = np.arctan2(dy, dx)
        edge = 0.8 + 0.12 * np.sin(3 * angle + turn) + 0.06 * np.sin(7 * angle - 2 * turn)
        inside = radius < edge
        if kind == "ragged":
            blocks = noise.normal(0, 0.04, ((bottom - top) // 4 + 1, (right - left) // 4 + 1))
            jitter = np.repeat(np.repeat(blocks, 4, axis=0), 4, axis=1)[: bottom - top, : right - left]
            near = np.abs(radius - edge) < 0.08
            inside = np.where(near, radius < edge + jitter, inside)
            inside ^= near & (noise.random(inside.shape) < 0.05)
        elif kind == "speckled":
            inside = inside & (noise.random(inside.shape) > 0.01)
            inside |= (radius < 1.5 * edge) & (noise.random(inside.shape) < 0.002)
    mask[top:bottom, left:right] = inside
    return mask


def frame_masks(
    frame: int, num_objects: int, height: int, width: int, seed: int = 0
) -> dict[int, np.ndarray]:
    """Object id (1-based, as sessions hand them out) -> H, W bool mask on ``frame``, every object listed
    (an absent one has an empty mask, as tracking reports it)."""
    return {obj + 1: object_mask(frame, obj, height, width, seed) for obj in range(num_objects)}
