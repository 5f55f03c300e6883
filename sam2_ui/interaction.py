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
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .checks import check_frame
from .commands import (  # noqa: F401 - the names front ends import from here
    BOX,
    COMMANDS,
    DEFAULT_DISPLAY,
    DIRECTIONS,
    EXPORT_KINDS,
    MAX_POINTS_PER_SIDE,
    NEGATIVE,
    POSITIVE,
    TOOLS,
)
from .errors import SessionError
from .executor import ExecutorFactory
from .interaction_commands import CommandDispatch
from .interaction_tracking import RunControl
from .interaction_view import ViewBuilding
from .media import Limits
from .predictor import VideoPredictor
from .render import DisplayMapping, marker_radius
from .session import Session
from .view import (
    ERROR,
    INFO,
    WARNING,
    Message,
    Progress,
    View,
)

RECENT_NOTES = 2
CLOSE_WAIT_S = 30.0  # closing waits this long at most for a tracking run to end


class Interaction(ViewBuilding, RunControl, CommandDispatch):
    """One person's interaction with one session: current frame, tool, pending box, messages.

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
            session = Session.open(source, self.predictor, self.limits, fps=fps, **self._session_options())
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
                session_file, self.predictor, source=media, limits=self.limits, **self._session_options()
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

    def _session_options(self) -> dict[str, Any]:
        return {"state_on_cpu": self.state_on_cpu, "precision": self.precision, "executor": self.executor}

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
        if obj is None and not session.objects and not session.closed:
            if self._try(session.add_object):
                self._note(INFO, f"Added {self._name(session.selected)} for this click (a adds another).")

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
        session = self._require_session()
        if session is None:
            return self.view()

        def remove() -> None:
            target = self._object_or_selected(obj)
            prompts = session.prompts(self.frame).get(target)
            count = len(prompts.points) if prompts is not None else 0
            if not count:
                raise SessionError(
                    f"{self._name(target)} has no point on this frame: Delete removes the selected object's "
                    "last point here. Undo (z) takes back a box or a mask; a click on a marker removes it."
                )
            session.remove_point(self.frame, target, count - 1)
            self._note(INFO, f"Removed the last point of {self._name(target)}.")

        return self._run(remove, None)

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
