"""Per-object timeline strips drawn as one image: where each object has prompts, masks, stale and doubtful
masks, and where the current frame is.

One row per object: a swatch of its colour, then one column per frame (frames share a column when the video
has more frames than the strip has pixels; the column then shows the most important code among them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .view import DOUBTFUL, MASKED, NOTHING, PROMPTED, STALE, TIMELINE_CODES, ObjectRow

BACKGROUND = (38, 38, 38)
EMPTY_CELL = (70, 70, 70)
STALE_CELL = (150, 150, 150)
DOUBTFUL_CELL = (255, 170, 0)
CURSOR = (255, 255, 255)
SWATCH = 14  # pixels at the left of each row


def timeline_columns(timeline: str, columns: int) -> str:
    """``timeline`` squeezed (or stretched) to ``columns`` codes; a column shows its most important code."""
    n = len(timeline)
    if n == 0 or columns < 1:
        return ""
    rank = {code: i for i, code in enumerate(TIMELINE_CODES)}
    out = []
    for c in range(columns):
        lo = c * n // columns
        hi = max(lo + 1, (c + 1) * n // columns)
        out.append(min(timeline[lo:hi], key=rank.__getitem__))
    return "".join(out)


def frame_at(x: float, width: int, num_frames: int) -> int:
    """The frame under pixel column ``x`` of a strip image ``width`` pixels wide (swatch included)."""
    cells = max(1, width - SWATCH)
    return int(np.clip((x - SWATCH) * num_frames // cells, 0, max(0, num_frames - 1)))


def render_timelines(
    rows: Sequence[ObjectRow], num_frames: int, current: int, width: int = 800, row_height: int = 12
) -> np.ndarray:
    """An H, W, 3 uint8 image: one strip per object (selected object's strip outlined), current frame marked.

    Colours: prompt = the object's colour with a white top edge; mask = the object's colour, dimmed; stale =
    grey; doubtful = amber; nothing = dark grey.
    """
    gap = 2
    height = max(1, len(rows)) * (row_height + gap) + gap
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BACKGROUND
    cells = max(1, width - SWATCH)
    for r, row in enumerate(rows):
        top = gap + r * (row_height + gap)
        band = image[top : top + row_height]
        band[:, 1 : SWATCH - 2] = row.color
        codes = timeline_columns(row.timeline, cells)
        color = np.asarray(row.color, np.float32)
        palette = {
            PROMPTED: row.color,
            MASKED: tuple(int(v) for v in color * 0.6 + 20),
            STALE: STALE_CELL,
            DOUBTFUL: DOUBTFUL_CELL,
            NOTHING: EMPTY_CELL,
        }
        strip = band[:, SWATCH:]
        for code, rgb in palette.items():
            strip[:, np.frombuffer(codes.encode(), np.uint8) == ord(code)] = rgb
        prompted = np.frombuffer(codes.encode(), np.uint8) == ord(PROMPTED)
        strip[:2, prompted] = (255, 255, 255)
        if row.selected:
            image[top - 1, SWATCH - 1 :] = CURSOR
            image[top + row_height, SWATCH - 1 :] = CURSOR
    if num_frames > 0:
        u = SWATCH + min(cells - 1, current * cells // num_frames)
        image[:, u] = CURSOR
    return image
