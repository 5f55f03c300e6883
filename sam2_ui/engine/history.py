"""Undo and redo: each edit is one `Step` holding what it changed, before and after.

A step records the prompt log actions it appended, the mask entries it replaced (old and new `MaskEntry`,
which are immutable and shared with the store, so a step costs references, not pixels), the objects before
and after if it changed them, and the per-object prompt clocks it moved. Undo puts the "before" side back,
redo the "after" side: the masks after an undo are the very entries that were there before the step.

The prompt log is the actions of the steps up to the cursor. Steps that fall off the bottom of a bounded
history keep their actions in ``base``, so the log stays complete for replay and saving.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .masks import Key, MaskEntry, MaskStore
from .objects import ObjectRegistry, Snapshot
from .prompts import Action

DEFAULT_MAX_STEPS = 200


@dataclass
class Step:
    """One undoable edit."""

    label: str
    actions: tuple[Action, ...] = ()
    masks: dict[Key, tuple[MaskEntry | None, MaskEntry | None]] = field(default_factory=dict)
    objects: tuple[Snapshot, Snapshot] | None = None
    clocks: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.actions or self.masks or self.objects or self.clocks)


class Change:
    """Records an edit as it is made, so it can become a `Step` or be rolled back if the edit fails."""

    def __init__(self, label: str, store: MaskStore, objects: ObjectRegistry, clocks: dict[int, int]):
        self.label = label
        self.actions: list[Action] = []
        self._store = store
        self._objects = objects
        self._clocks = clocks
        self._masks: dict[Key, tuple[MaskEntry | None, MaskEntry | None]] = {}
        self._objects_before: Snapshot | None = None
        self._clock_changes: dict[int, tuple[int | None, int | None]] = {}

    def put_mask(self, frame: int, obj: int, entry: MaskEntry | None) -> None:
        key = (frame, obj)
        before = self._masks[key][0] if key in self._masks else self._store.get(frame, obj)
        self._masks[key] = (before, entry)
        self._store.put(frame, obj, entry)

    def edit_objects(self, edit: Callable[[ObjectRegistry], object]) -> object:
        if self._objects_before is None:
            self._objects_before = self._objects.snapshot()
        return edit(self._objects)

    def set_clock(self, obj: int, clock: int | None) -> None:
        before = self._clock_changes[obj][0] if obj in self._clock_changes else self._clocks.get(obj)
        self._clock_changes[obj] = (before, clock)
        _set_clock(self._clocks, obj, clock)

    def step(self) -> Step:
        masks = {k: (b, a) for k, (b, a) in self._masks.items() if b is not a}
        clocks = {o: (b, a) for o, (b, a) in self._clock_changes.items() if b != a}
        objects = None
        if self._objects_before is not None and self._objects_before != self._objects.snapshot():
            objects = (self._objects_before, self._objects.snapshot())
        return Step(self.label, tuple(self.actions), masks, objects, clocks)

    def rollback(self) -> None:
        """Undo everything recorded so far (the edit failed half-way)."""
        apply_side(self.step(), self._store, self._objects, self._clocks, after=False)


def apply_side(
    step: Step, store: MaskStore, objects: ObjectRegistry, clocks: dict[int, int], after: bool
) -> None:
    """Put the "after" (redo) or "before" (undo) side of a step into the session's state."""
    side = 1 if after else 0
    for (frame, obj), entries in step.masks.items():
        store.put(frame, obj, entries[side])
    if step.objects is not None:
        objects.restore(step.objects[side])
    for obj, values in step.clocks.items():
        _set_clock(clocks, obj, values[side])


def _set_clock(clocks: dict[int, int], obj: int, value: int | None) -> None:
    if value is None:
        clocks.pop(obj, None)
    else:
        clocks[obj] = value


class History:
    """Steps with a cursor: steps before it are applied, steps after it can be redone."""

    def __init__(self, max_steps: int = DEFAULT_MAX_STEPS, base: list[Action] | None = None) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}")
        self.max_steps = max_steps
        self.base: list[Action] = list(base or [])
        self.steps: list[Step] = []
        self.cursor = 0

    @property
    def can_undo(self) -> bool:
        return self.cursor > 0

    @property
    def can_redo(self) -> bool:
        return self.cursor < len(self.steps)

    def push(self, step: Step) -> None:
        """Append a step after the cursor; the steps that could have been redone are dropped."""
        del self.steps[self.cursor :]
        self.steps.append(step)
        self.cursor += 1
        while len(self.steps) > self.max_steps:
            self.base.extend(self.steps.pop(0).actions)
            self.cursor -= 1

    def undo(self) -> Step | None:
        if not self.can_undo:
            return None
        self.cursor -= 1
        return self.steps[self.cursor]

    def redo(self) -> Step | None:
        if not self.can_redo:
            return None
        self.cursor += 1
        return self.steps[self.cursor - 1]

    def log(self) -> list[Action]:
        """Every action in effect, oldest first."""
        return self.base + [action for step in self.steps[: self.cursor] for action in step.actions]
