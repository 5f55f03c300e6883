"""The one-line notebook entry point: ``sam2_ui.show(source, predictor)`` as the last line of a cell."""

from __future__ import annotations

from typing import Any

from .session import Session
from .widget import DEFAULT_DISPLAY, SegmentWidget


def show(
    source: Any,
    predictor: Any,
    display_size: tuple[int, int] = DEFAULT_DISPLAY,
    precision: str = "auto",
    **open_kwargs: Any,
) -> SegmentWidget:
    """Open ``source`` (a video, a folder of frames, an image, frames in memory, or an open `Session`) and
    return its widget; as the last line of a notebook cell it is displayed.

    ``predictor``: a ``SAM2VideoPredictor``, or a Hugging Face model id such as
    "facebook/sam2.1-hiera-tiny". ``precision``: "auto" (bf16 autocast where the device runs it fast, else
    fp32), "fp32" or "bf16"; the status line shows which runs (an open `Session` keeps its own). Other keyword
    arguments go to `Session.open` (``limits``, ``fps``).
    """
    if isinstance(predictor, str):
        from model import SAM2VideoPredictor

        predictor = SAM2VideoPredictor.from_pretrained(predictor)
    if isinstance(source, Session):
        session = source
    else:
        session = Session.open(source, predictor, precision=precision, **open_kwargs)
    return SegmentWidget(session, display_size=display_size)
