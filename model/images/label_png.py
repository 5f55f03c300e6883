"""Label PNGs: annotation images whose pixel values are object ids, the one reader of them for video object
segmentation (``apps.vos``) and the training readers (``model.training.data``). Torch-free.

Accepted: palette ("P") PNGs, whose values are palette indices (DAVIS, MOSE, YouTube-VOS); grey-level PNGs
("L", 1-bit "1", 16-bit "I;16"/"I;16B", 32-bit "I"), whose values are the ids (per-object masks are often
stored that way). Ids must fit in one byte. Colour images are refused: their colours are not ids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

BYTE_MODES = ("1", "L", "P")
WIDE_MODES = ("I", "I;16", "I;16B")
READ_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)  # what Pillow raises

Palette = list[int]  # flat R, G, B, R, G, B, ... as PIL's getpalette() gives it


class LabelPngError(Exception):
    """A label PNG that cannot be used; the message names the file and says what is wrong.

    ``reason`` says which way, for callers that word it their own way: "missing", "unreadable", "colour"
    (not a label image; ``mode`` holds its mode) or "range" (values above 255).
    """

    def __init__(self, message: str, reason: str, mode: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.mode = mode


def read_label_png(path: Path) -> tuple[np.ndarray, Palette | None]:
    """An annotation PNG as ``H, W`` uint8 object ids and its palette (None for a non-palette PNG).

    Raises `LabelPngError` (missing, unreadable, a colour image, ids above 255).
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            mode = image.mode
            palette = image.getpalette() if mode == "P" else None
            values = np.array(image, dtype=np.uint8) if mode in BYTE_MODES else None
            if mode in WIDE_MODES:
                values = np.array(image)
    except FileNotFoundError:
        raise LabelPngError(f"mask {path} does not exist", "missing") from None
    except READ_ERRORS as error:
        raise LabelPngError(f"cannot read mask {path}: {error}", "unreadable") from error
    if values is None:
        raise LabelPngError(
            f"{path} is a {mode} image; masks must be palette (P) or grey-level PNGs whose values are "
            "object ids",
            "colour",
            mode,
        )
    if values.dtype != np.uint8:
        if values.size and (values.min() < 0 or values.max() > 255):
            raise LabelPngError(
                f"{path} holds values outside 0..255; object ids must fit in one byte", "range", mode
            )
        values = values.astype(np.uint8)
    return values, palette
