"""The one-line notebook entry point: ``sam2_ui.show(source, predictor)`` as the last line of a cell."""

from __future__ import annotations

from typing import Any

from ..engine.errors import SessionError
from ..interaction.commands import DEFAULT_DISPLAY
from ..session import Session
from .widget import SegmentWidget
from .widget_error import ErrorWidget


def show(
    source: Any,
    predictor: Any,
    display_size: tuple[int, int] = DEFAULT_DISPLAY,
    precision: str = "auto",
    **open_kwargs: Any,
) -> SegmentWidget | ErrorWidget:
    """Open ``source`` (a video, a folder of frames, an image, frames in memory, or an open `Session`) and
    return its widget; as the last line of a notebook cell it is displayed.

    ``predictor``: a ``SAM2VideoPredictor``, or a Hugging Face model id such as
    "facebook/sam2.1-hiera-tiny". ``precision``: "auto" (bf16 autocast where the device runs it fast, else
    fp32), "fp32" or "bf16"; the status line shows which runs (an open `Session` keeps its own). Other keyword
    arguments go to `Session.open` (``limits``, ``fps``).

    Never raises into the cell for media that cannot be read (a missing, empty, damaged or mislabelled file,
    an empty folder) or a model id or checkpoint that cannot be loaded: it returns an `ErrorWidget` whose
    status line says why and what to do, with the exception as ``widget.error`` (None on a `SegmentWidget`).
    """
    if isinstance(predictor, str):
        from model import ModelNotAvailableError, SAM2VideoPredictor

        try:
            predictor = SAM2VideoPredictor.from_pretrained(predictor)
        except (ModelNotAvailableError, ValueError) as error:  # ValueError: an unknown id, a bad checkpoint
            return ErrorWidget(error, f"Cannot load the model {predictor!r}: {error}")
    if isinstance(source, Session):
        session = source
    else:
        try:
            session = Session.open(source, predictor, precision=precision, **open_kwargs)
        except SessionError as error:
            return ErrorWidget(error)
    return SegmentWidget(session, display_size=display_size)
