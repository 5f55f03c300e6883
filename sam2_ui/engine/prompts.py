"""The prompt log: every call the engine made on the video predictor, as small immutable records.

Replaying the log in order on a fresh inference state puts the predictor exactly where it was (the network
is deterministic), which is how undo, redo and `Session.load` restore it. Each record is one predictor call
(or, for `Propagate`, one tracking run over a recorded number of frames), and `PromptTable.apply` folds the
same records into the prompts a person sees on each frame.

Coordinates are frame pixels, SAM's convention: the centre of pixel (i, j) is at x = i, y = j.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model.images.rle import decode_rle, encode_rle

Point = tuple[float, float, bool]  # x, y, positive
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 with x0 <= x1, y0 <= y1


@dataclass(frozen=True)
class AddPoint:
    """One click added to an object's clicks on a frame (``clear_old_points=False``)."""

    frame: int
    obj: int
    x: float
    y: float
    positive: bool


@dataclass(frozen=True)
class SetPoints:
    """An object's whole point and box prompt on a frame, replacing what it had (``clear_old_points=True``).

    Used for a new box (kept with the clicks already there) and for a removed click (the others re-sent).
    """

    frame: int
    obj: int
    points: tuple[Point, ...]
    box: Box | None


@dataclass(frozen=True, eq=False)
class SetMask:
    """A mask prompt (``add_new_mask``): replaces the object's clicks and box on that frame."""

    frame: int
    obj: int
    mask: np.ndarray = field(repr=False)  # H, W bool, read-only


@dataclass(frozen=True)
class ClearFrame:
    """Remove one object's prompts on one frame (``clear_all_prompts_in_frame``)."""

    frame: int
    obj: int


@dataclass(frozen=True)
class ForgetObject:
    """Drop an object from the predictor (``remove_object``): its prompts and tracking are gone."""

    obj: int


@dataclass(frozen=True)
class Reset:
    """Drop every object from the predictor (``reset_state``)."""


@dataclass(frozen=True)
class Leg:
    """One ``propagate_in_video`` run: ``count`` frames from ``start``, backwards if ``reverse``."""

    start: int
    count: int
    reverse: bool


@dataclass(frozen=True)
class Propagate:
    """A tracking run as it happened: its legs with the frames actually processed (fewer if cancelled)."""

    legs: tuple[Leg, ...]


Action = AddPoint | SetPoints | SetMask | ClearFrame | ForgetObject | Reset | Propagate
PROMPT_ACTIONS = (AddPoint, SetPoints, SetMask)  # the ones that compute a mask on their frame


# -------------------------------------------------------------------------------------------- table
@dataclass(frozen=True, eq=False)
class FramePrompts:
    """What one object was given on one frame: clicks and an optional box, or a mask."""

    points: tuple[Point, ...] = ()
    box: Box | None = None
    mask: np.ndarray | None = field(default=None, repr=False)

    @property
    def empty(self) -> bool:
        return not self.points and self.box is None and self.mask is None


class PromptTable:
    """(frame, object) -> `FramePrompts`: the prompts in effect after a sequence of actions."""

    def __init__(self) -> None:
        self._prompts: dict[tuple[int, int], FramePrompts] = {}

    @classmethod
    def from_log(cls, log: list[Action]) -> PromptTable:
        table = cls()
        for action in log:
            table.apply(action)
        return table

    def get(self, frame: int, obj: int) -> FramePrompts:
        return self._prompts.get((frame, obj), FramePrompts())

    def __contains__(self, key: tuple[int, int]) -> bool:
        return key in self._prompts

    def on_frame(self, frame: int) -> dict[int, FramePrompts]:
        return {o: p for (f, o), p in sorted(self._prompts.items()) if f == frame}

    def frames(self, obj: int | None = None) -> list[int]:
        return sorted({f for (f, o) in self._prompts if obj is None or o == obj})

    def objects(self) -> list[int]:
        return sorted({o for (_, o) in self._prompts})

    def apply(self, action: Action) -> None:
        key = (getattr(action, "frame", None), getattr(action, "obj", None))
        if isinstance(action, AddPoint):
            old = self.get(*key)
            point = (action.x, action.y, action.positive)
            self._prompts[key] = FramePrompts(points=(*old.points, point), box=old.box)
        elif isinstance(action, SetPoints):
            self._set(key, FramePrompts(points=action.points, box=action.box))
        elif isinstance(action, SetMask):
            self._prompts[key] = FramePrompts(mask=action.mask)
        elif isinstance(action, ClearFrame):
            self._prompts.pop(key, None)
        elif isinstance(action, ForgetObject):
            for k in [k for k in self._prompts if k[1] == action.obj]:
                del self._prompts[k]
        elif isinstance(action, Reset):
            self._prompts.clear()
        elif not isinstance(action, Propagate):
            raise TypeError(f"not a prompt log action: {action!r}")

    def _set(self, key: tuple[int, int], prompts: FramePrompts) -> None:
        if prompts.empty:
            self._prompts.pop(key, None)
        else:
            self._prompts[key] = prompts


