"""Tracking runs of an `Interaction`: streaming views while a run goes, stopping it, and saying how it went.

`RunControl` owns the progress of the run going (or announced) and the event a run sets once it is over; the
interaction hands it its lock, its `Notes`, a way to show the frame just tracked and a way to build a view.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from ..engine.errors import SessionError
from ..session import Session
from .commands import DIRECTIONS
from .notes import Notes
from .view import INFO, Progress, View


class RunControl:
    """One interaction's tracking runs, one at a time.

    Arguments:
      lock: the interaction's lock; the shown frame and the progress change together under it.
      notes: where a run's errors and its summary are said.
      follow: makes a frame the shown one (called under ``lock`` for each frame tracked).
      view: builds the view of the interaction as it is now.
    """

    def __init__(
        self,
        lock: threading.RLock,
        notes: Notes,
        follow: Callable[[int], None],
        view: Callable[[], View],
    ) -> None:
        self._lock = lock
        self._notes = notes
        self._follow = follow
        self._view = view
        self._progress: Progress | None = None
        self._finished: threading.Event | None = None  # set once the last run is over and said so

    @property
    def progress(self) -> Progress | None:
        """The run going, or announced and not started yet; None between runs."""
        return self._progress

    def propagate(
        self, session: Session, start: int, direction: str, min_interval_s: float, announce: bool
    ) -> Iterator[View]:
        """Track ``session`` from frame ``start`` (see `Interaction.propagate`)."""
        if direction not in DIRECTIONS:
            self._notes.error(f"Unknown direction {direction!r}: use forward, backward or both.")
            yield self._view()
            return
        try:
            run = session.propagate(direction, start=start)
        except SessionError as error:
            self._notes.error(error)
            yield self._view()
            return
        finished = threading.Event()  # what `stop` and `wait` wait for
        self._finished = finished
        before = session.last_propagation  # replaced once this run has started (and ended)
        failed = False
        shown = float("-inf")
        try:
            if announce:
                with self._lock:
                    self._progress = _starting(session, direction, start)
                yield self._view()
            for progress in run:
                with self._lock:
                    self._follow(progress.frame_index)
                    self._progress = Progress(
                        progress.done, progress.total, progress.eta_s, progress.direction
                    )
                if time.monotonic() - shown >= min_interval_s:
                    shown = time.monotonic()
                    yield self._view()
        except SessionError as error:
            failed = True
            self._notes.error(error)
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
        yield self._view()

    def _note_summary(self, session: Session) -> None:
        summary = session.last_propagation
        if summary is not None:
            verb = "Stopped" if summary.cancelled else "Tracked"
            rate = summary.done / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
            self._notes.note(
                INFO,
                f"{verb} {summary.direction}: {summary.done} of {summary.total} frames "
                f"({rate:.1f} frames/s).",
            )

    def stop(self, session: Session, wait_s: float = 0.0) -> bool:
        """Stop the run on ``session``, going or announced (its frames done so far are kept), saying so;
        False if there is none. ``wait_s`` > 0: wait up to that long for it to end (within one frame)."""
        with self._lock:
            finished = self._finished
            announced = self._progress is not None  # a run announced but not started stops when it starts
        if not (session.cancel() or announced):
            return False
        self._notes.note(INFO, "Stopping the tracking run...")
        if wait_s > 0 and finished is not None:
            finished.wait(wait_s)
        return True

    def wait(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the last run to be over (at once if none ever started)."""
        with self._lock:
            finished = self._finished
        if finished is not None:
            finished.wait(timeout_s)


def _starting(session: Session, direction: str, frame: int) -> Progress:
    """The progress of a run about to start: none of its frames done, the time they took last runs."""
    try:
        total, seconds = session.estimate_seconds(direction, start=frame)
    except SessionError:  # the run itself says what is wrong
        total, seconds = 0, None
    return Progress(0, total, seconds or 0.0, direction)
