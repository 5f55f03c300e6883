"""A frame drawn for a person: per-object mask overlays and outlines, point and box markers, at display size.

Everything is computed at the display resolution (the frame and each mask are resized first), so a 4K frame
shown in a 1280 x 720 view costs about as much as a 720p one. `DisplayMapping` converts clicks on the rendered
image back to frame pixels.

Coordinates follow SAM's prompt convention: pixel indices, with the centre of pixel (i, j) at x = i, y = j
(the prompt encoder adds 0.5). A frame of width W covers x in [-0.5, W - 0.5).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ..engine.colors import RGB, object_color

PointMarker = tuple[int, float, float, bool]  # obj_id, x, y, positive
BoxMarker = tuple[int, float, float, float, float]  # obj_id, x0, y0, x1, y1

WHITE: RGB = (255, 255, 255)
NEGATIVE_RING: RGB = (235, 30, 30)


@dataclass(frozen=True)
class DisplayMapping:
    """Where a frame lands in its rendered image: sizes are (width, height).

    The geometry is PIL's resize: the centre of display pixel u sits at frame x = (u + 0.5) / scale_x - 0.5.
    """

    frame_size: tuple[int, int]  # W, H
    display_size: tuple[int, int]  # w, h

    @classmethod
    def fit(cls, frame_size: tuple[int, int], max_size: tuple[int, int] | None = None) -> DisplayMapping:
        """The largest display size within ``max_size`` (w, h) keeping the frame's aspect; never upscales.

        A front end that wants a small frame bigger lets the browser or canvas scale the image.
        """
        w, h = frame_size
        if max_size is None:
            return cls((w, h), (w, h))
        max_w, max_h = max_size
        if max_w < 1 or max_h < 1:
            raise ValueError(f"display size must be at least 1 x 1, got {max_size}")
        scale = min(1.0, max_w / w, max_h / h)
        return cls((w, h), (max(1, round(w * scale)), max(1, round(h * scale))))

    @property
    def scale_x(self) -> float:
        """Display pixels per frame pixel along x."""
        return self.display_size[0] / self.frame_size[0]

    @property
    def scale_y(self) -> float:
        """Display pixels per frame pixel along y (differs from ``scale_x`` only by rounding of the size)."""
        return self.display_size[1] / self.frame_size[1]

    @property
    def scale(self) -> float:
        """Display pixels per frame pixel (the x factor; see ``scale_y``)."""
        return self.scale_x

    def to_frame(self, x: float, y: float) -> tuple[float, float]:
        """Display pixel coordinates -> frame pixel coordinates (floats; round for a pixel index).

        A canvas that reports continuous positions (0 at the left edge of the first pixel) should pass
        ``x - 0.5, y - 0.5``; Gradio's ``select`` event already gives pixel indices.
        """
        return (x + 0.5) / self.scale_x - 0.5, (y + 0.5) / self.scale_y - 0.5

    def to_display(self, x: float, y: float) -> tuple[float, float]:
        """Frame pixel coordinates -> display pixel coordinates; the inverse of ``to_frame``."""
        return (x + 0.5) * self.scale_x - 0.5, (y + 0.5) * self.scale_y - 0.5

    def contains(self, x: float, y: float) -> bool:
        """Whether frame coordinates (x, y) fall on the frame (some pixel's area holds them)."""
        w, h = self.frame_size
        return -0.5 <= x < w - 0.5 and -0.5 <= y < h - 0.5


def render_frame(
    rgb: np.ndarray,
    masks: Mapping[int, np.ndarray],
    colors: Mapping[int, RGB],
    points: Sequence[PointMarker] = (),
    boxes: Sequence[BoxMarker] = (),
    selected: int | None = None,
    display_size: tuple[int, int] | None = None,
    alpha: float = 0.45,
    outline: bool = True,
) -> tuple[np.ndarray, DisplayMapping]:
    """Draw masks, outlines and prompts over a frame, resized to fit ``display_size``.

    Arguments:
      rgb: H, W, 3 uint8 frame.
      masks: obj_id -> H, W bool mask. Later ids are drawn over earlier ones; ``selected`` goes on top with a
        stronger fill, a thicker outline and larger markers.
      colors: obj_id -> (r, g, b); an id missing here gets ``object_color(obj_id)``.
      points: (obj_id, x, y, positive) in frame pixels. Positive: object colour, white ring, white plus.
        Negative: object colour, red ring, white minus.
      boxes: (obj_id, x0, y0, x1, y1) in frame pixels, drawn as a rectangle in the object colour.
      display_size: (max width, max height) of the result; None keeps the frame size.
      alpha: opacity of the mask fill.
      outline: draw each mask's boundary in its colour at full opacity.
    Returns:
      h, w, 3 uint8 image, and the mapping between its pixels and the frame's.
    """
    frame = _as_rgb(rgb)
    mapping = DisplayMapping.fit((frame.shape[1], frame.shape[0]), display_size)
    canvas = np.asarray(_resized(frame, mapping), dtype=np.float32)  # h, w, 3 float (a copy)
    fills = _mask_fills(masks, colors, selected, mapping, alpha, outline)
    for window, weight, color, _ in fills:
        region = canvas[window]
        region += weight[..., None] * (np.asarray(color, np.float32) - region)
    # Outlines after all fills, so a later object's fill does not tint an earlier object's outline.
    for window, _, color, edge in fills:
        if edge is not None:
            canvas[window][edge] = color
    out = Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8))
    _draw_prompts(ImageDraw.Draw(out), points, boxes, colors, selected, mapping)
    return np.asarray(out), mapping


