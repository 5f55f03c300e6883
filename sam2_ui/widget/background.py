"""One background job at a time, on a daemon thread: how the notebook widget tracks without blocking the
kernel (widget callbacks do not run while a cell executes, so Stop must find the kernel idle)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class BackgroundRun:
    """Runs jobs on a thread named ``name``; a job started while another runs is refused."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self, job: Callable[[], None]) -> threading.Thread | None:
        """Start ``job``; None (nothing started) if one is still running."""
        with self._lock:
            if self.running:
                return None
            self.thread = threading.Thread(target=job, name=self.name, daemon=True)
        self.thread.start()
        return self.thread

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s for the job to end; True if none is running any more."""
        thread = self.thread
        if thread is not None:
            thread.join(timeout)
        return not self.running
