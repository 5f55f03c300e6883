"""What the notebook widget writes into its HTML and image controls: coloured messages, the status line, the
key help, PNG bytes, and switching Colab's widget manager on. Plain strings and bytes (no widget toolkit
here)."""

from __future__ import annotations

import html
import io
import sys

import numpy as np
from PIL import Image

from ..interaction.keys import KEY_HELP
from ..interaction.view import ERROR, WARNING

COLORS = {ERROR: "#c62828", WARNING: "#b26a00"}
INFO_COLOR = "#2e7d32"


def message_html(level: str, text: str) -> str:
    """One message in its level's colour (error red, warning amber, note green)."""
    return f"<span style='color:{COLORS.get(level, INFO_COLOR)}'>{html.escape(text)}</span>"


def status_html(status: str, precision: str) -> str:
    """The status line in bold, then how the network runs (`View.precision`) in grey."""
    line = f"<b>{html.escape(status)}</b>"
    if precision:
        line += f" <span style='color:#757575'>· {html.escape(precision)}</span>"
    return line


def keys_help_html() -> str:
    """The shared key map as a collapsed list."""
    keys = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in KEY_HELP)
    return (
        f"<details><summary>Keys (click the image first)</summary><ul style='margin:0'>{keys}</ul></details>"
    )


def png_bytes(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def enable_colab_widgets() -> None:
    """Colab draws third-party widgets (ipycanvas, ipyevents) only with its custom widget manager on."""
    if "google.colab" in sys.modules:
        from google.colab import output  # type: ignore[import-not-found]

        output.enable_custom_widget_manager()
