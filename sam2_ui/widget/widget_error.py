"""What ``sam2_ui.show`` returns when nothing can be opened (unreadable media, a model that cannot be
loaded): one red line saying why and what to do, instead of a traceback in the cell."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from ..interaction.view import ERROR
from .widget_text import message_html


class ErrorWidget:
    """A widget showing why ``sam2_ui.show`` could not open its media or model.

    Arguments:
      error: the exception that stopped it; kept as ``widget.error`` for code that wants it.
      message: the line shown (default: ``str(error)``, which for a `SessionError` says what to do).

    Like `SegmentWidget` it has ``status`` (the line), ``session`` (here always None), ``error`` and
    `close`, so code can test ``widget.error`` whatever ``show`` returned.
    """

    def __init__(self, error: Exception, message: str | None = None) -> None:
        self.error = error
        self.message = message or str(error)
        self.status = w.HTML(f"<b>{message_html(ERROR, self.message)}</b>")
        self.root = w.VBox([self.status])

    @property
    def session(self) -> None:
        """No session was opened."""
        return None

    def close(self) -> None:
        """Close the widgets."""
        self.status.close()
        self.root.close()

    def __repr__(self) -> str:
        return f"ErrorWidget({self.message!r})"

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.root._repr_mimebundle_(**kwargs)