def render_frames(
    num_frames: int,
    frame_at: Callable[[int], np.ndarray],
    masks: Mapping[int, Mapping[int, np.ndarray]],
    colors: Mapping[int, RGB],
    points: Mapping[int, Sequence[PointMarker]] | None = None,
    boxes: Mapping[int, Sequence[BoxMarker]] | None = None,
    display_size: tuple[int, int] | None = None,
) -> Iterator[np.ndarray]:
    """`render_frame` of frames ``0 .. num_frames-1`` one after the other (for an overlay video): the frame
    from ``frame_at(i)``, the masks ``masks[i]``, and the prompts on it if given (by frame index)."""
    points, boxes = points or {}, boxes or {}
    for index in range(num_frames):
        image, _ = render_frame(
            frame_at(index),
            masks[index],
            colors,
            points.get(index, ()),
            boxes.get(index, ()),
            None,
            display_size,
        )
        yield image


@dataclass(frozen=True)
class Layers:
    """A rendered frame as three layers, for a canvas that redraws them separately.

    frame: h, w, 3 uint8, the frame at display size. masks: h, w, 4 uint8 RGBA (straight alpha), the fills
    and outlines. markers: h, w, 4 uint8 RGBA, the points and boxes. Drawn in that order, they give what
    `render_frame` gives (to rounding: within 2 levels per channel).
    """

    frame: np.ndarray
    masks: np.ndarray
    markers: np.ndarray
    mapping: DisplayMapping


