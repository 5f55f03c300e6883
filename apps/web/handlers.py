"""The page's events, bound by group: each translates a browser event into the interaction layer and
draws the `View` it returns. None decides what a click or a key means.

Model work (clicks, tracking, segment everything, history) goes through Gradio's queue under one
``concurrency_id``; frames, the slider, playback and downloads do not wait behind it. Page events are
``ui_<name>`` and undocumented; the scripting API is `api`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import gradio as gr

from sam2_ui.engine.errors import SessionError
from sam2_ui.interaction.interaction import Interaction
from sam2_ui.interaction.view import View

from .draw import draw
from .host import Host
from .layout import Layout
from .refusals import toast_view_messages

MODEL_GROUP = "model"  # one model call at a time, across users
VIEW_GROUP = "view"  # redraws of computed masks: never wait behind model work
STREAM_INTERVAL_S = 0.25  # least time between two streamed views of a tracking run
STOP_WAIT_S = 30.0  # Stop waits for the run to end (within a frame) to draw where it stopped
Updates = dict[Any, Any]


class PageHandlers:
    """Binds the page's events to the tab's `Interaction` and draws what it returns."""

    def __init__(self, app: Host, layout: Layout) -> None:
        self.app = app
        self.layout = layout
        self.outputs = self._outputs()

    def bind(self) -> None:
        self._bind_media()
        self._bind_frame()
        self._bind_transport()
        self._bind_objects()
        self._bind_commands()
        self._bind_tracking()
        self._bind_panels()

    # ------------------------------------------------------------------------------------------ drawing
    def _outputs(self) -> list[Any]:
        layout = self.layout
        fixed = [layout.frame, layout.slider, layout.timeline, layout.objects, layout.status, layout.tool]
        fixed += [layout.view_json, layout.play, layout.memory, layout.upload]
        return fixed + list(layout.buttons.values()) + list(layout.downloads.values())

    def show(
        self,
        view: View,
        request: gr.Request,
        slider: bool = True,
        keep_on_error: bool = True,
        recent_note: bool = False,
    ) -> Updates:
        """The tab's page after ``view``: warnings and errors as toasts; with an error (nothing was done,
        ``keep_on_error``) the page stays exactly as it was. ``recent_note``: see `draw.status_html`."""
        if toast_view_messages(view) and keep_on_error:
            return {}
        ui = self.app.interaction(request)
        tab = self.app.tab(ui)
        memory = self.app.memory(ui, view)
        return draw(self.layout, view, tab, self.app.example_thumbnails, memory, slider, recent_note)

    def on(self, event: Callable, fn: Callable, inputs: Any, name: str, group: str = VIEW_GROUP, **kw: Any):
        """Bind a page handler drawing into every output: model work in the one model queue, redraws beside
        it, never waiting; no progress drawn by Gradio (the status line shows a run's progress)."""
        return event(
            fn,
            inputs,
            self.outputs,
            api_name=f"ui_{name}",
            api_visibility="undocumented",
            concurrency_id=group,
            concurrency_limit=1 if group == MODEL_GROUP else None,
            show_progress=kw.pop("show_progress", "hidden"),
            **kw,
        )

    def act(self, action: Callable[[Interaction], View], slider: bool = True) -> Callable:
        """A handler without inputs: ``action`` on the tab's interaction, then draw."""

        def handler(request: gr.Request) -> Updates:
            return self.show(action(self.app.interaction(request)), request, slider)

        return handler

    # ------------------------------------------------------------------------------------------ groups
    def _bind_media(self) -> None:
        layout = self.layout

        def on_open(path: str | None, request: gr.Request) -> Updates:
            return self.open(path, request)

        def on_restore(session_path: str | None, media_path: str | None, request: gr.Request) -> Updates:
            try:
                view = self.app.load_session(session_path, media_path, request)
            except SessionError as error:
                gr.Warning(str(error), title="Not restored")
                return {}
            return self.show(view, request, keep_on_error=False)

        self.on(layout.upload.upload, on_open, [layout.upload], "open", MODEL_GROUP, show_progress="minimal",
                show_progress_on=[layout.status])  # fmt: skip
        self.on(layout.restore.click, on_restore, [layout.session_file, layout.session_media], "load_session",
                MODEL_GROUP, show_progress="minimal", show_progress_on=[layout.status])  # fmt: skip

    def open(self, path: str | None, request: gr.Request) -> Updates:
        """Open an upload or an example; a refused file changes nothing but the upload box (cleared)."""
        try:
            view = self.app.open_media(path, request)
        except SessionError as error:
            gr.Warning(str(error), title="Not opened")
            return {self.layout.upload: None}
        updates = self.show(view, request)
        updates[self.layout.upload] = None  # the upload box is for the next file; the pane shows this one
        return updates

    def _bind_frame(self) -> None:
        """The frame pane's script reports clicks, drags and picked examples (``select``, model work),
        frames to show (``input``: playback, never queued behind the model) and key presses (``submit``)."""
        frame = self.layout.frame
        # Every click and key press counts, in order, also while an earlier one is being answered.
        self.on(frame.select, self.on_frame_select, None, "click", MODEL_GROUP, trigger_mode="multiple")
        self.on(frame.input, self.on_go_to, None, "show_frame", trigger_mode="multiple")
        self.on(frame.submit, self.on_key, None, "key", MODEL_GROUP, trigger_mode="multiple")
        self.on(self.layout.timeline.input, self.on_go_to, None, "timeline", trigger_mode="multiple")

    def on_frame_select(self, event: gr.EventData, request: gr.Request) -> Updates:
        data = event._data or {}
        ui = self.app.interaction(request)
        kind = data.get("kind")
        if kind == "example":
            index = int(data.get("index", -1))
            if not 0 <= index < len(self.app.examples):
                return {}
            return self.open(str(self.app.examples[index]), request)
        try:
            size = (int(data["w"]), int(data["h"]))
            shown = None if data.get("frame") is None else int(data["frame"])
            if kind == "drag":
                corners = (float(data[k]) for k in ("x0", "y0", "x1", "y1"))
                view = ui.drag(*corners, display_size=size, frame=shown)
            elif kind == "click":
                x, y = float(data["x"]), float(data["y"])
                view = ui.click(x, y, display_size=size, negative=bool(data.get("negative")), frame=shown)
            else:
                return {}
        except (KeyError, TypeError, ValueError):
            return {}  # not an event the page's script sends: nothing to do
        return self.show(view, request)

    def on_go_to(self, event: gr.EventData, request: gr.Request) -> Updates:
        data = event._data or {}
        try:
            frame = int(data["frame"])
        except (KeyError, TypeError, ValueError):
            return {}
        return self.show(self.app.interaction(request).go_to(frame), request)

    def on_key(self, event: gr.EventData, request: gr.Request) -> Updates:
        data = event._data or {}
        ui = self.app.interaction(request)
        key = str(data.get("key", ""))
        return self.show(ui.key(key, ctrl=bool(data.get("ctrl")), shift=bool(data.get("shift"))), request)

    def _bind_transport(self) -> None:
        layout = self.layout

        def on_slider(frame: float, request: gr.Request) -> Updates:
            return self.show(self.app.interaction(request).go_to(int(frame)), request, slider=False)

        # The slider's own events never write the slider back: the thumb stays where the person put it.
        # "always_last": the value at release is sent once the reply before it is in, so no release event.
        self.on(layout.slider.input, on_slider, [layout.slider], "go_to", trigger_mode="always_last")
        layout.play.click(
            None, js="() => window.sam2TogglePlay && window.sam2TogglePlay()", api_visibility="private"
        )
        for command in ("prev_frame", "next_frame", "prev_doubtful", "next_doubtful"):
            self.on(layout.buttons[command].click, self.act(lambda u, c=command: u.command(c)), None, command)
        self.on(layout.tool.input, self.with_value(lambda u, t: u.set_tool(t)), [layout.tool], "set_tool")

    def with_value(self, action: Callable[[Interaction, Any], View]) -> Callable:
        """A handler of one input value: ``action(interaction, value)``, then draw."""

        def handler(value: Any, request: gr.Request) -> Updates:
            return self.show(action(self.app.interaction(request), value), request)

        return handler

    def _bind_objects(self) -> None:
        """The object panel's script reports select, rename and remove (with the object's id)."""

        def on_object(event: gr.EventData, request: gr.Request) -> Updates:
            data = event._data or {}
            ui = self.app.interaction(request)
            try:
                obj = int(data["id"])
            except (KeyError, TypeError, ValueError):
                return {}
            kind = data.get("kind")
            if kind == "select":
                return self.show(ui.select_object(obj), request)
            if kind == "rename":
                return self.show(ui.rename_object(obj, str(data.get("name", ""))), request)
            if kind == "remove":
                return self.show(ui.remove_object(obj), request)
            return {}

        # Removing an object drops its tracking state in the predictor: model work.
        self.on(self.layout.objects.select, on_object, None, "object", MODEL_GROUP, trigger_mode="multiple")

    def _bind_commands(self) -> None:
        buttons = self.layout.buttons
        self.on(buttons["add_object"].click, self.act(lambda u: u.add_object()), None, "add_object")
        for command in ("undo", "redo", "clear_frame", "clear_object", "reset"):
            self.on(buttons[command].click, self.act(lambda u, c=command: u.command(c)), None, command,
                    MODEL_GROUP)  # fmt: skip
        self.on(
            buttons["segment_everything"].click,
            self.with_value(lambda u, pps: u.segment_everything(points_per_side=int(pps))),
            [self.layout.points_per_side],
            "segment_everything",
            MODEL_GROUP,
            show_progress="minimal",
            show_progress_on=[self.layout.status],
        )

    def _bind_tracking(self) -> None:
        buttons = self.layout.buttons
        runs = [
            self.on(buttons[f"propagate_{d}"].click, self.track(d), None, f"propagate_{d}", MODEL_GROUP)
            for d in ("backward", "both", "forward")
        ]

        # Stop cancels the run's event; the note of how the run ended may then have gone with the run's
        # last, undelivered view, so Stop's own page shows the latest note.
        def stop(request: gr.Request) -> Updates:
            ui = self.app.interaction(request)
            return self.show(ui.stop(wait_s=STOP_WAIT_S), request, recent_note=True)

        self.on(buttons["stop"].click, stop, None, "stop", cancels=runs)

    def track(self, direction: str) -> Callable[[gr.Request], Iterator[Updates]]:
        def run(request: gr.Request) -> Iterator[Updates]:
            ui = self.app.interaction(request)
            # A view at most every STREAM_INTERVAL_S (a browser shows no more) and the last one; the first at
            # once (Stop on, this run's progress at 0) before any frame is tracked.
            views = ui.propagate(direction, min_interval_s=STREAM_INTERVAL_S, announce=True)
            with closing(views):  # a cancelled event ends the run too
                for view in views:
                    yield self.show(view, request, keep_on_error=False)

        return run

    def _bind_panels(self) -> None:
        layout = self.layout

        def memory_open(is_open: bool) -> Callable:
            def handler(request: gr.Request) -> Updates:
                ui = self.app.interaction(request)
                self.app.tab(ui).memory_open = is_open
                return self.show(ui.view(), request) if is_open else {}

            return handler

        self.on(layout.memory_panel.expand, memory_open(True), None, "memory_open")
        self.on(layout.memory_panel.collapse, memory_open(False), None, "memory_close")
        for kind, button in layout.downloads.items():
            button.click(
                self.export_handler(kind),
                None,
                layout.download,
                api_name=f"export_{kind}",
                concurrency_id=VIEW_GROUP,
                concurrency_limit=None,
                show_progress="minimal",
            )

    def export_handler(self, kind: str) -> Callable[[gr.Request], str]:
        def handler(request: gr.Request) -> str:
            return self.app.export(kind, request)

        return handler
