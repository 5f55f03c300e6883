"""Generated clips for the fine-tuning benchmark: textured shapes that move, turn and grow over a textured
background, written in the DAVIS layout (``JPEGImages/<video>/00000.jpg``, ``Annotations/<video>/00000.png``
palette PNGs), so the training data readers and ``apps.vos`` read them as they read DAVIS.

Every clip is drawn from its own seeded generator (the set's seed and the clip's number), so a training set
and a held-out set made with two seeds never share a clip, and the same seed gives the same pixels.

A texture is a function of coordinates, so a shape carries its texture as it moves, turns and grows (the
texture is painted in the shape's own coordinates), and the background drifts as a panning camera would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from apps.vos.masks import default_palette, write_label_png

TEXTURE_KINDS = ("stripes", "checker", "waves")
MIN_VISIBLE = 0.01  # every object covers at least this share of the first frame (it is the prompt there)


@dataclass(frozen=True)
class Texture:
    """A coloured pattern over the plane: ``paint(u, v)`` gives the colour at coordinates ``u, v``.

    ``kind``: "stripes" (two colours along ``directions[0]``), "checker" (two colours, a checkerboard along
    the first two directions) or "waves" (a smooth field, a sum of sinusoids per colour channel);
    ``colors``: 2, 3 floats in 0..255; ``directions``: K, 2 spatial frequencies (radians per unit);
    ``phases``: K, 3 phases (per direction and channel); ``noise``: the grain's standard deviation.
    """

    kind: str
    colors: np.ndarray
    directions: np.ndarray
    phases: np.ndarray
    noise: float

    def paint(self, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """N floats u, N floats v  ->  N, 3 float colours (0..255, with grain)."""
        along = u[:, None] * self.directions[:, 0] + v[:, None] * self.directions[:, 1]  # N, K
        waves = np.sin(along[:, :, None] + self.phases[None])  # N, K, 3
        if self.kind == "stripes":
            weight = (waves[:, 0, :1] > 0).astype(np.float64)  # N, 1
        elif self.kind == "checker":
            weight = ((waves[:, 0, :1] > 0) ^ (waves[:, 1, :1] > 0)).astype(np.float64)
        else:
            weight = 0.5 + 0.5 * waves.mean(axis=1)  # N, 3: each channel mixes on its own
        colors = self.colors[0] * (1.0 - weight) + self.colors[1] * weight
        return colors + rng.normal(0.0, self.noise, colors.shape)


def random_texture(rng: np.random.Generator, frequency: tuple[float, float], shade: float = 40.0) -> Texture:
    """A texture of a random kind in two shades of a random colour (the second differs from the first by
    about ``shade`` per channel), with spatial frequencies in ``frequency`` (radians per unit)."""
    kind = TEXTURE_KINDS[int(rng.integers(len(TEXTURE_KINDS)))]
    angles = rng.uniform(0.0, np.pi, 3)
    angles[1] = angles[0] + np.pi / 2  # a checkerboard's second direction is square to its first
    speeds = rng.uniform(*frequency, 3)
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1) * speeds[:, None]
    base = rng.uniform(0.0, 255.0, 3)
    colors = np.clip(np.stack([base, base + rng.normal(0.0, shade, 3)]), 0.0, 255.0)
    phases = rng.uniform(0.0, 2 * np.pi, (3, 3))
    return Texture(kind, colors, directions, phases, noise=float(rng.uniform(2.0, 10.0)))


def random_outline(rng: np.random.Generator) -> np.ndarray:
    """A shape of radius about 1 around the origin (V, 2 polygon vertices): a polygon, ellipse or star."""
    kind = int(rng.integers(3))
    if kind == 0:  # a regular polygon, 3 to 7 corners
        angles = np.linspace(0.0, 2 * np.pi, int(rng.integers(3, 8)), endpoint=False)
        radii = np.ones_like(angles)
    elif kind == 1:  # an ellipse
        angles = np.linspace(0.0, 2 * np.pi, 32, endpoint=False)
        radii = 1.0 / np.sqrt(np.cos(angles) ** 2 + (np.sin(angles) / rng.uniform(0.45, 1.0)) ** 2)
    else:  # a star, 4 to 6 points
        points = int(rng.integers(4, 7))
        angles = np.linspace(0.0, 2 * np.pi, 2 * points, endpoint=False)
        radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, rng.uniform(0.4, 0.65))
    return np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)


def _rotation(angle: float) -> np.ndarray:
    cos, sin = np.cos(angle), np.sin(angle)
    return np.array([[cos, -sin], [sin, cos]])


def _draw_shape(outline: np.ndarray, center: np.ndarray, angle: float, scale: float, size: tuple[int, int]):
    """The shape's mask (H, W bool) at a pose, and the shape's own coordinates of its pixels (2 x N)."""
    width, height = size
    rotation = _rotation(angle)
    vertices = center + scale * outline @ rotation.T
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in vertices], fill=1)
    mask = np.array(canvas, dtype=bool)
    ys, xs = np.nonzero(mask)
    local = rotation.T @ (np.stack([xs, ys]).astype(np.float64) - center[:, None]) / scale  # 2, N
    return mask, local


def make_clip(
    rng: np.random.Generator,
    num_frames: int,
    size: tuple[int, int],
    max_shapes: int = 3,
    min_shapes: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """One clip: frames (T, H, W, 3 uint8) and labels (T, H, W uint8; 0 background, 1.. the shapes).

    ``min_shapes`` to ``max_shapes`` shapes, each moving at its own velocity (bouncing off the borders),
    turning and growing or shrinking a little every frame; later shapes pass in front of earlier ones.
    """
    while True:
        frames, labels = _draw_clip(rng, num_frames, size, int(rng.integers(min_shapes, max_shapes + 1)))
        areas = [(labels[0] == obj).mean() for obj in range(1, int(labels.max(initial=0)) + 1)]
        if areas and min(areas) >= MIN_VISIBLE and len(areas) == len(np.unique(labels[0])) - 1:
            return frames, labels


def _draw_clip(
    rng: np.random.Generator, num_frames: int, size: tuple[int, int], num_shapes: int
) -> tuple[np.ndarray, np.ndarray]:
    width, height = size
    side = min(width, height)
    background = random_texture(rng, (0.02, 0.15))  # radians per pixel
    drift = rng.uniform(-0.01, 0.01, 2) * side  # the camera pans
    shapes = []
    for _ in range(num_shapes):
        shapes.append(
            {
                "outline": random_outline(rng),
                "texture": random_texture(rng, (1.5, 6.0)),  # radians per shape radius
                "center": rng.uniform(0.2, 0.8, 2) * (width, height),
                "velocity": rng.uniform(-0.05, 0.05, 2) * side,
                "angle": rng.uniform(0.0, 2 * np.pi),
                "spin": rng.uniform(-0.2, 0.2),
                "scale": rng.uniform(0.1, 0.22) * side,
                "growth": rng.uniform(0.94, 1.06),
            }
        )
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    labels = np.zeros((num_frames, height, width), np.uint8)
    for t in range(num_frames):
        image = background.paint((xs + t * drift[0]).ravel(), (ys + t * drift[1]).ravel(), rng)
        image = image.reshape(height, width, 3)
        for obj, shape in enumerate(shapes, start=1):
            mask, local = _draw_shape(shape["outline"], shape["center"], shape["angle"], shape["scale"], size)
            image[mask] = shape["texture"].paint(local[0], local[1], rng)
            labels[t][mask] = obj
            _move(shape, size)
        frames[t] = np.clip(image, 0, 255).astype(np.uint8)
    return frames, labels


def _move(shape: dict, size: tuple[int, int]) -> None:
    """One frame of a shape's motion; a shape whose centre leaves the inner 90 % bounces back."""
    bounds = np.array(size, dtype=np.float64)
    center = shape["center"] + shape["velocity"]
    outside = (center < 0.05 * bounds) | (center > 0.95 * bounds)
    shape["velocity"] = np.where(outside, -shape["velocity"], shape["velocity"])
    shape["center"] = np.clip(center, 0.05 * bounds, 0.95 * bounds)
    shape["angle"] += shape["spin"]
    shape["scale"] = float(np.clip(shape["scale"] * shape["growth"], 0.06 * min(size), 0.3 * min(size)))


