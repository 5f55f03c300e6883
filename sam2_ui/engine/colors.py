"""Object colours that stay with the object id, and the DAVIS palette of indexed PNG masks."""

from __future__ import annotations

import colorsys
from functools import lru_cache

RGB = tuple[int, int, int]

# Sasha Trubetskoy's "20 distinct colours" (white and black left out: they vanish on bright or dark frames),
# ordered so the first few objects get the most saturated, most different hues.
PALETTE: tuple[RGB, ...] = (
    (67, 99, 216),  # blue
    (245, 130, 49),  # orange
    (60, 180, 75),  # green
    (240, 50, 230),  # magenta
    (255, 225, 25),  # yellow
    (66, 212, 244),  # cyan
    (230, 25, 75),  # red
    (145, 30, 180),  # purple
    (191, 239, 69),  # lime
    (70, 153, 144),  # teal
    (250, 190, 212),  # pink
    (154, 99, 36),  # brown
    (220, 190, 255),  # lavender
    (128, 0, 0),  # maroon
    (170, 255, 195),  # mint
    (128, 128, 0),  # olive
    (255, 216, 177),  # apricot
    (0, 0, 117),  # navy
    (255, 250, 200),  # beige
    (169, 169, 169),  # grey
)

_GOLDEN = 0.618033988749895  # successive multiples mod 1 spread hues as evenly as any sequence can
# Beyond the palette, hue alone gets crowded (30 hues are 12 degrees apart), so alternate ids also alternate
# between a bright and a deep (saturation, value) level. The level pair and the starting hue were picked to
# keep the first 50 colours at least 30 RGB units from each other and from the palette.
_SV_LEVELS = ((0.85, 0.95), (1.00, 0.65))
_HUE0 = 0.63


def object_color(obj_id: int) -> RGB:
    """The display colour of object ``obj_id`` (>= 0): always the same for the same id, in any session.

    Ids below ``len(PALETTE)`` take the fixed palette; later ids walk the hue circle by the golden ratio.
    """
    if obj_id < 0:
        raise ValueError(f"object ids are >= 0, got {obj_id}")
    if obj_id < len(PALETTE):
        return PALETTE[obj_id]
    k = obj_id - len(PALETTE)
    hue = (_HUE0 + k * _GOLDEN) % 1.0
    sat, val = _SV_LEVELS[k % len(_SV_LEVELS)]
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return (round(r * 255), round(g * 255), round(b * 255))


@lru_cache(maxsize=1)
def css_hex(color: RGB) -> str:
    """``(r, g, b)`` as a CSS colour, ``"#rrggbb"``."""
    return "#{:02x}{:02x}{:02x}".format(*color)


def davis_palette() -> tuple[RGB, ...]:
    """The 256-entry DAVIS / PASCAL VOC palette: index 0 black, 1 (128, 0, 0), 2 (0, 128, 0), ...

    The usual rule: the bits of the index, taken three at a time from the lowest, fill r, g and b from their
    highest bit down.
    """
    colors = []
    for index in range(256):
        r = g = b = 0
        bits = index
        for shift in range(7, -1, -1):
            r |= (bits & 1) << shift
            g |= ((bits >> 1) & 1) << shift
            b |= ((bits >> 2) & 1) << shift
            bits >>= 3
        colors.append((r, g, b))
    return tuple(colors)


def davis_palette_flat() -> list[int]:
    """The DAVIS palette as the flat 768-int list ``PIL.Image.putpalette`` takes."""
    return [channel for color in davis_palette() for channel in color]
