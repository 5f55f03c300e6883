"""The scripting API: one endpoint per engine verb, each returning the same view JSON (`draw.view_to_json`).

Every refusal reaches the client as an error with our message (``gradio_client`` raises ``AppError``).
Frames and objects are never clamped or guessed: a frame that does not exist, or an object that does not,
is refused. ``obj=0`` means "the selected object" wherever an endpoint takes ``obj``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import gradio as gr

from model.images.rle import coco_rle
from sam2_ui.engine.errors import SessionError
from sam2_ui.interaction.interaction import Interaction
from sam2_ui.interaction.view import View

from .draw import view_to_json
from .handlers import MODEL_GROUP, STOP_WAIT_S, VIEW_GROUP
from .host import Host
from .refusals import raise_view_errors, refuse
from .uploads import uploaded_file

CURRENT_FRAME = -1


def add_api(app: Host) -> None:
    """Register the endpoints on the Blocks being built: model calls in the one model queue, the rest
    beside it."""
    endpoints = ScriptingAPI(app)
    for fn in endpoints.model_calls():
        gr.api(fn, api_name=fn.__name__, concurrency_id=MODEL_GROUP, concurrency_limit=1)
    for fn in endpoints.view_calls():
        gr.api(fn, api_name=fn.__name__, concurrency_id=VIEW_GROUP, concurrency_limit=None)


class ScriptingAPI:
    """The endpoints, bound to the app (each reads the caller's session from its request)."""

    def __init__(self, app: Host) -> None:
        self.app = app

    def call(self, request: gr.Request | None, action: Callable[[Interaction], View]) -> dict:
        return view_to_json(raise_view_errors(action(self.app.interaction(request))))

    def model_calls(self) -> list[Callable]:
        return [
            self.open_endpoint(),
            self.load_session_endpoint(),
            *self.object_endpoints(),
            *self.prompt_endpoints(),
            self.command_endpoint(),
            self.key_endpoint(),
            self.propagate_endpoint(),
            self.segment_everything_endpoint(),
        ]

    def view_calls(self) -> list[Callable]:
        return [*self.frame_endpoints(), self.masks_endpoint(), self.close_endpoint()]

    # ------------------------------------------------------------------------------------------ media
    def open_endpoint(self) -> Callable:
        app = self.app

        def open(media: gr.FileData, request: gr.Request = None) -> dict:  # noqa: A001 - the engine verb
            """Open a video or an image (send it with gradio_client.handle_file) in the caller's session.

            Parameters:
                media: the file, as handle_file("clip.mp4") sends it.
            """
            try:
                view = app.open_media(uploaded_file(media, app.upload_folder), request)
            except SessionError as error:
                raise refuse(str(error)) from error
            return view_to_json(raise_view_errors(view))

        return open

    def load_session_endpoint(self) -> Callable:
        app = self.app

        def load_session(session_file: gr.FileData, media: gr.FileData, request: gr.Request = None) -> dict:
            """Restore a saved session (its JSON) together with its video or image.

            Parameters:
                session_file: the session JSON, as handle_file("session.json") sends it.
                media: the session's video or image, as handle_file("clip.mp4") sends it.
            """
            try:
                session_path = uploaded_file(session_file, app.upload_folder, "the session file")
                media_path = uploaded_file(media, app.upload_folder, "the session's video or image")
                view = app.load_session(session_path, media_path, request)
            except SessionError as error:
                raise refuse(str(error)) from error
            return view_to_json(raise_view_errors(view))

        return load_session

    # ------------------------------------------------------------------------------------------ objects
    def object_endpoints(self) -> list[Callable]:
        call = self.call

        def add_object(name: str = "", request: gr.Request = None) -> dict:
            """Add an object (selected at once).

            Parameters:
                name: its name; empty for "object N".
            """
            return call(request, lambda u: u.add_object(name or None))

        def select_object(obj: int, request: gr.Request = None) -> dict:
            """Select the object that prompts go to.

            Parameters:
                obj: the object's id.
            """
            return call(request, lambda u: u.select_object(int(obj)))

        def rename_object(obj: int, name: str, request: gr.Request = None) -> dict:
            """Rename an object.

            Parameters:
                obj: the object's id, or 0 for the selected object.
                name: the new name.
            """
            return call(request, lambda u: u.rename_object(int(obj) or None, name))

        def remove_object(obj: int, request: gr.Request = None) -> dict:
            """Remove an object with its prompts and masks (undoable).

            Parameters:
                obj: the object's id, or 0 for the selected object.
            """
            return call(request, lambda u: u.remove_object(int(obj) or None))

        return [add_object, select_object, rename_object, remove_object]

    # ------------------------------------------------------------------------------------------ prompts
    def prompt_endpoints(self) -> list[Callable]:
        call = self.call

        def add_point(
            frame: int, obj: int, x: float, y: float, positive: bool = True, request: gr.Request = None
        ) -> dict:
            """Click on a frame, in frame pixels.

            Parameters:
                frame: the frame (0-based).
                obj: the object's id, or 0 for the selected object (one is added if there is none).
                x: column in frame pixels.
                y: row in frame pixels.
                positive: True for a point on the object, False for a point not on it.
            """
            return call(request, lambda u: u.add_point(int(frame), int(obj) or None, x, y, bool(positive)))

        def add_box(
            frame: int, obj: int, x0: float, y0: float, x1: float, y1: float, request: gr.Request = None
        ) -> dict:
            """Give an object a box on a frame, in frame pixels.

            Parameters:
                frame: the frame (0-based).
                obj: the object's id, or 0 for the selected object (one is added if there is none).
                x0: left column.
                y0: top row.
                x1: right column.
                y1: bottom row.
            """
            return call(request, lambda u: u.add_box(int(frame), int(obj) or None, x0, y0, x1, y1))

        def remove_point(frame: int, obj: int, index: int, request: gr.Request = None) -> dict:
            """Remove one click of an object on a frame.

            Parameters:
                frame: the frame (0-based).
                obj: the object's id, or 0 for the selected object.
                index: which click, in the order given (0 the first).
            """
            return call(request, lambda u: u.remove_point(int(frame), int(obj) or None, int(index)))

        def click(x: float, y: float, negative: bool = False, request: gr.Request = None) -> dict:
            """A click on the displayed frame image (display pixels of the view's display_size), as the page
            sends it: adds a point with the current tool, or removes the point under it.

            Parameters:
                x: column in display pixels.
                y: row in display pixels.
                negative: a right click (a point not on the object).
            """
            return call(request, lambda u: u.click(x, y, negative=bool(negative)))

        return [add_point, add_box, remove_point, click]

    # ------------------------------------------------------------------------------------------ commands
    def command_endpoint(self) -> Callable:
        call = self.call

        def command(name: str, request: gr.Request = None) -> dict:
            """Run a command by name: undo, redo, clear_frame, clear_object, reset, next_frame,
            next_doubtful, ... (the names in the view's "enabled").

            Parameters:
                name: the command.
            """
            return call(request, lambda u: u.command(name))

        return command

    def key_endpoint(self) -> Callable:
        call = self.call

        def key(key: str, request: gr.Request = None) -> dict:
            """A key press of the shared key map, e.g. "z" or "Ctrl+Shift+z".

            Parameters:
                key: the key, with Ctrl+ / Shift+ in front if held.
            """
            name, ctrl, shift = parse_key(key)
            return call(request, lambda u: u.key(name, ctrl=ctrl, shift=shift))

        return key

    def segment_everything_endpoint(self) -> Callable:
        call = self.call

        def segment_everything(points_per_side: int = 16, request: gr.Request = None) -> dict:
            """Automatic masks on the current frame; each becomes an object.

            Parameters:
                points_per_side: the point grid's size (more finds smaller objects, slower).
            """
            return call(request, lambda u: u.segment_everything(points_per_side=int(points_per_side)))

        return segment_everything

    # ------------------------------------------------------------------------------------------ tracking
    def propagate_endpoint(self) -> Callable:
        app = self.app

        def propagate(direction: str = "both", frame: int = CURRENT_FRAME, request: gr.Request = None
                      ) -> Iterator[dict]:  # fmt: skip
            """Track the objects from a frame; streams a view per tracked frame ("progress") and, last, one
            with the run's "summary" (direction, start, done, total, cancelled, elapsed_s). /stop ends it.

            Parameters:
                direction: "forward", "backward" or "both".
                frame: the frame to start from (0-based), or -1 for the current frame.
            """
            ui = app.interaction(request)
            if frame != CURRENT_FRAME:
                raise_view_errors(ui.show_frame(int(frame)))
            with closing(ui.propagate(direction)) as views:  # a cancelled call ends the run too
                for view in views:
                    if view.progress is not None:
                        yield view_to_json(view)
                        continue
                    raise_view_errors(view)
                    yield view_to_json(view, summary=_summary(ui))

        return propagate

    # ------------------------------------------------------------------------------------------ frames
    def frame_endpoints(self) -> list[Callable]:
        call = self.call

        def set_tool(tool: str, request: gr.Request = None) -> dict:
            """Choose the tool of /click.

            Parameters:
                tool: "positive", "negative" or "box".
            """
            return call(request, lambda u: u.set_tool(tool))

        def go_to(frame: int, request: gr.Request = None) -> dict:
            """Show a frame.

            Parameters:
                frame: the frame (0-based); one that does not exist is refused.
            """
            return call(request, lambda u: u.show_frame(int(frame)))

        def stop(request: gr.Request = None) -> dict:
            """Stop the running tracking run (the frames done so far are kept)."""
            return call(request, lambda u: u.stop(wait_s=STOP_WAIT_S))

        def view(request: gr.Request = None) -> dict:
            """The current view (frame, objects with timelines, status, enabled commands)."""
            return call(request, lambda u: u.view())

        return [set_tool, go_to, stop, view]

    def masks_endpoint(self) -> Callable:
        app = self.app

        def masks(frame: int, request: gr.Request = None) -> dict:
            """The masks of a frame in COCO RLE, keyed by object id: {"1": {"size": [h, w], "counts": "..."}},
            what pycocotools.mask.decode reads.

            Parameters:
                frame: the frame (0-based).
            """
            ui = app.interaction(request)
            if ui.session is None:
                raise refuse("Open a video or an image first.")
            try:
                found = ui.session.masks(int(frame))
            except SessionError as error:
                raise refuse(str(error)) from error
            return {str(obj): coco_rle(mask) for obj, mask in found.items()}

        return masks

    def close_endpoint(self) -> Callable:
        app = self.app

        def close(request: gr.Request = None) -> dict:
            """End the caller's session and free what it holds (a page does this when its tab closes)."""
            app.close_session(request)
            return {"closed": True}

        return close


def parse_key(text: str) -> tuple[str, bool, bool]:
    """ "Ctrl+Shift+z" -> ("z", True, True); "ArrowLeft" -> ("ArrowLeft", False, False)."""
    parts = (text or "").split("+")
    key = parts[-1] if parts[-1] else "+"
    mods = {p.lower() for p in parts[:-1]}
    return key, bool(mods & {"ctrl", "meta", "cmd"}), "shift" in mods


def _summary(ui: Interaction) -> dict[str, Any] | None:
    summary = ui.session.last_propagation if ui.session is not None else None
    if summary is None:
        return None
    return {
        "direction": summary.direction,
        "start": summary.start,
        "done": summary.done,
        "total": summary.total,
        "cancelled": summary.cancelled,
        "elapsed_s": round(summary.elapsed_s, 3),
    }
