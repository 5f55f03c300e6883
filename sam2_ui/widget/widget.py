"""The Jupyter front end (the only module importing ipycanvas and ipywidgets): `SegmentWidget`, made by
``sam2_ui.show(source, predictor)``; ``widget.session`` is the live Session, ``widget.refresh()`` redraws it.

It decides nothing: events become `Interaction` calls and it draws the `View` each returns. A `MultiCanvas`
has three layers redrawn only when they change: frame (JPEG), masks (RGBA, lossless PNG), markers (RGBA).
Positions arrive in canvas-buffer pixels, so CSS may scale the canvas to the cell; ipyevents, where present,
adds right and shift clicks. Tracking runs on a background thread (callbacks do not run while a cell
executes), and every callback turns an unexpected error into a status-line message.
"""

from __future__ import annotations

import functools
import html
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ipywidgets as w
import numpy as np
from ipycanvas import MultiCanvas, hold_canvas

from ..engine.colors import css_hex
from ..engine.errors import SessionError
from ..interaction.commands import BOX, DEFAULT_DISPLAY, DIRECTIONS, EXPORT_KINDS, NEGATIVE, POSITIVE
from ..interaction.interaction import Interaction
from ..interaction.keys import command_for_key
from ..interaction.timeline import frame_at, render_timelines
from ..interaction.view import ERROR, INFO, View
from ..output.memory_view import legend_html, render_memory_strip
from ..output.render import DisplayMapping
from ..session import Session
from .background import BackgroundRun
from .widget_text import enable_colab_widgets, keys_help_html, message_html, png_bytes, status_html

try:  # optional: mouse buttons and modifier keys (ipycanvas events carry neither)
    from ipyevents import Event as DomEvent
except ImportError:  # pragma: no cover - exercised only where ipyevents is missing
    DomEvent = None

FRAME_LAYER, MASK_LAYER, MARKER_LAYER = 0, 1, 2
DRAG_MIN_PX = 6.0  # a press that moves less than this (canvas pixels) is a click, more is a box drag
MESSAGE_LINES = 3  # the message log shows this many of the latest messages
STREAM_INTERVAL_S = 0.1  # during tracking, draw a tracked frame at most this often
_DRAW_LOCK = threading.RLock()  # ipycanvas batches commands in one global manager: one drawer at a time
_STREAMING_COMMANDS = {f"propagate_{d}": d for d in DIRECTIONS}


