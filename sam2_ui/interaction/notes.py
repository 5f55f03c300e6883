"""What an `Interaction` tells the person: the messages for the next view (each shown once, e.g. as a toast),
the last few notes (shown in every view), and how many of the session's own messages were already passed on.

`Notes` owns that state and its lock; the interaction, its tracking runs and its commands say things through
it, and each view collects what is new.
"""

from __future__ import annotations

import threading
from collections import deque

from ..engine.errors import SessionError
from ..session import Session
from .view import ERROR, INFO, WARNING, Message

RECENT_NOTES = 2


class Notes:
    """Messages since the last view, the last `RECENT_NOTES` notes, and the session messages seen so far."""

    def __init__(self, recent: int = RECENT_NOTES) -> None:
        self._lock = threading.Lock()
        self._messages: list[Message] = []  # new since the last view
        self._recent: deque[str] = deque(maxlen=recent)  # the last notes, shown in every view
        self._seen_session_messages = 0

    def note(self, level: str, text: str) -> None:
        """Say ``text`` once in the next view; an "info" note also stays among the recent notes."""
        with self._lock:
            self._messages.append(Message(level, text))
            if level == INFO:
                self._recent.append(text)

    def error(self, error: SessionError | str) -> None:
        """Say an error (a `SessionError`'s message, or a text) in the next view."""
        self.note(ERROR, str(error))

    def collect(self, session: Session | None) -> tuple[tuple[Message, ...], tuple[str, ...]]:
        """The messages for a view (ours, then the session's new ones as warnings), which are then
        forgotten, and the recent notes (kept)."""
        with self._lock:
            if session is not None:
                new = session.messages[self._seen_session_messages :]
                self._seen_session_messages += len(new)
                self._messages.extend(Message(WARNING, text) for text in new)
            messages, self._messages = tuple(self._messages), []
            return messages, tuple(self._recent)

    def restart(self) -> None:
        """A new session: none of its messages seen yet, and the previous session's notes dropped."""
        with self._lock:
            self._seen_session_messages = 0
            self._recent.clear()