# -------------------------------------------------------------------------------------------- JSON
def action_to_json(action: Action) -> dict[str, Any]:
    if isinstance(action, AddPoint):
        return {
            "type": "add_point",
            "frame": action.frame,
            "object": action.obj,
            "x": action.x,
            "y": action.y,
            "positive": action.positive,
        }
    if isinstance(action, SetPoints):
        return {
            "type": "set_points",
            "frame": action.frame,
            "object": action.obj,
            "points": [[x, y, positive] for x, y, positive in action.points],
            "box": None if action.box is None else list(action.box),
        }
    if isinstance(action, SetMask):
        return {
            "type": "set_mask",
            "frame": action.frame,
            "object": action.obj,
            "mask": encode_rle(action.mask),
        }
    if isinstance(action, ClearFrame):
        return {"type": "clear_frame", "frame": action.frame, "object": action.obj}
    if isinstance(action, ForgetObject):
        return {"type": "forget_object", "object": action.obj}
    if isinstance(action, Reset):
        return {"type": "reset"}
    if isinstance(action, Propagate):
        return {
            "type": "propagate",
            "legs": [{"start": leg.start, "count": leg.count, "reverse": leg.reverse} for leg in action.legs],
        }
    raise TypeError(f"not a prompt log action: {action!r}")


def action_from_json(data: dict[str, Any]) -> Action:
    """The action of `action_to_json`; KeyError/ValueError/TypeError for a malformed record."""
    kind = data["type"]
    if kind == "add_point":
        return AddPoint(
            int(data["frame"]),
            int(data["object"]),
            float(data["x"]),
            float(data["y"]),
            bool(data["positive"]),
        )
    if kind == "set_points":
        box = data["box"]
        return SetPoints(
            int(data["frame"]),
            int(data["object"]),
            tuple((float(x), float(y), bool(p)) for x, y, p in data["points"]),
            None if box is None else tuple(float(v) for v in box),
        )
    if kind == "set_mask":
        return SetMask(int(data["frame"]), int(data["object"]), read_only(decode_rle(data["mask"])))
    if kind == "clear_frame":
        return ClearFrame(int(data["frame"]), int(data["object"]))
    if kind == "forget_object":
        return ForgetObject(int(data["object"]))
    if kind == "reset":
        return Reset()
    if kind == "propagate":
        legs = tuple(Leg(int(g["start"]), int(g["count"]), bool(g["reverse"])) for g in data["legs"])
        return Propagate(legs)
    raise ValueError(f"unknown prompt log record type {kind!r}")


def read_only(mask: np.ndarray) -> np.ndarray:
    """A read-only bool copy: records in the log must never change."""
    mask = np.array(mask, dtype=bool)
    mask.flags.writeable = False
    return mask


# -------------------------------------------------------------------------------------------- versions
_MASK_DIGESTS: weakref.WeakKeyDictionary[SetMask, bytes] = weakref.WeakKeyDictionary()


def action_digest(action: Action) -> bytes:
    """A fingerprint of one record: equal for records that make the predictor do the same thing, wherever
    they were made (a record unpickled in another process has the digest of the original)."""
    if isinstance(action, SetMask):
        digest = _MASK_DIGESTS.get(action)
        if digest is None:
            pixels = hashlib.sha1(np.packbits(action.mask, axis=None).tobytes())
            pixels.update(repr(action.mask.shape).encode())
            head = json.dumps(["set_mask", action.frame, action.obj, pixels.hexdigest()]).encode()
            digest = _MASK_DIGESTS[action] = hashlib.sha1(head).digest()
        return digest
    return hashlib.sha1(json.dumps(action_to_json(action), sort_keys=True).encode()).digest()


def same_action(a: Action, b: Action) -> bool:
    """Whether two records are the same predictor call (the same object, or equal digests)."""
    return a is b or (type(a) is type(b) and action_digest(a) == action_digest(b))


def log_version(log: Sequence[Action]) -> str:
    """The document version of a prompt log: a digest of its records in order ("" for the empty log).

    Two processes holding equal logs compute the same version, so a worker can tell whether the predictor
    state it kept is the one a call expects.
    """
    if not log:
        return ""
    chain = hashlib.sha1()
    for action in log:
        chain.update(action_digest(action))
    return chain.hexdigest()
