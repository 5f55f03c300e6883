"""Tracking runs of an `Interaction`: streaming views while a run goes, stopping it, and saying how it went.

`RunControl` is part of `Interaction` (a mixin over its state).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from .commands import (
    DIRECTIONS,
)
from .errors import SessionError
from .session import Session
from .view import (
    ERROR,
    INFO,
    Progress,
    View,
)


class RunControl:
    """Part of `Interaction` (see the module docstring)."""

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
        before = session.last_propagation  # replaced once this run has started (and ended)
        failed = False
        shown = float("-inf")
        try:
            if announce:
                with self._lock:
                    self._progress = _starting(session, direction, self.frame)
                yield self.view()
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
            if not failed and session.last_propagation is not before:  # not for a run closed unstarted
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
            announced = self._progress is not None  # a run announced but not started stops when it starts
        if session is not None and (session.cancel() or announced):
            self._note(INFO, "Stopping the tracking run...")
            if wait_s > 0 and finished is not None:
                finished.wait(wait_s)
        elif pending is None:
            self._note(INFO, "Nothing to stop: no tracking run is going.")
        return self.view()


def _starting(session: Session, direction: str, frame: int) -> Progress:
    """The progress of a run about to start: none of its frames done, the time they took last runs."""
    try:
        total, seconds = session.estimate_seconds(direction, start=frame)
    except SessionError:  # the run itself says what is wrong
        total, seconds = 0, None
    return Progress(0, total, seconds or 0.0, direction)