class SegmentWidget:
    """An interactive segmentation widget for one `Session`.

    Arguments:
      session: the open session to work on (`Session.open`); the widget keeps no state of its own besides
        what it shows, so code may edit ``widget.session`` between clicks (then call `refresh`).
      display_size: (max width, max height) of the canvas buffer; the canvas is scaled down further to the
        cell width by the browser and clicks are mapped back to frame pixels.
      export_dir: where the export buttons write.
      stream_interval_s: during tracking, how often (at most) a tracked frame is drawn.
    """

    def __init__(
        self,
        session: Session,
        display_size: tuple[int, int] = DEFAULT_DISPLAY,
        export_dir: str | Path = "sam2_exports",
        stream_interval_s: float = STREAM_INTERVAL_S,
    ) -> None:
        self.ui = Interaction(session.predictor, display_size=display_size, layered=True)
        self.export_dir = Path(export_dir)
        self.stream_interval_s = stream_interval_s
        self._press: tuple[float, float] | None = None  # canvas pixels where the mouse went down
        self._negative_press = False  # the last mousedown (ipyevents) was a right click or shift-click
        self._last_band = 0.0
        self._drawn_frame: tuple | None = None  # (session id, frame, size) on the frame layer
        self._last_view: View | None = None
        self._updating = False  # set while the widget moves its own controls (their observers skip)
        self._runs = BackgroundRun("sam2-ui-track")
        self._message_log: deque[str] = deque(maxlen=MESSAGE_LINES)
        self._object_rows: list[tuple] | None = None  # what the object buttons show
        self.last_traceback = ""  # of the last unexpected error turned into a message
        self.error: Exception | None = None  # as on the `ErrorWidget` that `show` returns when opening fails
        enable_colab_widgets()
        self._build(DisplayMapping.fit(session.size, display_size).display_size)
        self._show(lambda: self.ui.attach(session))

    # ============================================================================================ public
    @property
    def session(self) -> Session | None:
        """The live `Session` the widget draws (None after `close`)."""
        return self.ui.session

    @property
    def frame(self) -> int:
        """The frame shown."""
        return self.ui.frame

    def refresh(self) -> View:
        """Redraw everything from the session (after editing it in code, or when the page was reloaded)."""
        self._drawn_frame = None
        return self._show(self.ui.view)

    def go_to(self, frame: int) -> View:
        """Show ``frame``."""
        return self._show(lambda: self.ui.go_to(frame))

    def track(self, direction: str = "both") -> threading.Thread | None:
        """Start tracking from the frame shown, in the background; returns the thread (None if refused)."""
        return self._start_tracking(direction)

    def stop(self, wait_s: float = 0.0) -> View:
        """Stop a tracking run (its frames so far are kept)."""
        return self._show(lambda: self.ui.stop(wait_s=wait_s))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a tracking run to end; True if none is running any more."""
        return self._runs.wait(timeout)

    @property
    def _thread(self) -> threading.Thread | None:
        return self._runs.thread

    def close(self) -> None:
        """Stop any run, release the session and close the widgets."""
        self.ui.close()
        self.wait(5.0)
        for widget in [*self.dom_events, *_descendants(self.root)]:
            widget.close()

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.root._repr_mimebundle_(**kwargs)

    # ============================================================================================ layout
    def _build(self, canvas_size: tuple[int, int]) -> None:
        width, height = canvas_size
        self._build_canvas(width, height)
        self._build_controls()
        self._build_panels(width)
        self._lay_out()

    def _build_canvas(self, width: int, height: int) -> None:
        """The three-layer canvas (frame, masks, markers) and its mouse, key and DOM events."""
        self.canvas = MultiCanvas(3, width=width, height=height)
        self.canvas.layout = w.Layout(width="100%", max_width=f"{width}px", height="auto")
        self.canvas.on_mouse_down(self._guard(self._on_mouse_down))
        self.canvas.on_mouse_move(self._guard(self._on_mouse_move))
        self.canvas.on_mouse_up(self._guard(self._on_mouse_up))
        self.canvas.on_mouse_out(self._guard(self._on_mouse_out))
        self.canvas.on_key_down(self._guard(self._on_key_down))
        self.canvas.on_client_ready(self._guard(self.refresh))
        self.dom_events: list[Any] = []
        if DomEvent is not None:
            # Two listeners: the context menu is suppressed; the mousedown keeps its default (focus).
            buttons = DomEvent(source=self.canvas, watched_events=["mousedown"])
            buttons.on_dom_event(self._guard(self._on_dom_mousedown))
            menu = DomEvent(source=self.canvas, watched_events=["contextmenu"], prevent_default_action=True)
            self.dom_events = [buttons, menu]

    def _build_controls(self) -> None:
        """The tool picker, the buttons and the object name box."""
        button = functools.partial(w.Button, layout=w.Layout(width="auto"))
        self.tool = w.ToggleButtons(
            options=[("+ point", POSITIVE), ("- point", NEGATIVE), ("box", BOX)],
            value=POSITIVE,
            tooltips=["positive point (p)", "negative point (n, or right/shift click)", "box: drag (b)"],
            style={"button_width": "70px"},
        )
        self.tool.observe(self._guard(self._on_tool), names="value")
        self.buttons: dict[str, w.Button] = {
            "undo": button(description="Undo", icon="undo", tooltip="z"),
            "redo": button(description="Redo", icon="repeat", tooltip="y"),
            "clear_frame": button(description="Clear frame", tooltip="c: this frame's prompts"),
            "clear_object": button(description="Clear object", tooltip="the selected object's prompts"),
            "reset": button(description="Reset", tooltip="every prompt and mask"),
            "add_object": button(description="Add object", icon="plus", tooltip="a"),
            "rename_object": button(description="Rename"),
            "remove_object": button(description="Remove", icon="trash"),
            "propagate_backward": button(description="Track back", icon="backward", tooltip="r"),
            "propagate_both": button(description="Track both", icon="arrows-h", tooltip="t"),
            "propagate_forward": button(description="Track forward", icon="forward", tooltip="f"),
            "stop": button(description="Stop", icon="stop", button_style="danger", tooltip="Esc"),
            "segment_everything": button(description="Segment everything", icon="th"),
            "export": button(description="Export", icon="download"),
            "save": button(description="Save session", icon="save"),
        }
        for name, btn in self.buttons.items():
            btn.on_click(self._guard(functools.partial(self._on_button, name)))
        self.name = w.Text(placeholder="object name", layout=w.Layout(width="160px"))
        self.objects = w.HBox(layout=w.Layout(flex_flow="row wrap"))

    def _build_panels(self, width: int) -> None:
        """The export choice, the frame slider, progress, timelines, status, messages and the memory view."""
        self.export_kind = w.Dropdown(
            options=list(EXPORT_KINDS), value="pngs", layout=w.Layout(width="110px")
        )
        self.slider = w.IntSlider(min=0, max=0, description="Frame", continuous_update=True)
        self.slider.layout = w.Layout(width="100%", max_width=f"{width}px")
        self.slider.observe(self._guard(self._on_slider), names="value")
        self.progress = w.IntProgress(min=0, max=1, value=0, description="Tracking")
        self.eta = w.HTML(layout=w.Layout(flex="1 1 0"))  # wraps, where a Label would cut the estimate
        self.timelines = w.Image(format="png", layout=w.Layout(width="100%", max_width=f"{width}px"))
        if DomEvent is not None:
            jump = DomEvent(source=self.timelines, watched_events=["click"])
            jump.on_dom_event(self._guard(self._on_timeline_click))
            self.dom_events.append(jump)
        self.status = w.HTML()
        self.messages = w.HTML()
        self.show_memory = w.Checkbox(value=True, description="Memory view", indent=False)
        self.show_memory.observe(self._guard(lambda _: self.refresh()), names="value")
        self.memory_strip = w.Image(format="png", layout=w.Layout(width="100%", max_width=f"{width}px"))
        self.memory_text = w.HTML()
        self.memory_box = w.VBox([self.memory_strip, w.HTML(legend_html()), self.memory_text])

    def _lay_out(self) -> None:
        """The widget's rows, top to bottom."""
        help_text = w.HTML(keys_help_html())
        b = self.buttons
        self.root = w.VBox(
            [
                w.HBox([self.tool, b["undo"], b["redo"], b["clear_frame"], b["clear_object"], b["reset"]]),
                w.HBox([b["add_object"], self.name, b["rename_object"], b["remove_object"], self.objects]),
                self.canvas,
                self.slider,
                self.timelines,
                w.HBox([b["propagate_backward"], b["propagate_both"], b["propagate_forward"], b["stop"]]),
                w.HBox([self.progress, self.eta]),
                w.HBox([b["segment_everything"], self.export_kind, b["export"], b["save"]]),
                self.status,
                self.messages,
                self.show_memory,
                self.memory_box,
                help_text,
            ]
        )

    # ============================================================================================ events
    def _guard(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """A callback that never raises into the notebook: an unexpected error becomes a message."""

        @functools.wraps(handler)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - a widget callback must not raise
                self._say(ERROR, f"Unexpected error: {error!r}. The session keeps what it had.")
                self.last_traceback = traceback.format_exc()
                return None

        return guarded

    def _canvas_size(self) -> tuple[int, int]:
        return int(self.canvas.width), int(self.canvas.height)

    def _on_mouse_down(self, x: float, y: float) -> None:
        self._press = (x, y)

    def _on_mouse_move(self, x: float, y: float) -> None:
        press = self._press
        if press is None or time.monotonic() - self._last_band < 0.03:
            return
        if self.ui.tool != BOX and np.hypot(x - press[0], y - press[1]) < DRAG_MIN_PX:
            return  # a point tool's press is a click until it moves this far; then it is a box drag
        self._last_band = time.monotonic()
        view = self._last_view
        with _DRAW_LOCK, hold_canvas():
            layer = self.canvas[MARKER_LAYER]
            layer.clear()
            if view is not None and view.layers is not None:
                layer.put_image_data(view.layers.markers, 0, 0)
            layer.stroke_style = "white"
            layer.line_width = 2
            layer.stroke_rect(min(press[0], x), min(press[1], y), abs(x - press[0]), abs(y - press[1]))

    def _on_mouse_up(self, x: float, y: float) -> None:
        press, self._press = self._press, None
        negative, self._negative_press = self._negative_press, False
        if press is None:
            return
        size = self._canvas_size()
        # ipycanvas reports positions with 0 at the left edge of the first pixel; the mapping wants indices.
        x0, y0 = press[0] - 0.5, press[1] - 0.5
        if np.hypot(x - press[0], y - press[1]) >= DRAG_MIN_PX:
            self._show(lambda: self.ui.drag(x0, y0, x - 0.5, y - 0.5, display_size=size))
        else:
            self._show(lambda: self.ui.click(x0, y0, display_size=size, negative=negative))

    def _on_mouse_out(self, x: float, y: float) -> None:
        if self._press is not None:  # a drag that left the canvas is dropped
            self._press = None
            self._show(lambda: self.ui.view())

    def _on_dom_mousedown(self, event: dict) -> None:
        self._negative_press = event.get("button") == 2 or bool(event.get("shiftKey"))

    def _on_timeline_click(self, event: dict) -> None:
        view = self._last_view
        x = event.get("dataX")
        if view is None or x is None or not view.num_frames:
            return
        width = self._canvas_size()[0]
        self.go_to(frame_at(float(x), width, view.num_frames))

    def _on_key_down(self, key: str, shift: bool, ctrl: bool, meta: bool) -> None:
        name = command_for_key(key, ctrl=ctrl, shift=shift, meta=meta)
        if name in _STREAMING_COMMANDS or name == "stop":
            self._on_button(name)
        else:
            self._show(lambda: self.ui.key(key, ctrl=ctrl, shift=shift, meta=meta))

    def _on_tool(self, change: dict) -> None:
        if not self._updating:
            self._show(lambda: self.ui.set_tool(change["new"]))

    def _on_slider(self, change: dict) -> None:
        if not self._updating:
            self._show(lambda: self.ui.go_to(change["new"]))

    def _on_object(self, obj: int, _button: Any = None) -> None:
        self._show(lambda: self.ui.select_object(obj))

    def _on_button(self, name: str, _button: Any = None) -> None:
        if name in _STREAMING_COMMANDS:
            self._start_tracking(_STREAMING_COMMANDS[name])
        elif name == "stop":
            self._show(lambda: self.ui.stop())
        elif name == "add_object":
            self._show(lambda: self.ui.add_object(self.name.value.strip() or None))
            self.name.value = ""
        elif name == "rename_object":
            self._show(lambda: self.ui.rename_object(None, self.name.value))
            self.name.value = ""
        elif name in ("export", "save"):
            kind = "session" if name == "save" else self.export_kind.value
            before = self.ui.last_export
            self._show(lambda: self.ui.command("export", kind=kind, out_dir=self.export_dir))
            if self.ui.last_export is not None and self.ui.last_export != before:
                self._say(INFO, f"Saved to {self.ui.last_export.resolve()}")
        else:
            self._show(lambda: self.ui.command(name))

    # ============================================================================================ tracking
    def _start_tracking(self, direction: str) -> threading.Thread | None:
        if self._runs.running:
            self._say(ERROR, "Tracking is already running: Stop it first.")
            return None
        session = self.session
        before = session.last_propagation if session is not None else None
        views = self.ui.propagate(direction, min_interval_s=self.stream_interval_s, announce=True)
        # The run's first view is drawn here, before any frame is tracked: Stop on, progress at 0 of it.
        self._show(lambda: next(views))
        thread = self._runs.start(functools.partial(self._track, views, before))
        if thread is None:  # pragma: no cover - only this thread starts runs
            views.close()
        return thread

    def _track(self, views: Iterator[View], before: Any) -> None:
        """The background run: each view it yields is drawn (the kernel's thread stays free for Stop)."""
        try:
            for view in views:
                self._show(view)
            self._show(self.ui.view)  # drawn last: no view built during the run is drawn after it
            summary = self.session.last_propagation if self.session is not None else None
            if summary is not None and summary is not before and summary.total:
                # The last preview may be a few frames behind the run's end.
                self.progress.max, self.progress.value = summary.total, summary.done
        except Exception as error:  # noqa: BLE001 - a background thread has nobody to raise to
            self._say(ERROR, f"Tracking failed: {error!r}. The frames tracked so far are kept.")
            self.last_traceback = traceback.format_exc()

    # ============================================================================================ drawing
    def _show(self, view: View | Callable[[], View]) -> View:
        """Draw a view: the canvas layers that changed, then the controls. Given a function, the view is
        built under the drawing lock, so views from two threads are drawn in the order they were built."""
        with _DRAW_LOCK:
            if callable(view):
                view = view()
            self._last_view = view
            self._draw_canvas(view)
            self._draw_controls(view)
        return view

    def _draw_canvas(self, view: View) -> None:
        layers = view.layers
        if layers is None:  # no media, or the frame could not be drawn: keep what is shown
            return
        width, height = layers.mapping.display_size
        frame_key = (id(self.ui.session), view.frame, (width, height))
        resize = self._canvas_size() != (width, height)
        with hold_canvas():
            if resize:
                self.canvas.width, self.canvas.height = width, height  # clears every layer
                self.canvas.layout.max_width = f"{width}px"
            if resize or frame_key != self._drawn_frame:
                self.canvas[FRAME_LAYER].put_image_data(layers.frame, 0, 0)
                self._drawn_frame = frame_key
            for index, image in ((MASK_LAYER, layers.masks), (MARKER_LAYER, layers.markers)):
                self.canvas[index].clear()
                self.canvas[index].put_image_data(image, 0, 0)

    def _draw_controls(self, view: View) -> None:
        self._updating = True
        try:
            enabled = view.enabled
            for name, btn in self.buttons.items():
                btn.disabled = not enabled.get(name, False)
            if self.tool.value != view.tool:
                self.tool.value = view.tool
            self.slider.max = max(0, view.num_frames - 1)
            if self.slider.value != view.frame:
                self.slider.value = view.frame
            self.slider.disabled = view.num_frames <= 1
            self._draw_objects(view)
            progress = view.progress
            if progress is not None:
                self.progress.max = max(1, progress.total)
                self.progress.value = progress.done
                left = (
                    f", about {progress.eta_s:.0f} s left"
                    if progress.done or progress.eta_s
                    else ", starting"
                )
                self.eta.value = f"{progress.done}/{progress.total} frames{left}"
            else:
                self.eta.value = html.escape(view.estimate)
            width = self._canvas_size()[0]
            if view.objects and view.num_frames:
                strips = render_timelines(view.objects, view.num_frames, view.frame, width)
                self.timelines.value = png_bytes(strips)
            self.status.value = status_html(view.status, view.precision)
            for message in view.messages:
                self._say(message.level, message.text)
            self._draw_memory(view, width)
        finally:
            self._updating = False

    def _draw_objects(self, view: View) -> None:
        rows = [(r.id, r.name, r.color, r.selected, r.key) for r in view.objects]
        if self._object_rows == rows:
            return
        buttons = []
        for obj, name, color, selected, key in rows:
            label = f"{key}. {name}" if key else name
            btn = w.Button(
                description=label,
                tooltip=f"select {name}" + (f" ({key})" if key else ""),
                icon="check" if selected else "",
                layout=w.Layout(width="auto", border="3px solid black" if selected else ""),
            )
            btn.style.button_color = css_hex(color)
            btn.on_click(self._guard(functools.partial(self._on_object, obj)))
            buttons.append(btn)
        self.objects.children = buttons
        self._object_rows = rows

    def _draw_memory(self, view: View, width: int) -> None:
        self.memory_box.layout.display = "" if self.show_memory.value else "none"
        session = self.ui.session
        if not self.show_memory.value or session is None or view.selected is None or view.is_image:
            self.memory_text.value = "" if view.is_image else "Select an object to see its memory."
            return
        try:
            memory = session.memory_view(view.frame, view.selected)
        except SessionError as error:
            self.memory_text.value = html.escape(str(error))
            return
        self.memory_strip.value = png_bytes(render_memory_strip(memory, width))
        self.memory_text.value = html.escape(memory.describe())

    def _say(self, level: str, text: str) -> None:
        """Add a line to the message log (the last `MESSAGE_LINES` are shown)."""
        self._message_log.append(message_html(level, text))
        self.messages.value = "<br>".join(self._message_log)


def _descendants(widget: w.Widget) -> list[w.Widget]:
    """A widget and every widget inside it."""
    return [widget, *(d for child in getattr(widget, "children", ()) for d in _descendants(child))]
