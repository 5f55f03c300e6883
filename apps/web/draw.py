"""A `View` drawn onto the page: ``draw`` returns ``{component: update}`` for the components of a `Layout`.

Nothing here decides anything; it only turns what the interaction layer returned into values the page's
components show (the frame as a JPEG data URL with what the pane's script needs, the object panel and the
timeline as data for their scripts, the status line with the run's progress).
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from sam2_ui.engine.colors import css_hex
from sam2_ui.interaction.timeline import SWATCH, render_timelines
from sam2_ui.interaction.view import INFO, View
from sam2_ui.output.memory_view import MemoryView, legend_html, render_memory_strip

from .layout import DOWNLOAD_ENABLED_BY, Layout
from .tab_state import TabState

TIMELINE_WIDTH = 960
TIMELINE_ROW_PX = 14
MEMORY_WIDTH = 960
JPEG_QUALITY = 88
NO_OBJECTS = "No objects yet: click on the frame (or press Add object, key a) to start one."


def image_data_url(image: np.ndarray, kind: str = "jpeg") -> str:
    """An H, W, 3 uint8 image as a data URL the browser shows without another request."""
    buffer = io.BytesIO()
    if kind == "jpeg":
        Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def frame_value(view: View, tab: TabState, examples: list[dict]) -> dict[str, Any]:
    """What the frame pane's script draws: the rendered frame, or the drop zone with the examples."""
    tab.version += 1
    if view.image is None:
        return {"image": None, "examples": examples, "version": tab.version}
    return {
        "image": image_data_url(view.image),
        "frame": view.frame,
        "num_frames": view.num_frames,
        "fps": view.fps,
        "tool": view.tool,
        "version": tab.version,
    }


def timeline_value(view: View) -> dict[str, Any]:
    """One labelled strip per object (its prompts, masks, stale and doubtful frames, the current frame)."""
    if view.num_frames < 2:
        return {"rows": [], "num_frames": view.num_frames, "frame": view.frame}
    rows = []
    for row in view.objects:
        strip = render_timelines([row], view.num_frames, view.frame, TIMELINE_WIDTH, TIMELINE_ROW_PX)
        rows.append(
            {
                "id": row.id,
                "name": row.name,
                "color": css_hex(row.color),
                "strip": image_data_url(strip[:, SWATCH:], "png"),  # the swatch is shown by the name
            }
        )
    return {"rows": rows, "num_frames": view.num_frames, "frame": view.frame}


def objects_value(view: View) -> dict[str, Any]:
    """The object panel: colour, key, name, selection, stale and doubtful counts per object."""
    rows = [
        {
            "id": row.id,
            "name": row.name,
            "key": row.key,
            "color": css_hex(row.color),
            "selected": row.selected,
            "stale": row.timeline.count("S"),
            "doubtful": row.timeline.count("D"),
        }
        for row in view.objects
    ]
    return {"rows": rows, "empty": NO_OBJECTS if view.num_frames else "Open a video or an image first."}


def status_html(view: View, recent_note: bool = False) -> str:
    """The status line: where the user is, the run's progress bar while tracking, and what just happened
    (``recent_note``: or else the latest note, e.g. how a run ended for the Stop that ended it)."""
    parts = [f"<div class='sam2-status-line'>{html.escape(view.status)}</div>"]
    progress = view.progress
    if progress is not None:
        percent = 100.0 * progress.fraction
        parts.append(
            "<div class='sam2-progress'><div class='sam2-progress-bar'>"
            f"<div style='width:{percent:.1f}%'></div></div>"
            f"<span>{progress.done} / {progress.total} frames, ~{progress.eta_s:.0f} s left</span></div>"
        )
    elif view.estimate:
        parts.append(f"<div class='sam2-status-note'>{html.escape(view.estimate)}</div>")
    news = [m.text for m in view.messages if m.level == INFO]
    if not news and recent_note:
        news = list(view.notes)
    if news:
        parts.append(f"<div class='sam2-status-note'>{html.escape(news[-1])}</div>")
    return "".join(parts)


def memory_html(memory: MemoryView | None, reason: str = "") -> str:
    """The memory panel: the strip of which frames the memory holds and the object score per frame."""
    if memory is None:
        return f"<div class='sam2-memory'>{html.escape(reason)}</div>"
    strip = image_data_url(render_memory_strip(memory, MEMORY_WIDTH), "png")
    return (
        f"<div class='sam2-memory'><img src='{strip}' alt='memory strip' style='width:100%;"
        f"image-rendering:pixelated'><div class='sam2-legend'>{legend_html()}</div>"
        f"<div>{html.escape(memory.describe())}</div></div>"
    )


def view_to_json(view: View, summary: dict | None = None) -> dict[str, Any]:
    """The JSON part of a view (everything but the image), as every API endpoint returns it.

    ``summary``: how the last tracking run ended (``/propagate``'s last update), or None.
    """
    return {
        "frame": view.frame,
        "num_frames": view.num_frames,
        "fps": view.fps,
        "is_image": view.is_image,
        "tool": view.tool,
        "pending_box": view.pending_box,
        "selected": view.selected,
        "objects": [
            {"id": r.id, "name": r.name, "color": list(r.color), "timeline": r.timeline, "key": r.key}
            for r in view.objects
        ],
        "status": view.status,
        "messages": [{"level": m.level, "text": m.text} for m in view.messages],
        "notes": list(view.notes),
        "enabled": dict(view.enabled),
        "estimate": view.estimate,
        "progress": None
        if view.progress is None
        else {"done": view.progress.done, "total": view.progress.total, "eta_s": view.progress.eta_s},
        "summary": summary,
        "stats": dict(view.stats),
        "precision": view.precision,
        "display_size": None if view.mapping is None else list(view.mapping.display_size),
    }


def draw(
    layout: Layout,
    view: View,
    tab: TabState,
    examples: list[dict],
    memory: str | None = None,
    slider: bool = True,
    recent_note: bool = False,
) -> dict[Any, Any]:
    """``{component: update}`` showing ``view``.

    ``slider``: False for the slider's own events (the page already shows where the user put the thumb;
    writing a value back would pull a moving thumb to where it was). The slider is also left alone when
    the frame it shows has not changed. ``memory``: the memory panel's HTML, or None to leave it as is.
    ``recent_note``: see `status_html`.
    """
    n = view.num_frames
    out: dict[Any, Any] = {
        layout.frame: frame_value(view, tab, examples),
        layout.timeline: timeline_value(view),
        layout.objects: objects_value(view),
        layout.status: status_html(view, recent_note),
        layout.view_json: view_to_json(view),
        layout.tool: gr.update(value=view.tool, interactive=n > 0),
    }
    if n != tab.num_frames or (slider and view.frame != tab.frame):
        out[layout.slider] = gr.update(minimum=0, maximum=max(1, n - 1), value=view.frame, interactive=n > 1)
    tab.frame, tab.num_frames = view.frame, n
    for command, button in layout.buttons.items():
        out[button] = gr.update(interactive=bool(view.enabled.get(command)))
    for kind, button in layout.downloads.items():
        out[button] = gr.update(interactive=bool(view.enabled.get(DOWNLOAD_ENABLED_BY[kind])))
    out[layout.play] = gr.update(interactive=n > 1)
    if memory is not None:
        out[layout.memory] = memory
    return out
