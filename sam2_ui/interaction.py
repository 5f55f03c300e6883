"""The interaction layer: what a click, a key or a button means, decided once for every front end.

`Interaction` wraps a `Session` (or none, before media is opened) with the state a person interacts through:
the current frame, the selected tool, a half-given box. Front ends translate their events into its methods
and draw the `View` each one returns:

    ui = Interaction(predictor)
    view = ui.open("clip.mp4")
    view = ui.command("add_object")
    view = ui.click(312, 140, display_size=(960, 540))   # display pixels of the image the user clicked
    for view in ui.propagate("both"): draw(view)          # streamed; ui.stop() from another thread ends it
    view = ui.key("z")                                     # undo

Every user mistake (a click before any upload, outside the image, an unknown object, tracking with nothing to
track) becomes an error `Message` in the returned view; the session keeps what it had. Commands have stable
names (`COMMANDS`), shared by buttons, the keyboard map (`keys.KEYMAP`) and the Gradio API.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .errors import SessionError
from .keys import command_for_key
from .media import Limits
from .predictor import VideoPredictor
from .render import DisplayMapping
from .session import Session
from .view import (
    DOUBTFUL,
    ERROR,
    INFO,
    MASKED,
    NOTHING,
    PROMPTED,
    STALE,
    WARNING,
    Message,
    ObjectRow,
    Progress,
    View,
)

POSITIVE, NEGATIVE, BOX = "positive", "negative", "box"
TOOLS = (POSITIVE, NEGATIVE, BOX)
DIRECTIONS = ("forward", "backward", "both")
EXPORT_KINDS = ("pngs", "davis", "coco", "video", "session")
DEFAULT_DISPLAY = (960, 720)
MAX_POINTS_PER_SIDE = 64
RECENT_NOTES = 2
CLOSE_WAIT_S = 30.0  # closing waits this long at most for a tracking run to end

COMMANDS: tuple[str, ...] = (
    "add_object",
    "select_object",
    "rename_object",
    "remove_object",
    "undo",
    "redo",
    "clear_frame",
    "clear_object",
    "reset",
    "propagate_forward",
    "propagate_backward",
    "propagate_both",
    "stop",
    "segment_everything",
    "export",
    "save",
    "load",
    "open",
    "tool_positive",
    "tool_negative",
    "tool_box",
    "next_frame",
    "prev_frame",
    "first_frame",
    "last_frame",
    *(f"select_object_{i}" for i in range(1, 10)),
)
"""Every command name a front end can bind to a button or key."""


class Interaction:
    """One person's interaction with one session: current frame, tool, pending box, messages.

    Arguments:
      predictor: the ``SAM2VideoPredictor`` sessions are opened with.
      limits: the budget media is opened within (see `Limits`).
      display_size: (max width, max height) frames are rendered at; clicks are display pixels of that image.
      marker_hit_px: how close (display pixels) a click must be to a point marker to remove it; default: the
        marker radius the renderer draws.
      state_on_cpu: open sessions with their tracking state on the CPU (see `Session.open`).
      layered: views carry the frame as three layers (`View.layers`: frame, masks, markers) instead of one
        image, for a canvas that redraws only the layers that changed.
    """

    def __init__(
        self,
        predictor: VideoPredictor,
        limits: Limits | None = None,
        display_size: tuple[int, int] = DEFAULT_DISPLAY,
        marker_hit_px: float | None = None,
        state_on_cpu: bool = False,
        layered: bool = False,
    ) -> None:
        self.predictor = predictor
        self.layered = layered
        self.limits = limits or Limits()
        self.display_size = display_size
        self.marker_hit_px = marker_hit_px
        self.state_on_cpu = state_on_cpu
        self.session: Session | None = None
        self.frame = 0
        self.tool = POSITIVE
        self.pending_box: tuple[int, float, float] | None = None  # frame, x, y of the first corner
        self._messages: list[Message] = []  # new since the last view (each shown once, e.g. as a toast)
        self._recent: deque[str] = deque(maxlen=RECENT_NOTES)  # the last notes, shown in every view
        self._seen_session_messages = 0
        self._lock = threading.RLock()  # interaction state; the session guards its own
        self._progress: Progress | None = None
        self._run_finished: threading.Event | None = None
        self._closed = False
        self.last_export: Path | None = None  # what the "export" and "save" commands wrote last

    # ============================================================================================ media
    def open(self, source: Any, fps: float | None = None) -> View:
        """Open media (see `Session.open`); the previous session is closed only once the new one opened."""
        if self._refuse_while_tracking():
            return self.view()
        try:
            session = Session.open(
                source, self.predictor, self.limits, fps=fps, state_on_cpu=self.state_on_cpu
            )
            self._install(session)
        except SessionError as error:
            return self._error(error)
        kind = "image" if session.is_image else f"video of {session.num_frames} frames at {session.fps:g} fps"
        w, h = session.size
        self._note(INFO, f"Opened a {w}x{h} {kind}. Add an object, then click on it.")
        return self.view()

    def load(self, session_file: str | Path, media: Any) -> View:
        """Restore a saved session onto ``media`` (the same video, uploaded again).

        The media must be given: a path written inside a session file is never opened.
        """
        if self._refuse_while_tracking():
            return self.view()
        if media is None:
            return self._error("Upload the session's video or image together with its session file.")
        try:
            session = Session.load(
                session_file, self.predictor, source=media, state_on_cpu=self.state_on_cpu, limits=self.limits
            )
            self._install(session)
        except SessionError as error:
            return self._error(error)
        self._note(INFO, f"Restored the session: {len(session.objects)} objects.")
        return self.view()

    def attach(self, session: Session) -> View:
        """Work on an already open ``session`` (e.g. one a notebook made in code); the previous one is
        closed. The session stays the only holder of objects, prompts and masks."""
        if self._refuse_while_tracking():
            return self.view()
        try:
            self._install(session)
        except SessionError as error:
            return self._error(error)
        return self.view()

    def close(self) -> None:
        """Stop any run (waiting for it to end) and release the session; a later `open` is refused."""
        with self._lock:
            self._closed = True
            session, self.session = self.session, None
            finished = self._run_finished
        if session is not None:
            session.cancel()
            if finished is not None:
                finished.wait(CLOSE_WAIT_S)
            session.close()

    def _install(self, session: Session) -> None:
        with self._lock:
            if self._closed:  # closed while this session was opening (its tab went away)
                session.close()
                raise SessionError("This session was closed: reload the page to start again.")
            old, self.session = self.session, session
            self.frame, self.pending_box, self._seen_session_messages = 0, None, 0
            self._recent.clear()
        if old is not None:
            old.close()

    # ============================================================================================ clicks
    def click(
        self,
        x: float,
        y: float,
        display_size: tuple[int, int] | None = None,
        negative: bool = False,
        frame: int | None = None,
    ) -> View:
        """A click at display pixel (x, y) of the image rendered at ``display_size`` (default: ours).

        ``frame``: the frame the person saw when clicking (a front end whose events queue may pass it, so
        the click lands there even if the current frame moved meanwhile); default: the current frame.

        With a point tool: a click on an existing point marker removes that point; otherwise it adds a
        point to the selected object (negative with the negative tool, or ``negative=True``, e.g. a right
        click). With the box tool: the first click sets a corner, the second gives the box.
        """
        session = self._require_session()
        if session is None:
            return self.view()
        if frame is not None:
            self._show(int(frame))
        mapping = DisplayMapping.fit(session.size, display_size or self.display_size)
        fx, fy = mapping.to_frame(x, y)
        if not mapping.contains(fx, fy):
            return self._error(f"The click at ({x:.0f}, {y:.0f}) is outside the image: click on the frame.")
        if self.tool == BOX and not negative:
            return self._box_corner(fx, fy)
        hit = session.find_point(self.frame, fx, fy, radius=self._hit_radius(mapping))
        if hit is not None:
            obj, index = hit
            return self._run(
                lambda: session.remove_point(self.frame, obj, index), f"Removed a point of {self._name(obj)}."
            )
        return self.add_point(self.frame, None, fx, fy, positive=self.tool == POSITIVE and not negative)

    def drag(
        self, x0: float, y0: float, x1: float, y1: float, display_size: tuple[int, int] | None = None
    ) -> View:
        """A drag from (x0, y0) to (x1, y1) in display pixels: a box for the selected object."""
        session = self._require_session()
        if session is None:
            return self.view()
        mapping = DisplayMapping.fit(session.size, display_size or self.display_size)
        (fx0, fy0), (fx1, fy1) = mapping.to_frame(x0, y0), mapping.to_frame(x1, y1)
        self.pending_box = None
        return self.add_box(self.frame, None, fx0, fy0, fx1, fy1)

    def _box_corner(self, x: float, y: float) -> View:
        with self._lock:
            pending = self.pending_box
            if pending is None or pending[0] != self.frame:
                self.pending_box = (self.frame, x, y)  # the status line asks for the other corner
                return self.view()
            self.pending_box = None
        return self.add_box(self.frame, None, pending[1], pending[2], x, y)

    def _hit_radius(self, mapping: DisplayMapping) -> float:
        w, h = mapping.display_size
        display_radius = self.marker_hit_px or max(4, round(min(w, h) * 0.018)) * 1.25
        return display_radius / mapping.scale

    # ========================================================================================= engine verbs
    def add_point(self, frame: int, obj: int | None, x: float, y: float, positive: bool = True) -> View:
        """A point in frame pixels on ``frame`` for ``obj`` (None: the selected object; one is added if the
        session has none)."""
        session = self._require_session()
        if session is None:
            return self.view()
        self._first_object(session, obj)
        self._show(frame)
        return self._run(lambda: session.add_point(frame, obj, x, y, positive), None)

    def add_box(self, frame: int, obj: int | None, x0: float, y0: float, x1: float, y1: float) -> View:
        """A box in frame pixels (corners in any order) on ``frame`` for ``obj`` (None: the selected one)."""
        session = self._require_session()
        if session is None:
            return self.view()
        self._first_object(session, obj)
        self._show(frame)
        return self._run(lambda: session.add_box(frame, obj, x0, y0, x1, y1), None)

    def _first_object(self, session: Session, obj: int | None) -> None:
        """A prompt for "the selected object" before any object exists makes one, and says so."""
        if obj is None and not session.objects and not session.closed:
            if self._try(session.add_object):
                self._note(INFO, f"Added {self._name(session.selected)} for this click (a adds another).")

    def remove_point(self, frame: int, obj: int, index: int) -> View:
        session = self._require_session()
        if session is None:
            return self.view()
        self._show(frame)
        return self._run(lambda: session.remove_point(frame, obj, index), None)

    def add_object(self, name: str | None = None) -> View:
        session = self._require_session()
        if session is None:
            return self.view()
        return self._run(lambda: session.add_object(name or None), None)

    def select_object(self, obj: int | None) -> View:
        session = self._require_session()
        if session is None:
            return self.view()
        return self._run(lambda: session.select_object(obj), None)

    def rename_object(self, obj: int | None, name: str) -> View:
        session = self._require_session()
        if session is None:
            return self.view()
        return self._run(lambda: session.rename_object(self._object_or_selected(obj), name), None)

    def remove_object(self, obj: int | None = None) -> View:
        session = self._require_session()
        if session is None:
            return self.view()

        def remove() -> None:
            target = self._object_or_selected(obj)
            name = self._name(target)
            session.remove_object(target)
            remaining = [o.id for o in session.objects]
            session.select_object(remaining[-1] if remaining else None)
            self._note(INFO, f"Removed {name} (undo brings it back).")

        return self._run(remove, None)

    def clear_frame(self) -> View:
        session = self._require_session()
        return self.view() if session is None else self._run(lambda: session.clear(frame=self.frame), None)

    def clear_object(self, obj: int | None = None) -> View:
        session = self._require_session()
        if session is None:
            return self.view()
        return self._run(lambda: session.clear(obj=self._object_or_selected(obj)), None)

    def reset(self) -> View:
        session = self._require_session()
        return self.view() if session is None else self._run(lambda: session.clear(), "Cleared everything.")

    def undo(self) -> View:
        session = self._require_session()
        if session is None:
            return self.view()
        return self._run(lambda: self._note(INFO, f"Undid {session.undo()}."), None)

    def redo(self) -> View:
        session = self._require_session()
        if session is None:
            return self.view()
        return self._run(lambda: self._note(INFO, f"Redid {session.redo()}."), None)

    def segment_everything(self, points_per_side: int = 16, **amg_kwargs: Any) -> View:
        """Automatic masks on the current frame; each becomes a new object (one undo step).

        ``points_per_side`` (1 to `MAX_POINTS_PER_SIDE`) sets the grid of prompts: the work grows with its
        square. Other keyword arguments go to ``SAM2AutomaticMaskGenerator``.
        """
        session = self._require_session()
        if session is None:
            return self.view()
        if (
            isinstance(points_per_side, bool)
            or not isinstance(points_per_side, int)
            or not (1 <= points_per_side <= MAX_POINTS_PER_SIDE)
        ):
            return self._error(
                f"Points per side must be a whole number from 1 to {MAX_POINTS_PER_SIDE}, got "
                f"{points_per_side!r}: 16 is a good start, 32 finds smaller objects (4x slower)."
            )
        amg_kwargs["points_per_side"] = points_per_side

        def run() -> None:
            found = session.segment_everything(self.frame, **amg_kwargs)
            if found:
                session.select_object(found[0])
                self._note(INFO, f"Found {len(found)} objects; each is now an object you can refine.")

        return self._run(run, None)

    # ======================================================================================== frames, tools
    def go_to(self, frame: int) -> View:
        """Show ``frame`` (clamped to the video); a half-given box is dropped."""
        with self._lock:
            if self.session is not None:
                self._show(int(np.clip(int(frame), 0, self.session.num_frames - 1)))
        return self.view()

    def _show(self, frame: int) -> None:
        """Make ``frame`` the current one if the video has it (an engine call refuses it otherwise)."""
        with self._lock:
            if self.session is not None and 0 <= frame < self.session.num_frames and frame != self.frame:
                self.pending_box = None
                self.frame = frame

    def set_tool(self, tool: str) -> View:
        if tool not in TOOLS:
            return self._error(f"Unknown tool {tool!r}: use one of {', '.join(TOOLS)}.")
        with self._lock:
            self.tool = tool
            if tool != BOX:
                self.pending_box = None
        return self.view()

    # ============================================================================================ tracking
    def propagate(self, direction: str = "both", min_interval_s: float = 0.0) -> Iterator[View]:
        """Track from the current frame, yielding a view of the frame just tracked and one at the end.

        ``min_interval_s``: build and yield a view at most that often (a view renders the frame and the
        timelines; a browser shows a few per second), always the last one.

        The shown frame follows the tracked frame. `stop` (any thread) ends the run within one frame;
        closing the generator does too. Errors end the run with an error message in the last view.
        """
        session = self._require_session()
        if session is None:
            yield self.view()
            return
        if direction not in DIRECTIONS:
            yield self._error(f"Unknown direction {direction!r}: use forward, backward or both.")
            return
        try:
            run = session.propagate(direction, start=self.frame)
        except SessionError as error:
            yield self._error(error)
            return
        finished = threading.Event()  # set once the run is over and said so; what `stop` waits for
        self._run_finished = finished
        failed = False
        shown = float("-inf")
        try:
            for progress in run:
                with self._lock:
                    self.frame = progress.frame_index
                    self._progress = Progress(
                        progress.done, progress.total, progress.eta_s, progress.direction
                    )
                if time.monotonic() - shown >= min_interval_s:
                    shown = time.monotonic()
                    yield self.view()
        except SessionError as error:
            failed = True
            self._note(ERROR, str(error))
        except BaseException:
            failed = True
            raise
        finally:
            # Also when the front end closes this generator (a cancelled Gradio event): the run ends here.
            run.close()
            self._progress = None
            if not failed:
                self._note_summary(session)
            finished.set()
        yield self.view()

    def _note_summary(self, session: Session) -> None:
        summary = session.last_propagation
        if summary is not None:
            verb = "Stopped" if summary.cancelled else "Tracked"
            rate = summary.done / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
            self._note(
                INFO,
                f"{verb} {summary.direction}: {summary.done} of {summary.total} frames "
                f"({rate:.1f} frames/s).",
            )

    def stop(self, wait_s: float = 0.0) -> View:
        """Stop the running tracking run (its frames done so far are kept), or drop a half-given box.

        ``wait_s`` > 0: wait up to that long for the run to end (it ends within one frame), so the view
        returned shows where it stopped.
        """
        with self._lock:
            pending, self.pending_box = self.pending_box, None
            session = self.session
            finished = self._run_finished
        if session is not None and session.cancel():
            self._note(INFO, "Stopping the tracking run...")
            if wait_s > 0 and finished is not None:
                finished.wait(wait_s)
        elif pending is None:
            self._note(INFO, "Nothing to stop: no tracking run is going.")
        return self.view()

    # ============================================================================================ exports
    def export(self, kind: str, out_dir: str | Path) -> Path:
        """Write one download into ``out_dir`` and return its path.

        kind: "pngs" (zip of per-object PNG masks), "davis" (zip of DAVIS-palette PNGs), "coco" (COCO RLE
        JSON), "video" (overlay mp4), "session" (session JSON). Raises `SessionError` with a message.
        """
        session = self.session
        if session is None:
            raise SessionError("Nothing to export yet: upload a video or image first.")
        if kind not in EXPORT_KINDS:
            raise SessionError(f"Unknown export {kind!r}: choose one of {', '.join(EXPORT_KINDS)}.")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = _stem(session)
        if kind in ("pngs", "davis"):
            if not session.tracked_frames():
                raise SessionError("There are no masks to export yet: click on an object first.")
            with tempfile.TemporaryDirectory(dir=out) as scratch:
                folder = Path(scratch) / f"{stem}_{kind}"
                (session.export_pngs if kind == "pngs" else session.export_davis)(folder)
                archive = shutil.make_archive(str(out / f"{stem}_{kind}"), "zip", folder)
            return Path(archive)
        if kind == "coco":
            return session.export_coco(out / f"{stem}_coco.json")
        if kind == "video":
            return session.export_video(out / f"{stem}_overlay.mp4")
        return session.save(out / f"{stem}_session.json", portable=True)

    # ======================================================================================= commands, keys
    def command(self, name: str, /, **kwargs: Any) -> View:
        """Run a command by its stable name (`COMMANDS`); propagation commands run to the end here (use
        `propagate` to stream). Unknown names give an error message."""
        if name.startswith("select_object_"):
            return self._select_nth(int(name.rsplit("_", 1)[1]))
        if name.startswith("tool_"):
            return self.set_tool(name[len("tool_") :])
        if name.startswith("propagate_"):
            views = list(self.propagate(name[len("propagate_") :], min_interval_s=float("inf")))
            return views[-1]
        handler = self._handlers().get(name)
        if handler is None:
            return self._error(f"Unknown command {name!r}.")
        try:
            return handler(**kwargs)
        except TypeError as error:  # missing or unknown arguments: say which the command takes
            import inspect

            takes = ", ".join(inspect.signature(handler).parameters) or "no arguments"
            return self._error(f"Command {name!r} takes {takes} ({error}).")

    def key(self, key: str, ctrl: bool = False, shift: bool = False, meta: bool = False) -> View:
        """A key press (DOM key names): runs the command of the shared key map, if any."""
        name = command_for_key(key, ctrl=ctrl, shift=shift, meta=meta)
        if name is None:
            return self.view()
        return self.command(name)

    def _handlers(self) -> dict[str, Callable[..., View]]:
        last = lambda: (self.session.num_frames - 1) if self.session else 0  # noqa: E731
        return {
            "add_object": self.add_object,
            "select_object": self.select_object,
            "rename_object": self.rename_object,
            "remove_object": self.remove_object,
            "undo": self.undo,
            "redo": self.redo,
            "clear_frame": self.clear_frame,
            "clear_object": self.clear_object,
            "reset": self.reset,
            "stop": self.stop,
            "segment_everything": self.segment_everything,
            "open": self.open,
            "load": self.load,
            "export": self._export_command,
            "save": lambda out_dir: self._export_command("session", out_dir),
            "next_frame": lambda: self.go_to(self.frame + 1),
            "prev_frame": lambda: self.go_to(self.frame - 1),
            "first_frame": lambda: self.go_to(0),
            "last_frame": lambda: self.go_to(last()),
        }

    def _export_command(self, kind: str, out_dir: str | Path) -> View:
        try:
            path = self.export(kind, out_dir)
        except SessionError as error:
            return self._error(error)
        self.last_export = path
        self._note(INFO, f"Wrote {path.name}.")
        return self.view()

    def _select_nth(self, n: int) -> View:
        session = self._require_session()
        if session is None:
            return self.view()
        objects = session.objects
        if not 1 <= n <= len(objects):
            return self._error(f"There is no object {n} in the list (it has {len(objects)}).")
        return self.select_object(objects[n - 1].id)

    # ============================================================================================ the view
    def view(self, display_size: tuple[int, int] | None = None) -> View:
        """The current view (renders the current frame)."""
        with self._lock:
            session, frame, tool, pending = self.session, self.frame, self.tool, self.pending_box
            progress = self._progress
            self._collect_session_messages()
            messages, self._messages = tuple(self._messages), []
            notes = tuple(self._recent)
        if session is None:
            return View(
                image=None,
                mapping=None,
                frame=0,
                num_frames=0,
                tool=tool,
                pending_box=None,
                objects=(),
                selected=None,
                status="Upload a video or an image to start.",
                messages=messages,
                notes=notes,
                enabled=self._enabled(None, frame),
            )
        image, layers, mapping = None, None, None
        try:
            if self.layered:
                layers = session.render_layers(frame, display_size or self.display_size)
                mapping = layers.mapping
            else:
                image, mapping = session.render(frame, display_size or self.display_size)
        except SessionError as error:  # an undecodable frame: say so, but let the user act elsewhere
            messages += (Message(WARNING, str(error)),)
        corner = None
        if pending is not None and pending[0] == frame and mapping is not None:
            corner = (pending[1], pending[2])
            if layers is not None:
                layers = replace(layers, markers=_draw_corner(layers.markers, mapping.to_display(*corner)))
            else:
                image = _draw_corner(image, mapping.to_display(*corner))
        rows = self._rows(session)
        selected = session.selected
        estimate = "" if progress is not None else self._estimate(session, frame)
        stats = {
            "stale": len(session.stale_frames()),
            "doubtful": len(session.doubtful_frames()),
            "tracked": len(session.tracked_frames()),
        }
        return View(
            image=image,
            layers=layers,
            mapping=mapping,
            frame=frame,
            num_frames=session.num_frames,
            tool=tool,
            pending_box=corner,
            objects=rows,
            selected=selected,
            status=self._status(session, frame, tool, rows, progress, stats, corner is not None),
            messages=messages,
            enabled=self._enabled(session, frame),
            estimate=estimate,
            progress=progress,
            notes=notes,
            is_image=session.is_image,
            fps=session.fps,
            stats=stats,
        )

    def _rows(self, session: Session) -> tuple[ObjectRow, ...]:
        n = session.num_frames
        selected = session.selected
        rows = []
        for i, info in enumerate(session.objects):
            codes = bytearray(NOTHING.encode() * n)
            for code, frames in (
                (MASKED, session.tracked_frames(info.id)),
                (DOUBTFUL, session.doubtful_frames(info.id)),
                (STALE, session.stale_frames(info.id)),
                (PROMPTED, session.prompted_frames(info.id)),
            ):
                for f in frames:
                    codes[f] = ord(code)
            key = str(i + 1) if i < 9 else ""
            rows.append(ObjectRow(info.id, info.name, info.color, info.id == selected, codes.decode(), key))
        return tuple(rows)

    def _estimate(self, session: Session, frame: int) -> str:
        if session.is_image or not session.prompted_frames():
            return ""
        try:
            count, seconds = session.estimate_seconds("both", start=frame)
        except SessionError:
            return ""
        if seconds is None:
            return f"Tracking both ways from frame {frame} visits {count} frames."
        return (
            f"Tracking both ways from frame {frame}: {count} frames, about {_duration(seconds)} "
            f"({session.seconds_per_frame:.2f} s per frame measured here)."
        )

    @staticmethod
    def _status(session, frame, tool, rows, progress, stats, box_started: bool) -> str:
        if session.closed:
            return "This session was closed: open the media again to keep working."
        if progress is not None:
            return (
                f"Tracking {progress.direction}: frame {frame}, {progress.done}/{progress.total} done, "
                f"about {_duration(progress.eta_s)} left. Stop keeps what is done."
            )
        where = "Image" if session.is_image else f"Frame {frame + 1} of {session.num_frames}"
        selected = next((r for r in rows if r.selected), None)
        box_hint = " Box: now click the opposite corner (Esc drops it)." if box_started else ""
        if selected is None:
            if rows:
                return f"{where}. Select an object (1-9) or add one (a) to click for it.{box_hint}"
            return f"{where}. Click on an object to segment it (a first object is made for you).{box_hint}"
        tools = {POSITIVE: "positive point", NEGATIVE: "negative point", BOX: "box (two clicks)"}
        parts = [f"{where}", f"object {selected.name!r}", f"tool: {tools[tool]}"]
        if stats["stale"]:
            parts.append(f"{stats['stale']} stale frames: track again")
        if stats["doubtful"]:
            parts.append(f"{stats['doubtful']} doubtful frames: check them")
        status = " · ".join(parts) + "." + box_hint
        reason = session.doubt_reasons(selected.id).get(frame)
        if reason is not None:
            status += f" This frame is doubtful: {reason}."
        return status

    def _enabled(self, session: Session | None, frame: int) -> dict[str, bool]:
        enabled = dict.fromkeys(COMMANDS, False)
        enabled["open"] = enabled["load"] = True
        if session is None:
            return enabled
        busy = session.is_propagating
        idle = not busy
        has_objects = bool(session.objects)
        selected = session.selected is not None
        prompted = bool(session.prompted_frames())
        last = session.num_frames - 1
        video = not session.is_image
        enabled.update(
            {
                "open": idle,
                "load": idle,
                "add_object": idle,
                "select_object": has_objects,
                "rename_object": idle and selected,
                "remove_object": idle and selected,
                "clear_object": idle and selected,
                "undo": idle and session.can_undo,
                "redo": idle and session.can_redo,
                "clear_frame": idle and bool(session.prompts(frame)),
                "reset": idle and (prompted or bool(session.tracked_frames())),
                "propagate_forward": idle and video and prompted and frame < last,
                "propagate_backward": idle and video and prompted and frame > 0,
                "propagate_both": idle and video and prompted,
                "stop": busy,
                "segment_everything": idle,
                "export": idle and bool(session.tracked_frames()),
                "save": idle,
                "tool_positive": True,
                "tool_negative": True,
                "tool_box": True,
                "next_frame": frame < last,
                "prev_frame": frame > 0,
                "first_frame": frame > 0,
                "last_frame": frame < last,
            }
        )
        for i in range(1, 10):
            enabled[f"select_object_{i}"] = len(session.objects) >= i
        return enabled

    # ============================================================================================ helpers
    def _require_session(self) -> Session | None:
        session = self.session
        if session is None:
            self._note(ERROR, "Upload a video or an image first, then click on it.")
        elif session.closed:
            self._note(ERROR, "This session was closed: open the media again to keep working.")
            return None
        return session

    def _refuse_while_tracking(self) -> bool:
        if self.session is not None and self.session.is_propagating:
            self._note(ERROR, "Tracking is running: stop it first, then open another file.")
            return True
        return False

    def _run(self, action: Callable[[], Any], note: str | None) -> View:
        """Run an engine call (see `_try`) and return the view."""
        self._try(action, note)
        return self.view()

    def _try(self, action: Callable[[], Any], note: str | None = None) -> bool:
        """Run an engine call; a `SessionError` becomes an error message and the session stays as it was."""
        try:
            action()
        except SessionError as error:
            self._note(ERROR, str(error))
            return False
        if note:
            self._note(INFO, note)
        return True

    def _object_or_selected(self, obj: int | None) -> int:
        if obj is not None:
            return int(obj)
        selected = self.session.selected if self.session is not None else None
        if selected is None:
            raise SessionError("No object is selected: add or select an object first.")
        return selected

    def _name(self, obj: int) -> str:
        try:
            return repr(self.session.object(obj).name)
        except (SessionError, AttributeError):
            return f"object {obj}"

    def _note(self, level: str, text: str) -> None:
        with self._lock:
            self._messages.append(Message(level, text))
            if level == INFO:
                self._recent.append(text)

    def _error(self, error: SessionError | str) -> View:
        self._note(ERROR, str(error))
        return self.view()

    def _collect_session_messages(self) -> None:
        session = self.session
        if session is None:
            return
        new = session.messages[self._seen_session_messages :]
        self._seen_session_messages += len(new)
        self._messages.extend(Message(WARNING, text) for text in new)


def _stem(session: Session) -> str:
    path = session.source_path
    stem = path.stem if path is not None else "frames"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:60] or "frames"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def _draw_corner(image: np.ndarray, at: tuple[float, float]) -> np.ndarray:
    """The first corner of a box being given, as a white cross with a dark edge (on RGB or RGBA)."""
    out = Image.fromarray(image)
    draw = ImageDraw.Draw(out)
    u, v = round(at[0]), round(at[1])
    arm = max(6, round(min(out.size) * 0.02))
    for color, width in (((0, 0, 0, 255), 4), ((255, 255, 255, 255), 2)):
        color = color[: len(out.getbands())]
        draw.line([u - arm, v, u + arm, v], fill=color, width=width)
        draw.line([u, v - arm, u, v + arm], fill=color, width=width)
    return np.asarray(out)
