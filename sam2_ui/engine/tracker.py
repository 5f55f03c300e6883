"""The video predictor and its inference state in this process, kept in step with the prompt log.

`Tracker` is the default `executor.ModelExecutor`: it runs prompt log actions on the predictor and remembers
which ones its inference state reflects. Before each call it brings the state to the log the call builds on:
if what was applied is still the start of the log it only runs the rest; otherwise it resets the state and
replays the log from the start (prompts and tracking runs alike, so corrections and memories are exactly as
they were). Nothing here knows about masks shown to a person, objects' names, or history: that is
`Session`'s job. A ZeroGPU worker holds one `Tracker` per session it serves (`worker_cache`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from model.loading.precision import Precision, describe_precision, inference_autocast
from model.video.video_frames import FrameSource

from .executor import FoundMask, FrameResult, Scores, SessionModel, TrackedFrame
from .predictor import ChoosesCorrections, ScoresFrames, ShowsMemory, VideoPredictor, predictor_device
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
    same_action,
)
from .propagation import done_legs


class Tracker:
    """A ``SAM2VideoPredictor`` with one inference state over ``frames``; every predictor call runs in
    ``precision`` ("fp32", or "bf16": under bf16 autocast on the predictor's device).

    ``corrections_as_conditioning``: the state's ``add_all_frames_to_correct_as_cond`` (None: the
    predictor's own). A predictor that cannot choose it per state (the official one) must have been built
    with the value asked for: anything else raises ``ValueError``, since the masks would silently differ.
    """

    holds_state = True

    def __init__(
        self,
        predictor: VideoPredictor,
        frames: FrameSource,
        state_on_cpu: bool = False,
        precision: Precision = "fp32",
        corrections_as_conditioning: bool | None = None,
    ) -> None:
        self.predictor = predictor
        self.frames = frames
        self.device = predictor_device(predictor)
        self.precision = precision
        self.precision_label = describe_precision(self.device, precision)
        with self.autocast():
            if state_on_cpu:
                self.state = predictor.init_state(frames, offload_state_to_cpu=True)
            else:
                self.state = predictor.init_state(frames)
        if corrections_as_conditioning is not None:
            self._choose_corrections(corrections_as_conditioning)
        self._applied: list[Action] = []
        self._in_sync = True  # False after a predictor call failed half-way: the state is unknown

    @classmethod
    def for_session(cls, model: SessionModel) -> Tracker:
        """The default `executor.ExecutorFactory`: a session's model calls in this process."""
        return cls(
            model.predictor,
            model.media.frames,
            model.state_on_cpu,
            model.precision,
            model.corrections_as_conditioning,
        )

    def autocast(self) -> AbstractContextManager:
        """The context every network call of this session runs in (a no-op for fp32)."""
        return inference_autocast(self.device, self.precision)

    @property
    def applied(self) -> tuple[Action, ...]:
        """The actions the state reflects, oldest first (if it is in sync)."""
        return tuple(self._applied)

    @property
    def obj_ids(self) -> list[int]:
        return list(self.state["obj_ids"])

    # ------------------------------------------------------------------------------------- executor calls
    def run(self, log: Sequence[Action], actions: Sequence[Action]) -> list[FrameResult | None]:
        """Bring the state to ``log``, then run ``actions`` (no `Propagate`): prompts give their frame's masks
        and scores (all objects), clearing and removing give None."""
        self.sync(log)
        return [self._run_one(action) for action in actions]

    def track(
        self, log: Sequence[Action], legs: Sequence[Leg], stop: threading.Event
    ) -> Iterator[TrackedFrame]:
        """Bring the state to ``log``, then track ``legs`` frame by frame until done or ``stop`` is set
        (checked before each frame). What ran is recorded as one `Propagate` when the iterator ends or
        is closed."""
        self.sync(log)
        legs = tuple(legs)
        counts = [0] * len(legs)
        try:
            for index, leg in enumerate(legs):
                steps = self._leg(leg)
                try:
                    while counts[index] < leg.count and not stop.is_set():
                        result = next(steps)
                        counts[index] += 1
                        yield TrackedFrame(index, result)
                finally:
                    steps.close()
                if stop.is_set():
                    break
        except GeneratorExit:
            raise
        except BaseException:
            self._in_sync = False  # a frame failed half-way: the next call replays the log
            raise
        finally:
            ran = done_legs(legs, counts)
            if ran and self._in_sync:
                self._applied.append(Propagate(ran))

    def segment(self, frame: int, options: dict[str, Any]) -> list[FoundMask]:
        """The automatic mask generator's masks on ``frame`` (``options``: its keyword arguments)."""
        from model import SAM2AutomaticMaskGenerator

        generator = SAM2AutomaticMaskGenerator(self.predictor.model, **options)
        rgb = np.array(self.frames.rgb(frame))  # a writable copy for torch
        with self.autocast():
            records = generator.generate(rgb)
        return [FoundMask(np.asarray(r["segmentation"], bool), int(r["area"])) for r in records]

    def max_frames_per_call(self) -> int | None:
        return None  # in this process a run is never cut

    # ---------------------------------------------------------------------------------------- the state
    def sync(self, log: Sequence[Action]) -> int:
        """Make the inference state reflect exactly ``log``; returns how many actions were (re)run."""
        applied = self._applied
        if (
            self._in_sync
            and len(applied) <= len(log)
            and all(same_action(a, b) for a, b in zip(applied, log))
        ):
            todo = list(log[len(applied) :])
        else:
            self.predictor.reset_state(self.state)
            self._applied, self._in_sync = [], True
            todo = list(log)
        for action in todo:
            if isinstance(action, Propagate):
                for _ in self._replay_propagation(action):
                    pass
            else:
                self._run_one(action)
        return len(todo)

    def reflects(self, log: Sequence[Action]) -> bool:
        """Whether the inference state is exactly ``log`` applied (no `sync` needed)."""
        applied = self._applied
        return (
            self._in_sync
            and len(applied) == len(log)
            and all(same_action(a, b) for a, b in zip(applied, log))
        )

    def memory_layout(self, frame: int, obj: int) -> Any:
        """The predictor's ``memory_layout`` of ``obj`` at ``frame``, or None if the object has no prompt in
        the state or the predictor cannot tell."""
        if not isinstance(self.predictor, ShowsMemory) or obj not in self.obj_ids:
            return None
        return self.predictor.memory_layout(self.state, frame, obj)

    def close(self) -> None:
        self.state.close()

    # ----------------------------------------------------------------------------------------- internals
    def _choose_corrections(self, enabled: bool) -> None:
        if isinstance(self.predictor, ChoosesCorrections):
            self.predictor.keep_corrections_as_conditioning(self.state, enabled)
            return
        built_with = bool(getattr(self.predictor, "add_all_frames_to_correct_as_cond", False))
        if built_with != enabled:
            self.close()
            raise ValueError(
                f"This predictor keeps add_all_frames_to_correct_as_cond={built_with} for every video and "
                f"cannot change it per session: build it with add_all_frames_to_correct_as_cond={enabled}, "
                f"or open the session with corrections_as_conditioning={built_with}."
            )

    def _run_one(self, action: Action) -> FrameResult | None:
        try:
            with self.autocast():
                result = self._call(action)
        except BaseException:
            self._in_sync = False
            raise
        self._applied.append(action)
        return result

    def _leg(self, leg: Leg) -> Iterator[FrameResult]:
        """Track one leg, frame by frame."""
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

    def _replay_propagation(self, action: Propagate) -> Iterator[FrameResult]:
        """Run a recorded tracking run again, frame by frame, and record it."""
        try:
            for leg in action.legs:
                steps = self._leg(leg)
                for _ in range(leg.count):
                    yield next(steps)
                steps.close()
        except BaseException:
            self._in_sync = False
            raise
        self._applied.append(action)

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
