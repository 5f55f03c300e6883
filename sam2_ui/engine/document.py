"""The session's document: what a person made, apart from the machinery that computes it.

`SessionState` holds the objects and the selection, the prompts per frame (`PromptTable`), the masks
(`MaskStore`), the edit clocks that tell stale masks, and the undo history. It knows how each prompt log
action changes masks (`apply`), how undo and redo put a step back (`restore`), and how the whole of it is
written to and read from a session file (`to_document`, `from_document`), and answers the questions asked
of it (stale, replaced and doubtful frames). It calls no model: `Session` runs
the predictor, holds the locks and offers the public API, and hands results to the state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.images.rle import decode_rle, encode_rle

from .history import Change, History, Step, apply_side
from .masks import ORIGINS, PROMPT, PROPAGATION, MaskEntry, MaskStore
from .objects import ObjectInfo, ObjectRegistry
from .prompts import (
    PROMPT_ACTIONS,
    Action,
    ClearFrame,
    ForgetObject,
    PromptTable,
    Reset,
    action_from_json,
    action_to_json,
)
from .quality import DoubtRule, doubt_reasons, doubtful_frames

Scores = dict[int, tuple[float, float]]  # object id -> (predicted IoU, object score logit)


class SessionState:
    """Objects, selection, prompts, masks, clocks and history of one session (no locks: the owner locks).

    ``clock`` counts edits and never goes back, so "computed before that edit" is a comparison between a
    mask's clock and its object's prompt clock.
    """

    def __init__(self, shape: tuple[int, int], max_undo: int) -> None:
        self.store = MaskStore(shape)  # H, W of every mask
        self.objects = ObjectRegistry()
        self.table = PromptTable()
        self.history = History(max_undo)
        self.prompt_clocks: dict[int, int] = {}  # object -> clock of its last prompt change
        self.clock = 0
        self.selected: int | None = None
        self.max_undo = max_undo

    # ------------------------------------------------------------------------------------------ edits
    def change(self, label: str) -> Change:
        """Start recording an edit (see `history.Change`)."""
        return Change(label, self.store, self.objects, self.prompt_clocks)

    def tick(self) -> int:
        """The clock of a new edit."""
        self.clock += 1
        return self.clock

    def apply(self, change: Change, action: Action, result: Any, clock: int, non_overlap: bool) -> None:
        """Fold one predictor action and its result into the masks, clocks and prompts.

        result: for a prompt, ``(frame, {obj: mask}, scores)`` of that frame. ``non_overlap``: the predictor
        gives each pixel to one object, so a prompt also changes other objects' masks on its frame.
        """
        if isinstance(action, PROMPT_ACTIONS):
            frame, masks, scores = result
            updated = [action.obj]
            if non_overlap:
                updated += [o for o in self.store.entries(frame) if o != action.obj and o in masks]
            for obj in updated:
                iou, score = scores.get(obj, (None, None))
                change.put_mask(frame, obj, MaskEntry.from_mask(masks[obj], PROMPT, clock, iou, score))
            change.set_clock(action.obj, clock)
        elif isinstance(action, ClearFrame):
            change.put_mask(action.frame, action.obj, None)
            change.set_clock(action.obj, clock)
        elif isinstance(action, ForgetObject):
            for frame, obj in self.store.keys(action.obj):
                change.put_mask(frame, obj, None)
            change.set_clock(action.obj, clock)
        elif isinstance(action, Reset):
            for frame, obj in self.store.keys():
                change.put_mask(frame, obj, None)
            for obj in list(self.prompt_clocks):
                change.set_clock(obj, clock)
        self.table.apply(action)

    def put_tracked(
        self, change: Change, frame: int, masks: dict[int, np.ndarray], scores: Scores, clock: int
    ) -> None:
        """Store one tracked frame's masks.

        On a frame with the object's own prompt the mask keeps origin "prompt" when tracking gave back the
        prompt's mask (a conditioning frame); a different mask means tracking computed the frame again over
        the prompt (a correction kept out of the conditioning frames) and gets origin "propagation", which
        `Session.replaced_prompt_frames` reports.
        """
        for obj, mask in masks.items():
            origin = PROPAGATION
            if (frame, obj) in self.table:
                kept = self.store.get(frame, obj)
                if kept is None or (
                    kept.origin == PROMPT and np.array_equal(kept.mask(self.store.shape), mask)
                ):
                    origin = PROMPT
            iou, score = scores.get(obj, (None, None))
            change.put_mask(frame, obj, MaskEntry.from_mask(mask, origin, clock, iou, score))

    def restore(self, step: Step, after: bool) -> None:
        """Put a history step's "before" (undo) or "after" (redo) side back."""
        apply_side(step, self.store, self.objects, self.prompt_clocks, after=after)
        self.table = PromptTable.from_log(self.history.log())

    def rebuild_from(self, log: list[Action]) -> None:
        """After a replay of ``log``: the history starts there (nothing to undo) and prompts follow it."""
        self.history = History(self.max_undo, base=list(log))
        self.table = PromptTable.from_log(log)

    # -------------------------------------------------------------------------------------- queries
    def selected_object(self) -> int | None:
        """The selected object while it exists (a removed object's selection reads as none), or None."""
        return self.selected if self.selected in self.objects else None

    def find_point(self, frame: int, x: float, y: float, radius: float) -> tuple[int, int] | None:
        """The click nearest (x, y) on a frame within ``radius``, as (object id, index), or None."""
        best, best_d = None, float(radius)
        for obj, prompts in self.table.on_frame(frame).items():
            for i, (px, py, _) in enumerate(prompts.points):
                d = float(np.hypot(px - x, py - y))
                if d <= best_d:
                    best, best_d = (obj, i), d
        return best

    def stale_frames(self, obj: int | None) -> list[int]:
        """Frames with a tracked mask computed before a later change to its object's prompts.

        Tracking again over them (`propagate`) refreshes them. Frames with prompts are never stale: their
        masks come from those prompts. After a correction kept as a conditioning frame (the default) these
        are exactly the frames the next run over them changes, since every tracked frame reads it; with
        ``corrections_as_conditioning=False`` only a run that starts after the corrected frame reads it, and
        a run over it replaces it (`replaced_prompt_frames`).
        """
        return self._tracked_frames_where(
            obj, lambda _, o, entry: entry.clock < self.prompt_clocks.get(o, -1)
        )

    def replaced_prompt_frames(self, obj: int | None) -> list[int]:
        """Frames whose prompts the shown mask does not follow: a tracking run computed the frame again over
        them (of one object, or of any).

        Happens only with ``corrections_as_conditioning=False`` (see `open`): a correction on a tracked
        frame is not a conditioning frame, so the next run over that frame replaces its mask. A new prompt
        on the frame shows its mask again.
        """
        return self._tracked_frames_where(obj, lambda frame, o, _: (frame, o) in self.table)

    def _tracked_frames_where(
        self, obj: int | None, keep: Callable[[int, int, MaskEntry], bool]
    ) -> list[int]:
        """Frames holding a mask of origin "propagation" (of ``obj``, or of any) for which
        ``keep(frame, object, entry)`` holds."""
        return sorted(
            {
                frame
                for (frame, o), entry in self.store.items()
                if (obj is None or o == obj) and entry.origin == PROPAGATION and keep(frame, o, entry)
            }
        )

    def doubtful_frames(self, obj: int | None, rule: DoubtRule) -> list[int]:
        """Frames where a mask of one object (or of any) deserves a second look, by `doubt_rule`.

        A mask is doubtful where the model rated it poorly, was unsure the object is there, or where it
        changed size suddenly from the object's previous mask (see `quality.DoubtRule`). Frames with the
        object's prompts are never doubtful: the user decided them.
        """
        objects = self.objects.ids if obj is None else [self.objects.get(obj).id]
        frames: set[int] = set()
        for o in objects:
            frames.update(doubtful_frames(self.store.of_object(o), set(self.table.frames(o)), rule))
        return sorted(frames)

    def doubt_reasons(self, obj: int, rule: DoubtRule) -> dict[int, str]:
        """One object's doubtful frames, each with a sentence saying why."""
        obj = self.objects.get(obj).id
        return doubt_reasons(self.store.of_object(obj), set(self.table.frames(obj)), rule)

    # ------------------------------------------------------------------------------------ documents
    def to_document(self) -> dict[str, Any]:
        """The session-file fields of the document (objects, selection, clocks, log, masks)."""
        return {
            "objects": [{"id": o.id, "name": o.name, "color": list(o.color)} for o in self.objects],
            "next_object_id": self.objects.next_id,
            "selected": self.selected,
            "clock": self.clock,
            "prompt_clocks": {str(obj): clock for obj, clock in sorted(self.prompt_clocks.items())},
            "log": [action_to_json(action) for action in self.history.log()],
            "masks": [
                {
                    "frame": frame,
                    "object": obj,
                    "origin": entry.origin,
                    "clock": entry.clock,
                    "rle": encode_rle(entry.mask(self.store.shape)),
                    **_quality(entry),
                }
                for (frame, obj), entry in self.store.items()
            ],
        }

    def install(self, saved: SavedDocument) -> None:
        """Take the objects and selection of a read document, and, if it was read with its masks, those masks,
        the clocks and the log as the history's base; without masks the caller replays the log."""
        self.objects.restore(tuple(saved.objects))
        self.objects.next_id = max(self.objects.next_id, saved.next_id)
        self.selected = saved.selected
        if saved.entries is not None:
            for (frame, obj), entry in saved.entries.items():
                self.store.put(frame, obj, entry)
            self.prompt_clocks.update(saved.prompt_clocks)
            self.clock = saved.clock
            self.rebuild_from(saved.log)


