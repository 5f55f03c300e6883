"""Decoding the next frames of a tracking run on a background thread, a few frames ahead of the tracker.

Tracking reads frames in order, forwards or backwards. `FramePrefetcher` watches which frames are read,
takes the direction from two neighbouring reads (t, then t + 1 or t - 1) or from an explicit list of the
frames that come next, and keeps the network inputs of the next ``depth`` frames decoded and resized in a
small buffer, so the image encoder does not wait for JPEG or video decoding. The buffer holds at most
``depth`` frames whatever the length of the video; frames read out of order cancel what was prepared.

A frame the worker cannot decode is not reported by the worker: the reader decodes it again itself when
(and only when) it asks for that frame, and so meets the very error it would have met without prefetching.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice

import torch

from model.video.frame_source import FrameSource

IDLE_EXIT_S = 2.0
"""A worker with nothing to do ends after this many seconds; the next read that needs one starts another."""


@dataclass
class PrefetchStats:
    """What the prefetcher did, for tests and benchmarks."""

    served: int = 0  # reads answered from the buffer
    decoded: int = 0  # frames the worker decoded
    dropped: int = 0  # decoded frames thrown away unread (the reads went elsewhere)
    failed: int = 0  # frames the worker could not decode (left to the reader, who sees the error)
    peak_held: int = 0  # most decoded frames held in the buffer at once


class FramePrefetcher:
    """Keeps the network inputs of the next ``depth`` frames of a tracking run ready.

    Arguments:
      frames: the video; its own lock keeps the worker and other readers (display) from decoding at once.
      image_size: the network's square input size.
      depth: how many frames to prepare ahead (at least 1).
      pin_memory: put prepared frames in page-locked memory, so a CUDA copy can be asynchronous.
      is_cached: tells frames that need no input because their features are cached; called on the
        reading thread only.

    Call `note_read` on every read of a frame (cached or not) and `take` before decoding one.
    """

    def __init__(
        self,
        frames: FrameSource,
        image_size: int,
        depth: int = 4,
        pin_memory: bool = False,
        is_cached: Callable[[int], bool] | None = None,
    ) -> None:
        if depth < 1:
            raise ValueError(f"prefetch depth must be at least 1, got {depth}")
        self.frames = frames
        self.image_size = int(image_size)
        self.depth = int(depth)
        self.pin_memory = pin_memory
        self.stats = PrefetchStats()
        self._is_cached = is_cached or (lambda index: False)
        # Reading side (one reader thread): the last frame read, the direction, the announced frames.
        self._last: int | None = None
        self._step = 0  # +1 forward, -1 backward, 0 unknown
        self._upcoming: deque[int] | None = None
        # Shared with the worker, under the condition's lock.
        self._cond = threading.Condition()
        self._wanted: list[int] = []  # frames to have ready, next first
        self._ready: dict[int, torch.Tensor] = {}  # always a subset of _wanted
        self._failed: set[int] = set()
        self._busy: int | None = None  # the frame being decoded
        self._thread: threading.Thread | None = None
        self._stop = False
        self._closed = False

    # ------------------------------------------------------------------ reading side
    def take(self, index: int) -> torch.Tensor | None:
        """The prepared ``3, S, S`` input of frame ``index``, or None if the caller must decode it.

        Waits if the worker is decoding that very frame right now. None for a frame the worker failed on.
        """
        with self._cond:
            while self._busy == index and index in self._wanted and not self._stop:
                self._cond.wait()
            image = self._ready.pop(index, None)
            self._failed.discard(index)
            if image is not None:
                self.stats.served += 1
            elif index in self._wanted:  # not started: the caller decodes it, the worker must not
                self._wanted = [t for t in self._wanted if t != index]
            return image

    def note_read(self, index: int) -> None:
        """Record that frame ``index`` was read, and prepare the frames that should follow it."""
        index = int(index)
        if self._upcoming is not None:
            self._follow_announced(index)
        if self._last is not None and index != self._last:
            self._step = index - self._last if abs(index - self._last) == 1 else 0
        self._last = index
        if self._upcoming is not None:
            candidates = list(islice(self._upcoming, self.depth))
        elif self._step:
            candidates = [index + self._step * k for k in range(1, self.depth + 1)]
        else:
            candidates = []
        self._want([t for t in candidates if 0 <= t < len(self.frames) and not self._is_cached(t)])

    def announce(self, frames: Iterable[int]) -> None:
        """The frames that will be read next, in order (a tracking run's order): prepare the first ones.

        The announcement is followed while reads go through it in order, and forgotten at the first read
        of a frame outside it.
        """
        self._upcoming = deque(int(t) for t in frames)
        upcoming = islice(self._upcoming, self.depth)
        self._want([t for t in upcoming if 0 <= t < len(self.frames) and not self._is_cached(t)])

    def cancel(self) -> None:
        """Forget the direction and any announcement, and drop what was prepared."""
        self._last, self._step, self._upcoming = None, 0, None
        self._want([])

    def stop(self) -> None:
        """Cancel, and end the worker thread (waiting for a decode in progress); it restarts when needed."""
        self.cancel()
        with self._cond:
            self._stop = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._cond:
            self._stop = False

    def close(self) -> None:
        """Stop for good: later reads are not prefetched."""
        with self._cond:
            self._closed = True
        self.stop()

    @property
    def held(self) -> int:
        """How many prepared frames the buffer holds now."""
        with self._cond:
            return len(self._ready)

    @property
    def worker_alive(self) -> bool:
        with self._cond:
            return self._thread is not None and self._thread.is_alive()

    def _follow_announced(self, index: int) -> None:
        upcoming = self._upcoming
        if index == self._last and index not in upcoming:
            return  # the same frame again (another object on it)
        if index not in upcoming:
            self._upcoming = None
            return
        while upcoming.popleft() != index:
            pass

    def _want(self, frames: list[int]) -> None:
        with self._cond:
            if self._closed:
                frames = []
            for index in [t for t in self._ready if t not in frames]:
                del self._ready[index]
                self.stats.dropped += 1
            self._failed.intersection_update(frames)
            self._wanted = frames
            if frames and not self._closed and self._thread is None:
                self._thread = threading.Thread(target=self._work, name="sam2-frame-prefetch", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    # ------------------------------------------------------------------ worker side
    def _next_frame(self) -> int | None:
        """The first wanted frame not yet prepared; waits for one. None when the worker should end."""
        with self._cond:
            while True:
                if self._stop or self._closed:
                    break
                todo = [t for t in self._wanted if t not in self._ready and t not in self._failed]
                if todo:
                    self._busy = todo[0]
                    return todo[0]
                if not self._cond.wait(timeout=IDLE_EXIT_S) and not self._wanted:
                    break
            self._thread = None
            self._cond.notify_all()
            return None

    def _work(self) -> None:
        while (index := self._next_frame()) is not None:
            try:
                image = self.frames.network_input(index, self.image_size)  # 3, S, S float32 on CPU
                if self.pin_memory:
                    image = image.pin_memory()
            except Exception:  # the reader decodes this frame again and gets the error itself
                image = None
            with self._cond:
                self._busy = None
                if index not in self._wanted:
                    if image is not None:
                        self.stats.dropped += 1
                elif image is None:
                    self._failed.add(index)
                    self.stats.failed += 1
                else:
                    self._ready[index] = image
                    self.stats.decoded += 1
                    self.stats.peak_held = max(self.stats.peak_held, len(self._ready))
                self._cond.notify_all()
