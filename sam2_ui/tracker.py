"""The video predictor and its inference state, kept in step with the prompt log.

`Tracker` runs prompt log actions on the predictor and remembers which ones its inference state reflects.
When undo, redo or loading changes the log, `sync` brings the state back: if what was applied is still the
start of the log it only runs the rest; otherwise it resets the state and replays the log from the start
(prompts and tracking runs alike, so corrections and memories are exactly as they were). Nothing here knows
about masks shown to a person, objects' names, or history: that is `Session`'s job.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, NamedTuple

import numpy as np

from model.loading.precision import Precision, describe_precision, inference_autocast
from model.video.video_frames import FrameSource

from .predictor import ScoresFrames, ShowsMemory, VideoPredictor, predictor_device
from .prompts import (
    Action,
    AddPoint,
    ClearFrame,
    ForgetObject,
    Leg,
    Propagate,
    Reset,
    SetMask,
    SetPoints,
)

Scores = dict[int, tuple[float, float]]  # object id -> (predicted IoU, object score logit)


class FrameResult(NamedTuple):
    """One frame's result: its index, object id -> H, W bool mask, and object id -> (predicted IoU,
    object score logit) of those masks (empty for a predictor without ``frame_scores``)."""

    frame: int
    masks: dict[int, np.ndarray]
    scores: Scores


class Tracker:
    """A ``SAM2VideoPredictor`` with one inference state over ``frames``; every predictor call runs in
    ``precision`` ("fp32", or "bf16": under bf16 autocast on the predictor's device)."""

    def __init__(
        self,
        predictor: VideoPredictor,
        frames: FrameSource,
        state_on_cpu: bool = False,
        precision: Precision = "fp32",
    ) -> None:
        self.predictor = predictor
        self.device = predictor_device(predictor)
        self.precision = precision
        self.precision_label = describe_precision(self.device, precision)
        with self.autocast():
            if state_on_cpu:
                self.state = predictor.init_state(frames, offload_state_to_cpu=True)
            else:
                self.state = predictor.init_state(frames)
        self._applied: list[Action] = []
        self._in_sync = True  # False after a predictor call failed half-way: the state is unknown

    def autocast(self) -> AbstractContextManager:
        """The context every network call of this session runs in (a no-op for fp32)."""
        return inference_autocast(self.device, self.precision)

    @property
    def obj_ids(self) -> list[int]:
        return list(self.state["obj_ids"])

    def sync(self, log: Sequence[Action]) -> int:
        """Make the inference state reflect exactly ``log``; returns how many actions were (re)run."""
        applied = self._applied
        if self._in_sync and len(applied) <= len(log) and all(a is b for a, b in zip(applied, log)):
            todo = list(log[len(applied) :])
        else:
            self.predictor.reset_state(self.state)
            self._applied, self._in_sync = [], True
            todo = list(log)
        for action in todo:
            if isinstance(action, Propagate):
                for _ in self.replay_propagation(action):
                    pass
            else:
                self.run(action)
        return len(todo)

    def reflects(self, log: Sequence[Action]) -> bool:
        """Whether the inference state is exactly ``log`` applied (no `sync` needed)."""
        applied = self._applied
        return self._in_sync and len(applied) == len(log) and all(a is b for a, b in zip(applied, log))

    def memory_layout(self, frame: int, obj: int) -> Any:
        """The predictor's ``memory_layout`` of ``obj`` at ``frame``, or None if the object has no prompt in
        the state or the predictor cannot tell."""
        if not isinstance(self.predictor, ShowsMemory) or obj not in self.obj_ids:
            return None
        return self.predictor.memory_layout(self.state, frame, obj)

    def run(self, action: Action) -> FrameResult | None:
        """Run one action that is not a `Propagate`; prompts return their frame's masks and scores (all
        objects)."""
        try:
            with self.autocast():
                result = self._call(action)
        except BaseException:
            self._in_sync = False
            raise
        self._applied.append(action)
        return result

    def leg(self, leg: Leg) -> Iterator[FrameResult]:
        """Track one leg, frame by frame. The caller records what ran with `record`, or `invalidate`s."""
        if leg.count <= 0:
            return
        frames = self.predictor.propagate_in_video(
            self.state, start_frame_idx=leg.start, max_frame_num_to_track=leg.count - 1, reverse=leg.reverse
        )
        try:
            while True:
                with self.autocast():  # around each step only: the consumer runs between steps
                    step = next(frames, None)
                if step is None:
                    return
                frame_idx, obj_ids, logits = step
                yield FrameResult(frame_idx, _masks(obj_ids, logits), self._scores(frame_idx))
        finally:
            frames.close()

    def replay_propagation(self, action: Propagate) -> Iterator[FrameResult]:
        """Run a recorded tracking run again, frame by frame, and record it."""
        try:
            for leg in action.legs:
                steps = self.leg(leg)
                for _ in range(leg.count):
                    yield next(steps)
                steps.close()
        except BaseException:
            self._in_sync = False
            raise
        self._applied.append(action)

    def record(self, action: Action) -> None:
        """Note an action that ran outside `run` (a streamed tracking run) as applied."""
        self._applied.append(action)

    def invalidate(self) -> None:
        """The state no longer matches what was recorded: the next `sync` replays from scratch."""
        self._in_sync = False

    def close(self) -> None:
        self.state.close()

    def _call(self, action: Action) -> FrameResult | None:
        p, state = self.predictor, self.state
        if isinstance(action, AddPoint):
            out = p.add_new_points_or_box(
                state,
                action.frame,
                action.obj,
                points=np.array([[action.x, action.y]], np.float32),
                labels=np.array([1 if action.positive else 0], np.int32),
                clear_old_points=False,
            )
        elif isinstance(action, SetPoints):
            points = labels = None
            if action.points:
                points = np.array([[x, y] for x, y, _ in action.points], np.float32)
                labels = np.array([1 if positive else 0 for _, _, positive in action.points], np.int32)
            box = None if action.box is None else np.array(action.box, np.float32)
            out = p.add_new_points_or_box(
                state, action.frame, action.obj, points=points, labels=labels, clear_old_points=True, box=box
            )
        elif isinstance(action, SetMask):
            mask = np.array(action.mask)  # a writable copy: torch warns about read-only arrays
            out = p.add_new_mask(state, action.frame, action.obj, mask)
        elif isinstance(action, ClearFrame):
            # clear_all_prompts_in_frame would create an object the predictor does not know.
            if action.obj in self.obj_ids:
                p.clear_all_prompts_in_frame(state, action.frame, action.obj, need_output=False)
            return None
        elif isinstance(action, ForgetObject):
            p.remove_object(state, action.obj, strict=False, need_output=False)
            return None
        elif isinstance(action, Reset):
            p.reset_state(state)
            return None
        else:
            raise TypeError(f"cannot run {action!r} here")
        frame_idx, obj_ids, logits = out
        return FrameResult(frame_idx, _masks(obj_ids, logits), self._scores(frame_idx))

    def _scores(self, frame_idx: int) -> Scores:
        if not isinstance(self.predictor, ScoresFrames):
            return {}
        scores = self.predictor.frame_scores(self.state, frame_idx)
        return {int(obj_id): score for obj_id, score in scores.items()}


def _masks(obj_ids: list, logits: Any) -> dict[int, np.ndarray]:
    """Predictor logits (N, 1, H, W tensor) -> object id -> H, W bool mask (logit > 0)."""
    binary = (logits[:, 0] > 0).cpu().numpy()
    return {int(obj_id): binary[i] for i, obj_id in enumerate(obj_ids)}