def render_layers(
    rgb: np.ndarray,
    masks: Mapping[int, np.ndarray],
    colors: Mapping[int, RGB],
    points: Sequence[PointMarker] = (),
    boxes: Sequence[BoxMarker] = (),
    selected: int | None = None,
    display_size: tuple[int, int] | None = None,
    alpha: float = 0.45,
    outline: bool = True,
) -> Layers:
    """`render_frame` as three layers (see `Layers`); the arguments are `render_frame`'s."""
    frame = _as_rgb(rgb)
    mapping = DisplayMapping.fit((frame.shape[1], frame.shape[0]), display_size)
    disp_w, disp_h = mapping.display_size
    # "Over" compositing with premultiplied colour: each fill covers what is under it by its weight, the
    # same sequence of blends `render_frame` applies to the frame itself.
    color_sum = np.zeros((disp_h, disp_w, 3), np.float32)  # premultiplied
    cover = np.zeros((disp_h, disp_w), np.float32)
    fills = _mask_fills(masks, colors, selected, mapping, alpha, outline)
    for window, weight, color, _ in fills:
        color_sum[window] = (
            weight[..., None] * np.asarray(color, np.float32) + (1.0 - weight[..., None]) * color_sum[window]
        )
        cover[window] = weight + (1.0 - weight) * cover[window]
    for window, _, color, edge in fills:
        if edge is not None:
            color_sum[window][edge] = color
            cover[window][edge] = 1.0
    overlay = np.zeros((disp_h, disp_w, 4), np.uint8)
    shown = cover > 0
    overlay[shown, :3] = np.clip(color_sum[shown] / cover[shown, None] + 0.5, 0, 255).astype(np.uint8)
    overlay[..., 3] = np.clip(cover * 255.0 + 0.5, 0, 255).astype(np.uint8)
    markers = Image.new("RGBA", (disp_w, disp_h), (0, 0, 0, 0))
    _draw_prompts(ImageDraw.Draw(markers), points, boxes, colors, selected, mapping)
    return Layers(np.asarray(_resized(frame, mapping)), overlay, np.asarray(markers), mapping)


def marker_radius(mapping: DisplayMapping) -> int:
    """The radius (display pixels) of a point marker at this display size."""
    disp_w, disp_h = mapping.display_size
    return max(4, round(min(disp_w, disp_h) * 0.018))


def _resized(frame: np.ndarray, mapping: DisplayMapping) -> Image.Image:
    image = Image.fromarray(frame)
    if mapping.display_size != mapping.frame_size:
        # reducing_gap: an integer box reduction first (4x faster on 4K frames); pixel centres stay where
        # the plain resize, and so the mask coverage below, puts them.
        image = image.resize(mapping.display_size, Image.Resampling.BILINEAR, reducing_gap=1.0)
    return image


Fill = tuple[tuple[slice, slice], np.ndarray, RGB, "np.ndarray | None"]


def _mask_fills(
    masks: Mapping[int, np.ndarray],
    colors: Mapping[int, RGB],
    selected: int | None,
    mapping: DisplayMapping,
    alpha: float,
    outline: bool,
) -> list[Fill]:
    """Per object, in drawing order (the selected one last, on top): its display window, the fill weight
    there (h', w' float32), its colour and its outline pixels in the window (None without outlines)."""
    width, height = mapping.frame_size
    line = _line_width(mapping)
    fills: list[Fill] = []
    for oid in sorted(masks, key=lambda oid: (oid == selected, oid)):
        mask = np.asarray(masks[oid])
        if mask.shape != (height, width):
            raise ValueError(f"mask of object {oid} is {mask.shape}, the frame is {(height, width)}")
        emphasis = oid == selected
        window, cover = _coverage(mask.astype(bool, copy=False), mapping, margin=2 * line + 2)
        if window is None:
            continue
        weight = cover * min(1.0, alpha + 0.2 if emphasis else alpha)  # h', w'
        edge = _boundary(cover >= 0.5, line + 1 if emphasis else line) if outline else None
        fills.append((window, weight, _color(colors, oid), edge))
    return fills


def _line_width(mapping: DisplayMapping) -> int:
    # Sizes scale with the view so markers look the same in a thumbnail and a full-screen view.
    return max(1, round(min(mapping.display_size) / 400))


