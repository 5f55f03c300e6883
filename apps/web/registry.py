"""Server-side sessions of the web app: one `Interaction` per browser tab, found by a key.

Only the key travels with the tab (Gradio's ``gr.State`` and ``session_hash``); sessions, frames and masks
stay here. A session is closed when its tab unloads, after ``ttl_s`` seconds without use, or, when
``max_sessions`` are open and another tab arrives, as the least recently used idle one. The next request of a
tab whose session was closed is told why, and starts a fresh session.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sam2_ui.engine.errors import SessionError
from sam2_ui.interaction.interaction import Interaction

CLOSED_NOTES_KEPT = 1000


@dataclass
class Entry:
    interaction: Interaction
    workdir: Path
    last_used: float = field(default_factory=time.monotonic)


class SessionRegistry:
    """Key -> `Interaction`, with a per-key work folder for exports and a cap on live sessions.

    Arguments:
      factory: makes a new `Interaction` (sharing the one loaded model).
      max_sessions: live sessions kept at most.
      ttl_s: seconds without use after which a session is closed.
      root: parent of the per-session work folders (default: a temporary folder).
    """

    def __init__(
        self,
        factory: Callable[[], Interaction],
        max_sessions: int = 16,
        ttl_s: float = 1800.0,
        root: str | Path | None = None,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.factory = factory
        self.max_sessions = max_sessions
        self.ttl_s = ttl_s
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="sam2_ui_app_"))
        self.root.mkdir(parents=True, exist_ok=True)
        self._entries: OrderedDict[str, Entry] = OrderedDict()  # least recently used first
        self._closed: OrderedDict[str, str] = OrderedDict()  # key -> why it was closed (told once)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._entries

    def get(self, key: str) -> tuple[Interaction, str | None]:
        """The tab's interaction (created if new) and, once, why its previous session was closed."""
        if not key:
            raise SessionError("This request has no session: reload the page.")
        self.sweep()
        closing: list[Entry] = []
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                closing = self._make_room()
                entry = Entry(self.factory(), self.root / _safe(key))
                self._entries[key] = entry
            entry.last_used = time.monotonic()
            self._entries.move_to_end(key)
            note = self._closed.pop(key, None)
        for old in closing:
            _close(old)
        return entry.interaction, note

    def peek(self, key: str) -> Interaction | None:
        """The key's interaction if it is open (nothing is created, nothing is touched)."""
        with self._lock:
            entry = self._entries.get(key)
        return None if entry is None else entry.interaction

    def workdir(self, key: str) -> Path:
        """A folder only this session writes into (exports); created on demand."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                raise SessionError("This session was closed: reload the page.")
        entry.workdir.mkdir(parents=True, exist_ok=True)
        return entry.workdir

    def close(self, key: str, reason: str | None = None) -> bool:
        """Close a session (its tab went away, or ``reason`` to tell its user); True if it was open."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None and reason:
                self._remember(key, reason)
        if entry is None:
            return False
        _close(entry)
        return True

    def sweep(self) -> int:
        """Close sessions idle for longer than the time-to-live (not while they track); returns how many."""
        now = time.monotonic()
        expired = []
        with self._lock:
            for key, entry in list(self._entries.items()):
                if _busy(entry):  # a long run counts as use: the time-to-live starts when it ends
                    entry.last_used = now
                elif now - entry.last_used > self.ttl_s:
                    expired.append(self._entries.pop(key))
                    self._remember(
                        key,
                        f"Your session was closed after {self.ttl_s / 60:.0f} minutes without use. "
                        "Upload your video again (or restore a downloaded session file).",
                    )
        for entry in expired:
            _close(entry)
        return len(expired)

    def close_all(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            _close(entry)
        shutil.rmtree(self.root, ignore_errors=True)

    def _make_room(self) -> list[Entry]:
        """Entries to close so one more fits (lock held): the least recently used idle ones."""
        closing = []
        while len(self._entries) >= self.max_sessions:
            victim = next((k for k, e in self._entries.items() if not _busy(e)), None)
            if victim is None:
                raise SessionError(
                    f"The app is busy: all {self.max_sessions} sessions are tracking videos. "
                    "Try again in a minute."
                )
            closing.append(self._entries.pop(victim))
            self._remember(
                victim,
                "Your session was closed to make room for another user (the app keeps "
                f"{self.max_sessions} sessions). Upload your video again (or restore a downloaded session "
                "file).",
            )
        return closing

    def _remember(self, key: str, reason: str) -> None:
        self._closed[key] = reason
        while len(self._closed) > CLOSED_NOTES_KEPT:
            self._closed.popitem(last=False)


def _busy(entry: Entry) -> bool:
    session = entry.interaction.session
    return session is not None and session.is_propagating


def _close(entry: Entry) -> None:
    entry.interaction.close()
    shutil.rmtree(entry.workdir, ignore_errors=True)


def _safe(key: str) -> str:
    """A folder name for a key: distinct keys never share a folder."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]
