"""Ctrl-C (SIGINT) and SIGTERM (SLURM's time limit, torchrun stopping its workers) end a run cleanly: the
step in progress finishes, ``last.pt`` is saved, and the command says how to resume.

Stopping between steps rather than inside one keeps the saved weights, optimizer state and step count in
agreement (an interrupted ``optimizer.step()`` would leave some parameters updated and others not). A second
Ctrl-C stops at once, without saving; ``last.pt`` then holds the previous save.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Installs the handlers while the ``with`` block runs; ``requested`` turns True on the first signal.

    Only the main thread can install signal handlers; elsewhere (a notebook's worker thread) the block runs
    without them and Ctrl-C raises ``KeyboardInterrupt`` as usual.
    """

    def __init__(self, announce: bool = True) -> None:
        self.requested = False
        self.announce = announce
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.requested:
            self.__exit__()
            raise KeyboardInterrupt
        self.requested = True
        if self.announce:
            name = "Ctrl-C" if number == signal.SIGINT else signal.Signals(number).name
            print(
                f"\n{name}: stopping after this step and saving last.pt (Ctrl-C again stops at once, "
                "without saving).",
                file=sys.stderr,
                flush=True,
            )
