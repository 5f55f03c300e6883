"""`SessionGuard`: who may touch one session's document and model, and when.

A session is read from a UI thread while a tracking run goes on in another, so it has two locks: ``lock``
guards the document (`SessionState`) and is held briefly, never during network work; ``model_lock`` lets one
predictor call (or one tracked frame) run at a time. The flags say whether the session was closed and whether
a tracking run is going on; ``cancel`` asks that run to stop before its next frame.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from .errors import SessionError

T = TypeVar("T")


class SessionGuard:
    """The locks and flags one session's editor, tracking runs and readers share."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.model_lock = threading.Lock()
        self.cancel = threading.Event()
        self.closed = False
        self.propagating = False

    def check_open(self) -> None:
        """Refuse work that needs the frames or the model once the session is closed."""
        if self.closed:
            raise SessionError(
                "This session was closed (Session.close): its masks can still be read and saved, but to "
                "click, track or see frames again open the media in a new session."
            )

    def check_idle(self) -> None:
        """Refuse an edit while closed or while tracking runs."""
        self.check_open()
        if self.propagating:
            raise SessionError("Tracking is running: wait for it to finish or cancel it, then try again.")

    def stop_run(self) -> bool:
        """Ask the tracking run to stop before its next frame (any thread); whether one was going on."""
        self.cancel.set()
        with self.lock:
            return self.propagating

    def close(self, release: Callable[[], None]) -> None:
        """Stop any run, then mark the session closed and ``release`` its model state between two calls."""
        self.cancel.set()
        with self.model_lock:  # not under a running predictor call
            self.closed = True
            release()

    def read(self, question: Callable[[], T]) -> T:
        """``question()`` asked under the document lock (reads interleave with a tracking run's frames)."""
        with self.lock:
            return question()