def write_video(root: Path, name: str, frames: np.ndarray, labels: np.ndarray, quality: int = 90) -> None:
    """Write one clip: ``root/JPEGImages/<name>/<frame>.jpg``, ``root/Annotations/<name>/<frame>.png``."""
    frame_dir, mask_dir = root / "JPEGImages" / name, root / "Annotations" / name
    frame_dir.mkdir(parents=True, exist_ok=True)
    palette = default_palette()
    for t, (frame, label) in enumerate(zip(frames, labels)):
        Image.fromarray(frame).save(frame_dir / f"{t:05d}.jpg", quality=quality)
        write_label_png(mask_dir / f"{t:05d}.png", label, palette)


def write_clips(
    root: str | Path,
    count: int,
    seed: int,
    num_frames: int = 8,
    size: tuple[int, int] = (128, 128),
    max_shapes: int = 3,
) -> list[str]:
    """Write ``count`` generated clips in the DAVIS layout under ``root``; returns the video names.

    Clip ``i`` comes from ``numpy.random.default_rng((seed, i))``: the same arguments give the same files.
    """
    root = Path(root)
    names = []
    for index in range(count):
        rng = np.random.default_rng((seed, index))
        frames, labels = make_clip(rng, num_frames, size, max_shapes)
        name = f"shapes_{seed}_{index:04d}"
        write_video(root, name, frames, labels)
        names.append(name)
    return names
