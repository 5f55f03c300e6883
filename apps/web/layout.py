"""The page: a `Layout` of named components, built one panel at a time.

Video first: the frame pane fills the left of the page with the frame slider, playback, the track buttons,
the labelled timeline and the status line under it; the tool, the object panel and the edit buttons sit to
its right, with memory view, segment everything, downloads, session restore and the key sheet folded away
under them. At 1280 x 800 everything a person needs while working is in view without scrolling.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from sam2_ui.interaction.commands import TOOLS
from sam2_ui.interaction.keys import KEY_HELP

STATIC = Path(__file__).resolve().parent / "static"
TOOL_LABELS = {
    "positive": "+ point",
    "negative": "− point",
    "box": "□ box",
}
BUTTONS: dict[str, tuple[str, dict[str, Any]]] = {
    "prev_frame": ("◀", {"size": "sm"}),
    "next_frame": ("▶", {"size": "sm"}),
    "prev_doubtful": ("◀ doubtful", {"size": "sm"}),
    "next_doubtful": ("doubtful ▶", {"size": "sm"}),
    "propagate_backward": ("◀ Track back", {}),
    "propagate_both": ("Track ◀▶", {"variant": "primary"}),
    "propagate_forward": ("Track fwd ▶", {}),
    "stop": ("Stop", {"variant": "stop"}),
    "add_object": ("Add object", {"size": "sm"}),
    "undo": ("Undo", {"size": "sm"}),
    "redo": ("Redo", {"size": "sm"}),
    "clear_frame": ("Clear frame", {"size": "sm"}),
    "clear_object": ("Clear object", {"size": "sm"}),
    "reset": ("Reset", {"size": "sm", "variant": "stop"}),
    "segment_everything": ("Segment everything", {"size": "sm"}),
}
"""Command name -> (label, button options): every command that has a button (ids ``cmd-<command>``)."""
BUTTON_COMMANDS = tuple(BUTTONS)
DOWNLOADS = {
    "pngs": "PNG masks (zip)",
    "davis": "DAVIS PNGs (zip)",
    "coco": "COCO RLE JSON",
    "video": "Overlay MP4",
    "session": "Session JSON",
}
DOWNLOAD_ENABLED_BY = {kind: "save" if kind == "session" else "export" for kind in DOWNLOADS}
UPLOAD_TYPES = None  # any file: what cannot be opened is refused with a message, never dropped silently


@dataclass
class Layout:
    """Every component a handler reads or draws, by name (``buttons``: command name -> button)."""

    frame: gr.HTML
    upload: gr.File
    slider: gr.Slider
    play: gr.Button
    timeline: gr.HTML
    status: gr.HTML
    tool: gr.Radio
    objects: gr.HTML
    memory_panel: gr.Accordion
    memory: gr.HTML
    points_per_side: gr.Slider
    downloads: dict[str, gr.Button]
    download: gr.File
    session_file: gr.File
    session_media: gr.File
    restore: gr.Button
    view_json: gr.JSON
    buttons: dict[str, gr.Button] = field(default_factory=dict)


def script(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def build_layout(header: str, empty_frame: dict, enabled: dict[str, bool]) -> Layout:
    """The page's components inside the current ``gr.Blocks`` (``enabled``: the empty view's commands, so
    no button that needs media is enabled before there is any)."""
    buttons: dict[str, gr.Button] = {}
    gr.Markdown(header, elem_id="sam2-header")
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=560):
            frame = _frame_pane(empty_frame)
            slider, play = _transport(buttons, enabled)
            _track_bar(buttons, enabled)
            timeline = gr.HTML(
                {"rows": []}, html_template="", js_on_load=script("timeline.js"), elem_id="sam2-timeline"
            )
            status = gr.HTML("Open a video or an image to start.", elem_id="sam2-status")
            memory_panel, memory = _memory_panel()
        with gr.Column(scale=2, min_width=300):
            upload = gr.File(
                label="Open a video or an image",
                file_types=UPLOAD_TYPES,
                type="filepath",
                elem_id="sam2-upload",
                height=90,
            )
            tool, objects = _object_panel(buttons, enabled)
            points_per_side = _everything_panel(buttons, enabled)
            downloads, download = _downloads_panel(enabled)
            session_file, session_media, restore = _restore_panel()
            _keys_panel()
    view_json = gr.JSON(visible=False)
    return Layout(
        frame=frame,
        upload=upload,
        slider=slider,
        play=play,
        timeline=timeline,
        status=status,
        tool=tool,
        objects=objects,
        memory_panel=memory_panel,
        memory=memory,
        points_per_side=points_per_side,
        downloads=downloads,
        download=download,
        session_file=session_file,
        session_media=session_media,
        restore=restore,
        view_json=view_json,
        buttons=buttons,
    )


def _button(buttons: dict[str, gr.Button], command: str, enabled: dict[str, bool], **kwargs: Any) -> None:
    label, options = BUTTONS[command]
    buttons[command] = gr.Button(
        label, elem_id=f"cmd-{command}", interactive=bool(enabled.get(command)), **options, **kwargs
    )


def _frame_pane(empty_frame: dict) -> gr.HTML:
    return gr.HTML(empty_frame, html_template="", js_on_load=script("frame.js"), elem_id="sam2-frame")


def _transport(buttons: dict[str, gr.Button], enabled: dict[str, bool]) -> tuple[gr.Slider, gr.Button]:
    with gr.Row(elem_id="sam2-transport"):
        play = gr.Button("▶ Play", size="sm", elem_id="cmd-play", interactive=False, min_width=70)
        _button(buttons, "prev_frame", enabled, min_width=40)
        slider = gr.Slider(
            0, 1, value=0, step=1, show_label=False, interactive=False, scale=8, elem_id="sam2-slider"
        )
        _button(buttons, "next_frame", enabled, min_width=40)
    return slider, play


def _track_bar(buttons: dict[str, gr.Button], enabled: dict[str, bool]) -> None:
    with gr.Row(elem_id="sam2-track-bar"):
        for command in ("propagate_backward", "propagate_both", "propagate_forward", "stop"):
            _button(buttons, command, enabled)
        for command in ("prev_doubtful", "next_doubtful"):
            _button(buttons, command, enabled, elem_classes=["sam2-small"])


def _object_panel(buttons: dict[str, gr.Button], enabled: dict[str, bool]) -> tuple[gr.Radio, gr.HTML]:
    tool = gr.Radio(
        [(TOOL_LABELS[t], t) for t in TOOLS],
        value="positive",
        label="Tool (p / n / b; drag for a box, right-click for − point)",
        elem_id="sam2-tool",
        interactive=False,
    )
    objects = gr.HTML(
        {"rows": [], "empty": "Open a video or an image first: the objects you click appear here."},
        html_template="",
        js_on_load=script("objects.js"),
        elem_id="sam2-objects",
        label="Objects",
    )
    with gr.Row():
        _button(buttons, "add_object", enabled)
        _button(buttons, "clear_object", enabled)
    with gr.Row():
        for command in ("undo", "redo", "clear_frame", "reset"):
            _button(buttons, command, enabled, min_width=60)
    return tool, objects


def _memory_panel() -> tuple[gr.Accordion, gr.HTML]:
    with gr.Accordion("Memory view", open=False) as panel:
        memory = gr.HTML(
            "Open the panel on a tracked video to see which frames the memory holds.", elem_id="sam2-memory"
        )
    return panel, memory


def _everything_panel(buttons: dict[str, gr.Button], enabled: dict[str, bool]) -> gr.Slider:
    with gr.Accordion("Segment everything", open=False):
        points_per_side = gr.Slider(4, 32, value=16, step=1, label="Points per side")
        _button(buttons, "segment_everything", enabled)
    return points_per_side


def _downloads_panel(enabled: dict[str, bool]) -> tuple[dict[str, gr.Button], gr.File]:
    with gr.Accordion("Download", open=False):
        with gr.Row():
            downloads = {
                kind: gr.Button(
                    label,
                    size="sm",
                    elem_id=f"dl-{kind}",
                    interactive=bool(enabled.get(DOWNLOAD_ENABLED_BY[kind])),
                )
                for kind, label in DOWNLOADS.items()
            }
        download = gr.File(label="Download", interactive=False, elem_id="sam2-download")
    return downloads, download


def _restore_panel() -> tuple[gr.File, gr.File, gr.Button]:
    with gr.Accordion("Restore a saved session", open=False):
        session_file = gr.File(label="Session JSON", type="filepath", elem_id="sam2-session-file")
        session_media = gr.File(label="Its video or image", type="filepath", elem_id="sam2-session-media")
        restore = gr.Button("Restore", elem_id="cmd-restore")
    return session_file, session_media, restore


def _keys_panel() -> None:
    with gr.Accordion("Keys (press ?)", open=False):
        gr.HTML(key_sheet_html())
    gr.HTML(
        key_sheet_html() + "<p><small>Press <code>?</code> or Esc to close.</small></p>", elem_id="sam2-keys"
    )


WEB_KEYS = (("Space", "play / pause the result"), ("?", "show or hide this sheet"))


def key_sheet_html() -> str:
    """The shared key map (`keys.KEY_HELP`) and the page's own keys, as a table."""
    rows = "".join(
        f"<tr><td><code>{html.escape(keys)}</code></td><td>{html.escape(what)}</td></tr>"
        for keys, what in (*KEY_HELP, *WEB_KEYS)
    )
    return f"<table class='sam2-key-table'><tr><th>Key</th><th>Does</th></tr>{rows}</table>"
