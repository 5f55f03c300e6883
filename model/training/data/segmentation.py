"""Object masks as COCO-style JSON writes them: RLE (compressed counts string, or a list of column-major
runs) or polygons, checked against the image size and decoded with our codec (`model.images.rle`).

Used by the SA-V, COCO and SA-1B readers. Torch-free.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from model.images.rle import coco_rle_to_mask, decompress_counts


def is_rle(segmentation: Any) -> bool:
    return isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation


def rle_counts(rle: dict[str, Any]) -> list[int]:
    """The run lengths of an RLE (column-major, starting with a run of background)."""
    counts = rle["counts"]
    return decompress_counts(counts) if isinstance(counts, (str, bytes)) else [int(c) for c in counts]


def rle_is_empty(rle: dict[str, Any]) -> bool:
    """Whether an RLE has no set pixel (read from its runs, without decoding the mask)."""
    return not any(count > 0 for count in rle_counts(rle)[1::2])


def segmentation_problem(segmentation: Any, height: int, width: int) -> str | None:
    """What is wrong with a mask written for an image of ``height`` x ``width``, or None when it is fine.

    Checks the form and the size field only (cheap); `decode_segmentation` checks the runs too.
    """
    if is_rle(segmentation):
        try:
            mask_height, mask_width = (int(s) for s in segmentation["size"])
        except (TypeError, ValueError):
            return f"its size field {segmentation['size']!r} is not [height, width]"
        if (mask_height, mask_width) != (height, width):
            return f"a mask is {mask_width}x{mask_height} but its image is {width}x{height}"
        if not isinstance(segmentation["counts"], (str, bytes, list)):
            return "its counts are neither a string nor a list"
        return None
    if isinstance(segmentation, list) and all(_is_polygon(p) for p in segmentation):
        return None
    return "a segmentation is neither an RLE ({size, counts}) nor a list of polygons"


def _is_polygon(polygon: Any) -> bool:
    return (
        isinstance(polygon, list)
        and len(polygon) >= 6
        and len(polygon) % 2 == 0
        and all(isinstance(v, (int, float)) for v in polygon)
    )


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """The H, W bool mask of an RLE or polygon segmentation. ValueError if it does not fit the image."""
    problem = segmentation_problem(segmentation, height, width)
    if problem is not None:
        raise ValueError(problem)
    if not is_rle(segmentation):
        return polygon_mask(segmentation, height, width)
    counts = rle_counts(segmentation)
    if sum(counts) != height * width or min(counts, default=0) < 0:
        raise ValueError(f"its runs cover {sum(counts)} pixels, not the {height}x{width} of the image")
    return coco_rle_to_mask({"size": [height, width], "counts": counts})


def polygon_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """H, W bool: the union of polygons given as flat ``[x0, y0, x1, y1, ...]`` lists in pixel units."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in polygons:
        draw.polygon([(float(x), float(y)) for x, y in zip(polygon[0::2], polygon[1::2])], fill=1)
    return np.asarray(canvas, dtype=bool)


def usable_annotations(annotations: list[Any], height: int, width: int) -> tuple[list[int], list[str]]:
    """Which of a COCO-style ``annotations`` list hold a usable, non-empty mask for a ``height`` x ``width``
    image: their places in the list, and what is wrong with each bad one.

    Empty masks (``area`` 0, as the official SA-1B reader drops them) are neither usable nor bad; without an
    ``area`` field an RLE's runs tell, and a polygon counts as non-empty.
    """
    usable, bad = [], []
    for index, annotation in enumerate(annotations):
        segmentation = annotation.get("segmentation") if isinstance(annotation, dict) else None
        problem = segmentation_problem(segmentation, height, width)
        if problem is not None:
            bad.append(f"annotation {index}: {problem}")
            continue
        area = annotation.get("area")
        try:
            empty = (
                area <= 0
                if isinstance(area, (int, float))
                else is_rle(segmentation) and rle_is_empty(segmentation)
            )
        except (TypeError, ValueError, IndexError):
            bad.append(f"annotation {index}: its RLE counts cannot be read")
            continue
        if not empty:
            usable.append(index)
    return usable, bad