def _draw_prompts(
    draw: ImageDraw.ImageDraw,
    points: Sequence[PointMarker],
    boxes: Sequence[BoxMarker],
    colors: Mapping[int, RGB],
    selected: int | None,
    mapping: DisplayMapping,
) -> None:
    """Boxes, then points, each object's over the others' for the selected one."""
    radius = marker_radius(mapping)
    for oid, x0, y0, x1, y1 in sorted(boxes, key=lambda b: b[0] == selected):
        u0, v0 = mapping.to_display(x0, y0)
        u1, v1 = mapping.to_display(x1, y1)
        width_px = max(2, radius // 4) + (1 if oid == selected else 0)
        corners = [round(min(u0, u1)), round(min(v0, v1)), round(max(u0, u1)), round(max(v0, v1))]
        draw.rectangle(corners, outline=_color(colors, oid), width=width_px)
    for oid, x, y, positive in sorted(points, key=lambda p: p[0] == selected):
        r = round(radius * 1.25) if oid == selected else radius
        _draw_point(draw, mapping.to_display(x, y), r, _color(colors, oid), positive)


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    frame = np.asarray(rgb)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an H, W, 3 uint8 RGB frame, got shape {frame.shape} {frame.dtype}")
    return np.ascontiguousarray(frame)


def _color(colors: Mapping[int, RGB], oid: int) -> RGB:
    color = colors.get(oid)
    return tuple(int(c) for c in color) if color is not None else object_color(oid)


def _coverage(
    mask: np.ndarray, mapping: DisplayMapping, margin: int
) -> tuple[tuple[slice, slice] | None, np.ndarray]:
    """The display window around a mask and the fraction of each display pixel the mask covers there.

    Only the mask's bounding box (plus a margin for the resize filter and the outline) is resized, with PIL's
    own geometry (its ``box`` argument), so small objects on 4K frames stay cheap.
    Returns (rows, cols) slices of the display image and an h', w' float32 array in [0, 1], or None if empty.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None, np.zeros((0, 0), np.float32)
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    disp_w, disp_h = mapping.display_size
    sx, sy = mapping.scale_x, mapping.scale_y
    # Display window: the mask's pixel edges mapped to the display, grown by the margin.
    u0 = max(0, math.floor(cols[0] * sx) - margin)
    u1 = min(disp_w, math.ceil((cols[-1] + 1) * sx) + margin)
    v0 = max(0, math.floor(rows[0] * sy) - margin)
    v1 = min(disp_h, math.ceil((rows[-1] + 1) * sy) + margin)
    window = (slice(v0, v1), slice(u0, u1))
    if (sx, sy) == (1.0, 1.0):
        return window, mask[window].astype(np.float32)
    # Frame area under the window, plus the bilinear filter's reach (one source pixel per display pixel).
    reach_x, reach_y = math.ceil(1 / sx) + 1, math.ceil(1 / sy) + 1
    x0 = max(0, math.floor(u0 / sx) - reach_x)
    x1 = min(mapping.frame_size[0], math.ceil(u1 / sx) + reach_x)
    y0 = max(0, math.floor(v0 / sy) - reach_y)
    y1 = min(mapping.frame_size[1], math.ceil(v1 / sy) + reach_y)
    crop = Image.fromarray(mask[y0:y1, x0:x1].view(np.uint8) * np.uint8(255))
    box = (u0 / sx - x0, v0 / sy - y0, u1 / sx - x0, v1 / sy - y0)  # the window, in crop pixels
    small = crop.resize((u1 - u0, v1 - v0), Image.Resampling.BILINEAR, box=box)
    return window, np.asarray(small, dtype=np.float32) / 255.0


def _boundary(mask: np.ndarray, thickness: int) -> np.ndarray:
    """Pixels of ``mask`` within ``thickness`` steps (4-neighbourhood) of a pixel outside it.

    The array's own edge counts as inside, so a mask touching the image border is not outlined along it.
    """
    inner = mask
    for _ in range(thickness):
        padded = np.pad(inner, 1, mode="edge")
        inner = inner & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def _draw_point(draw: ImageDraw.ImageDraw, centre: tuple[float, float], r: int, color: RGB, positive: bool):
    u, v = round(centre[0]), round(centre[1])
    ring = max(1, r // 4) if positive else max(2, r // 3)
    draw.ellipse(
        [u - r, v - r, u + r, v + r], fill=color, outline=WHITE if positive else NEGATIVE_RING, width=ring
    )
    arm = max(1, round(r * 0.5))
    stroke = max(1, r // 4)
    draw.line([u - arm, v, u + arm, v], fill=WHITE, width=stroke)
    if positive:
        draw.line([u, v - arm, u, v + arm], fill=WHITE, width=stroke)
