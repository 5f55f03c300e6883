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

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.checks import check_frame
from ..engine.errors import SessionError
from ..engine.executor import ExecutorFactory
from ..engine.media import Limits
from ..engine.predictor import VideoPredictor
from ..output.render import DisplayMapping, marker_radius
from ..session import Session
from .commands import BOX, DEFAULT_DISPLAY, POSITIVE, TOOLS, check_points_per_side
from .dispatch import Commands
from .downloads import write_download
from .notes import Notes
from .run_control import RunControl
from .view import ERROR, INFO, View
from .view_builder import Shown, build_view

CLOSE_WAIT_S = 30.0  # closing waits this long at most for a tracking run to end


class Interaction:
    """One person's interaction with one session: current frame, tool, pending box. It holds what the next
    views say (`Notes`), its tracking runs (`RunControl`) and its commands by name (`Commands`).

    Arguments:
      predictor: the ``SAM2VideoPredictor`` sessions are opened with.
      limits: the budget media is opened within (see `Limits`).
      display_size: (max width, max height) frames are rendered at; clicks are display pixels of that image.
      marker_hit_px: how close (display pixels) a click must be to a point marker to remove it; default: the
        marker radius the renderer draws.
      state_on_cpu: open sessions with their tracking state on the CPU (see `Session.open`).
      precision: what sessions run in: "auto", "fp32" or "bf16" (see `Session.open`; views show it).
      executor: where sessions run their model calls (see `Session.open`; None: in this process).
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
        precision: str = "auto",
        executor: ExecutorFactory | None = None,
    ) -> None:
        self.predictor = predictor
        self.executor = executor
        self.layered = layered
        self.limits = limits or Limits()
        self.display_size = display_size
        self.marker_hit_px = marker_hit_px
        self.state_on_cpu = state_on_cpu
        self.precision = precision
        self.session: Session | None = None
        self.frame = 0
        self.tool = POSITIVE
        self.pending_box: tuple[int, float, float] | None = None  # frame, x, y of the first corner
        self._lock = threading.RLock()  # interaction state; the session guards its own
        self._notes = Notes()  # what the next views say
        self._runs = RunControl(self._lock, self._notes, follow=self._follow, view=self.view)
        self._commands = Commands(self, self._notes, self._require_session)
        self._closed = False

    # ============================================================================================ media
    def open(self, source: Any, fps: float | None = None) -> View:
        """Open media (see `Session.open`); the previous session is closed only once the new one opened."""
        if self._refuse_while_tracking():
            return self.view()
        try:
            session = Session.open(source, self.predictor, self.limits, fps=fps, **self._session_options())
            self._install(session)
        except SessionError as error:
            return self._error(error)
        kind = "image" if session.is_image else f"video of {session.num_frames} frames at {session.fps:g} fps"
        w, h = session.size
        self._notes.note(INFO, f"Opened a {w}x{h} {kind}. Add an object, then click on it.")
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
                session_file, self.predictor, source=media, limits=self.limits, **self._session_options()
            )
            self._install(session)
        except SessionError as error:
            return self._error(error)
        self._notes.note(INFO, f"Restored the session: {len(session.objects)} objects.")
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
        if session is not None:
            session.cancel()
            self._runs.wait(CLOSE_WAIT_S)
            session.close()

    def _session_options(self) -> dict[str, Any]:
        return {"state_on_cpu": self.state_on_cpu, "precision": self.precision, "executor": self.executor}

    def _install(self, session: Session) -> None:
        with self._lock:
            if self._closed:  # closed while this session was opening (its tab went away)
                session.close()
                raise SessionError("This session was closed: reload the page to start again.")
            old, self.session = self.session, session
            self.frame, self.pending_box = 0, None
            self._notes.restart()
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
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        display_size: tuple[int, int] | None = None,
        frame: int | None = None,
    ) -> View:
        """A drag from (x0, y0) to (x1, y1) in display pixels: a box for the selected object (``frame``:
        the frame the person saw, as for `click`)."""
        session = self._require_session()
        if session is None:
            return self.view()
        if frame is not None:
            self._show(int(frame))
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
        display_radius = self.marker_hit_px or marker_radius(mapping) * 1.25  # the selected object's marker
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
        if obj is None and not session.objects and not session.closed and self._try(session.add_object):
            self._notes.note(INFO, f"Added {self._name(session.selected)} for this click (a adds another).")

    def remove_point(self, frame: int, obj: int | None, index: int) -> View:
        """Remove click ``index`` of ``obj`` (None: the selected object) on ``frame``."""
        session = self._require_session()
        if session is None:
            return self.view()
        self._show(frame)
        return self._run(lambda: session.remove_point(frame, obj, index), None)

    def remove_last_point(self, obj: int | None = None) -> View:
        """Delete / Backspace: remove the last point given to ``obj`` (None: the selected object) on the
        current frame. Without one there, an error message says how to take back other prompts."""

        def remove(session: Session) -> None:
            target = self._object_or_selected(obj)
            prompts = session.prompts(self.frame).get(target)
            count = len(prompts.points) if prompts is not None else 0
            if not count:
                raise SessionError(
                    f"{self._name(target)} has no point on this frame: Delete removes the selected object's "
                    "last point here. Undo (z) takes back a box or a mask; a click on a marker removes it."
                )
            session.remove_point(self.frame, target, count - 1)
            self._notes.note(INFO, f"Removed the last point of {self._name(target)}.")

        return self._verb(remove)

    def add_object(self, name: str | None = None) -> View:
        return self._verb(lambda session: session.add_object(name or None))

    def select_object(self, obj: int | None) -> View:
        return self._verb(lambda session: session.select_object(obj))

    def rename_object(self, obj: int | None, name: str) -> View:
        return self._verb(lambda session: session.rename_object(self._object_or_selected(obj), name))

    def remove_object(self, obj: int | None = None) -> View:
        def remove(session: Session) -> None:
            target = self._object_or_selected(obj)
            name = self._name(target)
            session.remove_object(target)
            remaining = [o.id for o in session.objects]
            session.select_object(remaining[-1] if remaining else None)
            self._notes.note(INFO, f"Removed {name} (undo brings it back).")

        return self._verb(remove)

    def clear_frame(self) -> View:
        return self._verb(lambda session: session.clear(frame=self.frame))

    def clear_object(self, obj: int | None = None) -> View:
        return self._verb(lambda session: session.clear(obj=self._object_or_selected(obj)))

    def reset(self) -> View:
        return self._verb(lambda session: session.clear(), "Cleared everything.")

    def undo(self) -> View:
        return self._verb(lambda session: self._notes.note(INFO, f"Undid {session.undo()}."))

    def redo(self) -> View:
        return self._verb(lambda session: self._notes.note(INFO, f"Redid {session.redo()}."))

    def segment_everything(self, points_per_side: int = 16, **amg_kwargs: Any) -> View:
        """Automatic masks on the current frame; each becomes a new object (one undo step).

        ``points_per_side`` (1 to `MAX_POINTS_PER_SIDE`) sets the grid of prompts: the work grows with its
        square. Other keyword arguments go to ``SAM2AutomaticMaskGenerator``.
        """

        def run(session: Session) -> None:
            check_points_per_side(points_per_side)
            found = session.segment_everything(self.frame, points_per_side=points_per_side, **amg_kwargs)
            if found:
                session.select_object(found[0])
                self._notes.note(INFO, f"Found {len(found)} objects; each is now an object you can refine.")

        return self._verb(run)

    # ======================================================================================== frames, tools
    def go_to(self, frame: int) -> View:
        """Show ``frame`` (clamped to the video); a half-given box is dropped."""
        with self._lock:
            if self.session is not None:
                self._show(int(np.clip(int(frame), 0, self.session.num_frames - 1)))
        return self.view()

    def show_frame(self, frame: int) -> View:
        """Show ``frame``, refusing one the video does not have (an error message; nothing clamped)."""
        session = self._require_session()
        if session is None:
            return self.view()
        try:
            check_frame(int(frame), session.num_frames)
        except SessionError as error:
            return self._error(error)
        self._show(int(frame))
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

    def _follow(self, frame: int) -> None:
        """A tracking run shows the frame it just tracked (called under the lock; a half-given box stays)."""
        self.frame = frame

    # ========================================================================================= view, tracking
    def view(self, display_size: tuple[int, int] | None = None) -> View:
        """The current view (renders the current frame)."""
        with self._lock:
            session = self.session
            messages, notes = self._notes.collect(session)
            shown = Shown(self.frame, self.tool, self.pending_box, self._runs.progress, messages, notes)
        return build_view(session, shown, display_size or self.display_size, self.layered)

    def propagate(
        self, direction: str = "both", min_interval_s: float = 0.0, announce: bool = False
    ) -> Iterator[View]:
        """Track from the current frame, yielding a view of the frame just tracked and one at the end.

        ``min_interval_s``: build and yield a view at most that often (a view renders the frame and the
        timelines; a browser shows a few per second), always the last one.
        ``announce``: first yield a view of the run starting, before the first frame is tracked (which can
        take seconds): progress at 0 of the frames this run tracks, Stop enabled and what a run refuses
        disabled. A front end draws it at once, so Stop works and the progress is this run's from the press.

        The shown frame follows the tracked frame. `stop` (any thread) ends the run within one frame;
        closing the generator does too. Errors end the run with an error message in the last view.
        """
        session = self._require_session()
        if session is None:
            yield self.view()
            return
        yield from self._runs.propagate(session, self.frame, direction, min_interval_s, announce)

    def stop(self, wait_s: float = 0.0) -> View:
        """Stop the running tracking run (its frames done so far are kept), or drop a half-given box.

        ``wait_s`` > 0: wait up to that long for the run to end (it ends within one frame), so the view
        returned shows where it stopped.
        """
        with self._lock:
            pending, self.pending_box = self.pending_box, None
            session = self.session
        if (session is None or not self._runs.stop(session, wait_s)) and pending is None:
            self._notes.note(INFO, "Nothing to stop: no tracking run is going.")
        return self.view()

    def export(self, kind: str, out_dir: str | Path) -> Path:
        """Write one download into ``out_dir`` and return its path.

        kind: "pngs" (zip of per-object PNG masks), "davis" (zip of DAVIS-palette PNGs), "coco" (COCO RLE
        JSON), "video" (overlay mp4), "session" (session JSON). Raises `SessionError` with a message.
        """
        return write_download(self.session, kind, out_dir)

    # ====================================================================================== commands by name
    def command(self, name: str, /, **kwargs: Any) -> View:
        """Run a command by its stable name (`COMMANDS`); propagation commands run to the end here (use
        `propagate` to stream). Unknown names give an error message."""
        return self._commands.run(name, kwargs)

    def key(self, key: str, ctrl: bool = False, shift: bool = False, meta: bool = False) -> View:
        """A key press (DOM key names): runs the command of the shared key map, if any."""
        return self._commands.key(key, ctrl=ctrl, shift=shift, meta=meta)

    def go_to_doubtful(self, step: int) -> View:
        """Show the next (``step`` > 0) or previous doubtful frame of any object, saying why it is doubtful;
        a note when there is none that way."""
        return self._commands.go_to_doubtful(step)

    @property
    def last_export(self) -> Path | None:
        """What the "export" and "save" commands wrote last."""
        return self._commands.last_export

    # ============================================================================================ helpers
    def _require_session(self) -> Session | None:
        session = self.session
        if session is None:
            self._notes.note(ERROR, "Upload a video or an image first, then click on it.")
        elif session.closed:
            self._notes.note(ERROR, "This session was closed: open the media again to keep working.")
            return None
        return session

    def _refuse_while_tracking(self) -> bool:
        if self.session is not None and self.session.is_propagating:
            self._notes.note(ERROR, "Tracking is running: stop it first, then open another file.")
            return True
        return False

    def _run(self, action: Callable[[], Any], note: str | None) -> View:
        """Run an engine call (see `_try`) and return the view."""
        self._try(action, note)
        return self.view()

    def _verb(self, action: Callable[[Session], Any], note: str | None = None) -> View:
        """Run an engine call on the session (see `_try`) and return the view; without one, say so."""
        session = self._require_session()
        if session is not None:
            self._try(lambda: action(session), note)
        return self.view()

    def _try(self, action: Callable[[], Any], note: str | None = None) -> bool:
        """Run an engine call; a `SessionError` becomes an error message and the session stays as it was."""
        try:
            action()
        except SessionError as error:
            self._notes.note(ERROR, str(error))
            return False
        if note:
            self._notes.note(INFO, note)
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

    def _error(self, error: SessionError | str) -> View:
        self._notes.error(error)
        return self.view()
