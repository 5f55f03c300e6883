"""Reading a `Session`: the precision it runs in, prompts per frame, masks, stale and doubtful frames, mask
quality, the memory view.

`SessionQueries` is part of `Session` (a mixin over the session's state and locks); every read takes the
session's lock briefly, so a UI thread can read while a tracking run goes on.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from model.loading.precision import Precision

from .masks import PROPAGATION, MaskEntry
from .memory_view import MemoryView
from .prompts import Action, FramePrompts
from .quality import doubt_reasons, doubtful_frames


class SessionQueries:
    """Part of `Session` (see the module docstring)."""

    @property
    def precision(self) -> Precision:
        """The mode the network runs in: "bf16" (bf16 autocast) or "fp32". Masks are bool either way."""
        return self._executor.precision

    @property
    def precision_label(self) -> str:
        """`precision` for people, with the device: "bf16 autocast on CPU (AVX-512 BF16)", "fp32 on CUDA"."""
        return self._executor.precision_label

    def prompts(self, frame: int) -> dict[int, FramePrompts]:
        """The prompts on a frame: object id -> `FramePrompts` (points (x, y, positive), box, mask)."""
        frame = self._check_frame(frame)
        with self._lock:
            return self._state.table.on_frame(frame)

    def prompted_frames(self, obj: int | None = None) -> list[int]:
        """Frames holding prompts (of one object, or of any)."""
        with self._lock:
            return self._state.table.frames(obj)

    def find_point(
        self, frame: int, x: float, y: float, radius: float | None = None
    ) -> tuple[int, int] | None:
        """The click nearest (x, y) on a frame within ``radius`` frame pixels, as (object id, index).

        What a front end needs to delete a point by clicking it. The default radius is 2% of the shorter
        frame side (at least 3 pixels), about the size the markers are drawn at.
        """
        frame = self._check_frame(frame)
        if radius is None:
            radius = max(3.0, 0.02 * min(self.size))
        best, best_d = None, float(radius)
        with self._lock:
            for obj, prompts in self._state.table.on_frame(frame).items():
                for i, (px, py, _) in enumerate(prompts.points):
                    d = float(np.hypot(px - x, py - y))
                    if d <= best_d:
                        best, best_d = (obj, i), d
        return best

    @property
    def prompt_log(self) -> list[Action]:
        """Every predictor call in effect, oldest first (what `save` writes and replay runs)."""
        with self._lock:
            return self._state.history.log()

    def masks(self, frame: int) -> dict[int, np.ndarray]:
        """The masks on a frame: object id -> H, W bool (new arrays).

        Objects never segmented on the frame are absent; one tracked there but not found has an empty mask.
        """
        frame = self._check_frame(frame)
        with self._lock:
            entries = self._state.store.entries(frame)
        return {obj: entry.mask(self._state.store.shape) for obj, entry in entries.items()}

    def mask(self, frame: int, obj: int) -> np.ndarray | None:
        frame = self._check_frame(frame)
        with self._lock:
            entry = self._state.store.get(frame, obj)
        return None if entry is None else entry.mask(self._state.store.shape)

    def tracked_frames(self, obj: int | None = None) -> list[int]:
        """Frames with a mask (of one object, or of any)."""
        with self._lock:
            return sorted({f for f, _ in self._state.store.keys(obj)})

    def stale_frames(self, obj: int | None = None) -> list[int]:
        """Frames with a tracked mask computed before a later change to its object's prompts.

        Tracking again over them (`propagate`) refreshes them. Frames with prompts are never stale: their
        masks come from those prompts. After a correction kept as a conditioning frame (the default) these
        are exactly the frames the next run over them changes, since every tracked frame reads it; with
        ``corrections_as_conditioning=False`` only a run that starts after the corrected frame reads it, and
        a run over it replaces it (`replaced_prompt_frames`).
        """
        return self._tracked_frames_where(
            obj, lambda _, o, entry: entry.clock < self._state.prompt_clocks.get(o, -1)
        )

    def replaced_prompt_frames(self, obj: int | None = None) -> list[int]:
        """Frames whose prompts the shown mask does not follow: a tracking run computed the frame again over
        them (of one object, or of any).

        Happens only with ``corrections_as_conditioning=False`` (see `open`): a correction on a tracked
        frame is not a conditioning frame, so the next run over that frame replaces its mask. A new prompt
        on the frame shows its mask again.
        """
        return self._tracked_frames_where(obj, lambda frame, o, _: (frame, o) in self._state.table)

    def _tracked_frames_where(
        self, obj: int | None, keep: Callable[[int, int, MaskEntry], bool]
    ) -> list[int]:
        """Frames holding a mask of origin "propagation" (of ``obj``, or of any) for which
        ``keep(frame, object, entry)`` holds, read under the session's lock."""
        with self._lock:
            return sorted(
                {
                    frame
                    for (frame, o), entry in self._state.store.items()
                    if (obj is None or o == obj) and entry.origin == PROPAGATION and keep(frame, o, entry)
                }
            )

    def doubtful_frames(self, obj: int | None = None) -> list[int]:
        """Frames where a mask of one object (or of any) deserves a second look, by `doubt_rule`.

        A mask is doubtful where the model rated it poorly, was unsure the object is there, or where it
        changed size suddenly from the object's previous mask (see `quality.DoubtRule`). Frames with the
        object's prompts are never doubtful: the user decided them.
        """
        with self._lock:
            objects = self._state.objects.ids if obj is None else [self._state.objects.get(obj).id]
            frames: set[int] = set()
            for o in objects:
                entries = self._state.store.of_object(o)
                frames.update(doubtful_frames(entries, set(self._state.table.frames(o)), self.doubt_rule))
        return sorted(frames)

    def doubt_reasons(self, obj: int) -> dict[int, str]:
        """One object's doubtful frames, each with a sentence saying why (see `doubtful_frames`)."""
        with self._lock:
            obj = self._state.objects.get(obj).id
            entries = self._state.store.of_object(obj)
            return doubt_reasons(entries, set(self._state.table.frames(obj)), self.doubt_rule)

    def mask_quality(self, frame: int) -> dict[int, tuple[float | None, float | None, int]]:
        """Object id -> (predicted IoU, object score logit, area in pixels) of each mask on a frame.

        The IoU and score are what the model said of the mask (None when unknown, as for masks loaded from
        a session file saved before they were kept); a score > 0 means the model judged the object present.
        """
        frame = self._check_frame(frame)
        with self._lock:
            entries = self._state.store.entries(frame)
        return {obj: (e.iou, e.score, e.area) for obj, e in entries.items()}

    def memory_view(self, frame: int, obj: int | None = None) -> MemoryView:
        """Which frames ``obj``'s (default: the selected object's) memory bank gives ``frame`` and its object
        score on every frame, read from the predictor's state and the stored masks (see `MemoryView`).

        After undo, redo or loading, the predictor's state is rebuilt on the next edit; until then the view
        says so instead of showing a memory that no longer matches the prompts.
        """
        frame = self._check_frame(frame)
        with self._lock:
            obj = self._check_object(obj)
            name = self._state.objects.get(obj).name
            scores = [None] * self.num_frames
            for f, entry in self._state.store.of_object(obj).items():
                scores[f] = entry.score
            prompted = (frame, obj) in self._state.table
        layout, note = None, ""
        with self._model_lock:  # between two tracked frames during a run
            if self._closed:
                note = "This session is closed: its memory was released."
            elif not self._executor.holds_state:
                note = (
                    "The memory bank lives in the GPU worker that runs the model (ZeroGPU), not in this "
                    "process: the memory view shows it where the model runs in the same process."
                )
            elif self._propagating or self._executor.reflects(self._state.history.log()):
                layout = self._executor.memory_layout(frame, obj)
                if layout is None:
                    note = f"{name} has no prompt yet: click on it to give the model its first memory."
            else:
                note = "The memory bank is rebuilt from the prompts at the next click or tracking run."
        return MemoryView(
            frame=frame,
            obj=obj,
            name=name,
            num_frames=self.num_frames,
            conditioning=tuple(layout.conditioning) if layout else (),
            recent=tuple(layout.recent) if layout else (),
            pointers=tuple(layout.pointers) if layout else (),
            reverse=bool(layout.reverse) if layout else False,
            prompted=prompted,
            scores=tuple(scores),
            note=note,
        )
