"""Deterministic synthetic video clips for the video tests, with their ground truth.

A clip is ``num_frames`` RGB frames of ``height x width`` showing three coloured objects on a textured
background:

- ``"disc"`` (red): an ellipse that moves right and breathes (its radii change from frame to frame);
- ``"block"`` (green): a small rectangle that moves left and passes behind a static grey pole, fully
  hidden on the middle frames of clips of 6 frames or more (see ``SyntheticClip.hidden_frames``);
- ``"kite"`` (yellow): a triangle that enters on ``appear_frame`` and drifts down while it rotates.

Ground truth is taken from the rendering (never from a decoded file): per object and frame the visible
mask, its centre (a pixel inside the visible region, as ``(x, y)`` in video pixels, good for a click) and
its bounding box (XYXY). Writers put the frames in a JPEG folder named as the official tools name them
(``00000.jpg``, ...), a PNG folder, or an mp4 file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

OBJECTS = ("disc", "block", "kite")
COLOURS = {"disc": (215, 45, 40), "block": (35, 190, 70), "kite": (240, 220, 40)}
POLE_COLOUR = (128, 128, 135)
# The pole covers x in [POLE_X0, POLE_X1) * width, over the whole height.
POLE_X0, POLE_X1 = 0.46, 0.66


@dataclass(frozen=True)
class SyntheticClip:
    """Frames and ground truth of one synthetic clip.

    frames: T, H, W, 3 uint8 RGB. masks: object name -> T, H, W bool (the visible part only).
    """

    frames: np.ndarray
    masks: dict[str, np.ndarray]
    appear_frame: int

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    def visible(self, name: str, frame_idx: int) -> bool:
        return bool(self.masks[name][frame_idx].any())

    def visible_frames(self, name: str) -> list[int]:
        return [t for t in range(self.num_frames) if self.visible(name, t)]

    def hidden_frames(self, name: str) -> list[int]:
        """Frames on which the object is entirely invisible (occluded, or not yet in the scene)."""
        return [t for t in range(self.num_frames) if not self.visible(name, t)]

    def mask(self, name: str, frame_idx: int) -> np.ndarray:
        """H, W bool: the visible part of the object on that frame."""
        return self.masks[name][frame_idx].copy()

    def centre(self, name: str, frame_idx: int) -> tuple[float, float] | None:
        """A click position ``(x, y)`` inside the visible object: the visible pixel nearest its centroid.

        ``None`` where the object is not visible.
        """
        mask = self.masks[name][frame_idx]
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            return None
        cy, cx = ys.mean(), xs.mean()
        k = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
        return float(xs[k]), float(ys[k])

    def box(self, name: str, frame_idx: int, margin: float = 2.0) -> np.ndarray | None:
        """XYXY float32 box around the visible object, ``margin`` px wider on each side; None if hidden."""
        ys, xs = np.nonzero(self.masks[name][frame_idx])
        if len(xs) == 0:
            return None
        box = [xs.min() - margin, ys.min() - margin, xs.max() + margin, ys.max() + margin]
        return np.clip(np.array(box, np.float32), 0, [self.width - 1, self.height - 1] * 2)

    def background_point(self, frame_idx: int) -> tuple[float, float]:
        """A point ``(x, y)`` covered by no object on that frame (for negative clicks)."""
        covered = np.zeros((self.height, self.width), bool)
        for name in OBJECTS:
            covered |= self.masks[name][frame_idx]
        candidates = [(0.1, 0.9), (0.9, 0.1), (0.1, 0.1), (0.9, 0.9), (0.5, 0.1)]
        for fx, fy in candidates:
            x, y = int(fx * (self.width - 1)), int(fy * (self.height - 1))
            if not covered[y, x]:
                return float(x), float(y)
        raise AssertionError("no background point found")  # pragma: no cover - the layout avoids it


def _background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A textured float32 background: gradient, two interfering gratings and blurred noise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.empty((height, width, 3), np.float32)
    base[..., 0] = 70 + 50 * xx / width
    base[..., 1] = 80 + 40 * yy / height
    base[..., 2] = 110 - 30 * xx / width
    texture = 14 * np.sin(xx / 4.0 + 0.7 * np.sin(yy / 9.0)) * np.cos(yy / 6.0)
    noise = rng.normal(0, 1, (height // 4 + 1, width // 4 + 1)).astype(np.float32)
    noise = np.kron(noise, np.ones((4, 4), np.float32))[:height, :width] * 10
    return base + (texture + noise)[..., None] * np.array([1.0, 0.8, 0.6], np.float32)


def _ellipse(yy: np.ndarray, xx: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0


def _triangle(yy: np.ndarray, xx: np.ndarray, cx: float, cy: float, size: float, angle: float) -> np.ndarray:
    """A filled triangle of circumradius ``size`` centred at (cx, cy), rotated by ``angle`` radians."""
    corners = [
        (cx + size * np.cos(angle + k * 2 * np.pi / 3), cy + size * np.sin(angle + k * 2 * np.pi / 3))
        for k in range(3)
    ]
    inside = np.ones(xx.shape, bool)
    for k in range(3):
        (x0, y0), (x1, y1) = corners[k], corners[(k + 1) % 3]
        inside &= (x1 - x0) * (yy - y0) - (y1 - y0) * (xx - x0) >= 0
    return inside


def make_clip(
    num_frames: int = 8,
    height: int = 144,
    width: int = 192,
    appear_frame: int | None = None,
    seed: int = 0,
) -> SyntheticClip:
    """Render a clip (same arguments, same pixels).

    ``appear_frame`` (default ``num_frames // 3``, at least 1) is the first frame showing the kite.
    """
    if num_frames < 2:
        raise ValueError("a clip needs at least 2 frames")
    appear = max(1, num_frames // 3) if appear_frame is None else appear_frame
    rng = np.random.default_rng(seed)
    background = _background(height, width, rng)
    grain = rng.normal(0, 2.5, (num_frames, height, width, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    pole = (xx >= POLE_X0 * width) & (xx < POLE_X1 * width)
    pole_shade = 1.0 + 0.08 * np.sin(yy / 3.0)

    frames = np.empty((num_frames, height, width, 3), np.uint8)
    masks = {name: np.zeros((num_frames, height, width), bool) for name in OBJECTS}
    for t in range(num_frames):
        s = t / (num_frames - 1)
        shapes = {
            # Breathing ellipse, moving right along the top half.
            "disc": _ellipse(
                yy,
                xx,
                cx=(0.12 + 0.22 * s) * width,
                cy=(0.34 + 0.05 * np.sin(3 * s)) * height,
                rx=(0.09 + 0.02 * np.sin(5 * s)) * width,
                ry=(0.15 - 0.03 * np.sin(4 * s)) * height,
            ),
            # Small block moving left, behind the pole in the middle of the clip.
            "block": (np.abs(xx - (0.86 - 0.5 * s) * width) <= 0.045 * width)
            & (np.abs(yy - 0.74 * height) <= 0.1 * height),
            # Triangle entering late, drifting down and rotating.
            "kite": _triangle(
                yy, xx, cx=0.86 * width, cy=(0.2 + 0.25 * s) * height, size=0.11 * height, angle=0.4 * t
            )
            if t >= appear
            else np.zeros_like(pole),
        }
        image = background.copy()
        covered = pole.copy()  # painted last: everything behind it is hidden
        for name in ("kite", "block", "disc"):  # back to front
            image[shapes[name]] = COLOURS[name]
        for name in ("disc", "block", "kite"):  # front to back: visible = shape minus what covers it
            masks[name][t] = shapes[name] & ~covered
            covered |= shapes[name]
        image[pole] = np.array(POLE_COLOUR, np.float32) * pole_shade[pole][:, None]
        frames[t] = np.clip(image + grain[t], 0, 255).astype(np.uint8)
    return SyntheticClip(frames=frames, masks=masks, appear_frame=appear)


def write_jpeg_folder(clip: SyntheticClip, directory: str | Path, quality: int = 95) -> Path:
    """Write ``00000.jpg``, ``00001.jpg``, ... (the official naming) into ``directory``; returns it."""
    return _write_folder(clip, directory, "jpg", dict(quality=quality))


def write_png_folder(clip: SyntheticClip, directory: str | Path) -> Path:
    """Write lossless ``00000.png``, ``00001.png``, ... into ``directory``; returns it."""
    return _write_folder(clip, directory, "png", {})


def _write_folder(clip: SyntheticClip, directory: str | Path, ext: str, options: dict) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(clip.frames):
        Image.fromarray(frame).save(directory / f"{t:05d}.{ext}", **options)
    return directory


def write_mp4(clip: SyntheticClip, path: str | Path, fps: int = 10) -> Path:
    """Encode the clip as H.264 (yuv420p, near-lossless CRF) with PyAV; returns the file path.

    Width and height must be even (yuv420p).
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = clip.width, clip.height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12"}
        for frame in clip.frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_jpeg_clip(directory: str | Path, **clip_kwargs) -> tuple[Path, SyntheticClip]:
    """Render a clip with ``make_clip(**clip_kwargs)`` and write it as a JPEG folder: ``(folder, clip)``."""
    clip = make_clip(**clip_kwargs)
    return write_jpeg_folder(clip, directory), clip
