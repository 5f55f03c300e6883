"""The predictor states a worker process keeps between model calls, a bounded number of sessions.

A reused ZeroGPU worker serves calls of several sessions one after another. It keeps each session's `Tracker`
(the predictor's inference state over the session's frames) with the document version that state is at, so a
call building on that version runs at once. A call building on another version (after an undo, or one whose
earlier call this worker never saw) brings the state there by replaying the prompt log (`Tracker.sync`). The
least recently used session is dropped when more than ``max_sessions`` are kept.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from .model_calls import ModelCall
from .predictor import VideoPredictor
from .tracker import Tracker


@dataclass
class CachedSession:
    """One session's state in a worker: its tracker and the version its state is at (None: unknown)."""

    tracker: Tracker
    version: str | None


class WorkerCache:
    """Session id -> `CachedSession`, least recently used first."""

    def __init__(self, max_sessions: int = 8) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, got {max_sessions}")
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, CachedSession] = OrderedDict()

    def get(self, call: ModelCall, predictor: VideoPredictor) -> CachedSession:
        """The session's cached state, or a new one over its media opened here (at version "", the empty
        log)."""
        cached = self._sessions.get(call.session)
        if cached is not None:
            self._sessions.move_to_end(call.session)
            return cached
        media = call.media.open()
        try:
            tracker = Tracker(
                predictor,
                media.frames,
                call.state_on_cpu,
                call.precision,  # type: ignore[arg-type]
                call.corrections_as_conditioning,
            )
        except BaseException:
            media.frames.close()
            raise
        cached = self._sessions[call.session] = CachedSession(tracker, "")
        while len(self._sessions) > self.max_sessions:
            _, dropped = self._sessions.popitem(last=False)
            dropped.tracker.close()
        return cached

    def drop(self, session: str) -> None:
        """Forget a session (its state is unknown after a failed call); the next call replays its log."""
        cached = self._sessions.pop(session, None)
        if cached is not None:
            cached.tracker.close()