@dataclass
class SavedDocument:
    """The document part of a session file, read and checked (see `from_document`); ``entries`` is None
    when it was read without its masks (they are recomputed by replaying ``log``)."""

    objects: list[ObjectInfo]
    next_id: int
    selected: int | None
    log: list[Action]
    entries: dict[tuple[int, int], MaskEntry] | None
    prompt_clocks: dict[int, int]
    clock: int


def from_document(document: dict[str, Any], bounds: Any, with_masks: bool) -> SavedDocument:
    """Read the document fields of a session file; ``bounds`` checks every frame, object, count and mask
    against the video (`persist._Bounds`). Raises KeyError, ValueError or TypeError for a bad file."""
    objects = [
        ObjectInfo(int(o["id"]), str(o["name"]), tuple(int(c) for c in o["color"]))
        for o in document["objects"]
    ]
    for info in objects:
        bounds.check_object(info.id)
    records = document["log"]
    bounds.check_count(len(records), "prompt log records")
    for record in records:
        bounds.check_action(record)
    log = [action_from_json(record) for record in records]
    entries = None
    if with_masks:
        entries = {}
        bounds.check_count(len(document["masks"]), "masks")
        for record in document["masks"]:
            if record["origin"] not in ORIGINS:
                raise ValueError(f"unknown mask origin {record['origin']!r}")
            bounds.check_frame(record["frame"])
            bounds.check_object(record["object"])
            mask = decode_rle(bounds.checked_rle(record["rle"]))
            iou, score = _number(record, "iou"), _number(record, "score")
            entries[int(record["frame"]), int(record["object"])] = MaskEntry.from_mask(
                mask, record["origin"], int(record["clock"]), iou, score
            )
    selected = document.get("selected")
    return SavedDocument(
        objects,
        int(document["next_object_id"]),
        None if selected is None else int(selected),
        log,
        entries,
        {int(obj): int(clock) for obj, clock in document["prompt_clocks"].items()},
        int(document["clock"]),
    )


def _quality(entry: MaskEntry) -> dict[str, float]:
    values = {"iou": entry.iou, "score": entry.score}
    return {key: value for key, value in values.items() if value is not None}


def _number(record: dict[str, Any], key: str) -> float | None:
    value = record.get(key)
    return None if value is None else float(value)
