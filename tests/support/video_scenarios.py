"""Replay one sequence of video-predictor calls on any predictor with the official API, and compare replays.

A scenario is a list of steps (``AddPoints``, ``AddMask``, ``Propagate``, ``ClearPrompts``, ``RemoveObject``,
``ResetState``). ``run_scenario`` opens a fresh ``init_state`` on the clip and applies the steps in order,
recording every value the predictor returns:

- ``structure``: the type, dtype, device and shape layout of the raw return value (e.g.
  ``tuple(int, list[int, int], Tensor[torch.float32, cpu, 2x1x144x192])``), so types and shapes are compared
  exactly;
- ``outputs``: one ``FrameOutput`` per returned ``(frame_idx, obj_ids, masks)``, in the order returned
  (``propagate_in_video`` gives one per yielded frame, ``remove_object`` one per updated frame), with the
  mask logits copied to the CPU as float32 (N, 1, H, W).

``compare_runs`` checks two replays output by output (same structures, frame order and object ids; per frame
and object mask IoU of ``logits > 0`` and the largest absolute logit difference) and reports the first
failure with its step, frame and object. ``SCENARIOS`` builds the parity scenarios from a synthetic clip.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tests.support.video_clips import SyntheticClip

# ---------------------------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class AddPoints:
    """``add_new_points_or_box(state, frame_idx, obj_id, points=, labels=, box=, clear_old_points=)``.

    points: K, 2 float32 ``(x, y)`` in video pixels, or in [0, 1] with ``normalize_coords=False``;
    labels: K int32 (1 positive, 0 negative); box: XYXY.
    """

    frame_idx: int
    obj_id: int
    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    box: np.ndarray | None = None
    clear_old_points: bool = True
    normalize_coords: bool = True

    def __call__(self, predictor, state):
        return predictor.add_new_points_or_box(
            state,
            frame_idx=self.frame_idx,
            obj_id=self.obj_id,
            points=self.points,
            labels=self.labels,
            box=self.box,
            clear_old_points=self.clear_old_points,
            normalize_coords=self.normalize_coords,
        )

    def __str__(self) -> str:
        what = []
        if self.points is not None:
            what.append(f"points={np.round(self.points, 1).tolist()} labels={self.labels.tolist()}")
        if self.box is not None:
            what.append(f"box={np.round(self.box, 1).tolist()}")
        return (
            f"add_new_points_or_box(frame {self.frame_idx}, obj {self.obj_id}, {', '.join(what)}, "
            f"clear_old_points={self.clear_old_points}"
            + ("" if self.normalize_coords else ", normalize_coords=False")
            + ")"
        )


@dataclass(frozen=True)
class AddMask:
    """``add_new_mask(state, frame_idx, obj_id, mask)`` with an H, W bool mask at video resolution."""

    frame_idx: int
    obj_id: int
    mask: np.ndarray

    def __call__(self, predictor, state):
        return predictor.add_new_mask(state, frame_idx=self.frame_idx, obj_id=self.obj_id, mask=self.mask)

    def __str__(self) -> str:
        return f"add_new_mask(frame {self.frame_idx}, obj {self.obj_id}, {int(self.mask.sum())} px)"


@dataclass(frozen=True)
class Propagate:
    """``propagate_in_video(state, start_frame_idx=, max_frame_num_to_track=, reverse=)``, fully consumed."""

    start_frame_idx: int | None = None
    max_frame_num_to_track: int | None = None
    reverse: bool = False

    def __call__(self, predictor, state):
        return predictor.propagate_in_video(
            state,
            start_frame_idx=self.start_frame_idx,
            max_frame_num_to_track=self.max_frame_num_to_track,
            reverse=self.reverse,
        )

    def __str__(self) -> str:
        return (
            f"propagate_in_video(start_frame_idx={self.start_frame_idx}, "
            f"max_frame_num_to_track={self.max_frame_num_to_track}, reverse={self.reverse})"
        )


@dataclass(frozen=True)
class ClearPrompts:
    """``clear_all_prompts_in_frame(state, frame_idx, obj_id)``."""

    frame_idx: int
    obj_id: int

    def __call__(self, predictor, state):
        return predictor.clear_all_prompts_in_frame(state, self.frame_idx, self.obj_id)

    def __str__(self) -> str:
        return f"clear_all_prompts_in_frame(frame {self.frame_idx}, obj {self.obj_id})"


@dataclass(frozen=True)
class RemoveObject:
    """``remove_object(state, obj_id)`` (default ``strict=False``: an unknown id is a no-op)."""

    obj_id: int

    def __call__(self, predictor, state):
        return predictor.remove_object(state, self.obj_id)

    def __str__(self) -> str:
        return f"remove_object(obj {self.obj_id})"


@dataclass(frozen=True)
class ResetState:
    """``reset_state(state)``."""

    def __call__(self, predictor, state):
        return predictor.reset_state(state)

    def __str__(self) -> str:
        return "reset_state()"


Step = AddPoints | AddMask | Propagate | ClearPrompts | RemoveObject | ResetState


def click(frame_idx: int, obj_id: int, *xy_label: tuple[float, float, int], clear: bool = True) -> AddPoints:
    """An ``AddPoints`` step from ``(x, y, label)`` triples."""
    points = np.array([[x, y] for x, y, _ in xy_label], np.float32)
    labels = np.array([label for _, _, label in xy_label], np.int32)
    return AddPoints(frame_idx, obj_id, points=points, labels=labels, clear_old_points=clear)


# -------------------------------------------------------------------------------------------- records


@dataclass
class FrameOutput:
    """One returned ``(frame_idx, obj_ids, masks)``; logits: N, 1, H, W float32 on the CPU."""

    frame_idx: int
    obj_ids: tuple[int, ...]
    logits: torch.Tensor


@dataclass
class StepResult:
    """What one API call returned: its layout and its frame outputs, in order."""

    index: int
    call: str
    structure: str
    outputs: list[FrameOutput] = field(default_factory=list)


def describe(value) -> str:
    """Type, dtype, device and shape of a returned value, recursively (lists of tensors abbreviated)."""
    if isinstance(value, torch.Tensor):
        shape = "x".join(str(s) for s in value.shape)
        return f"Tensor[{value.dtype}, {value.device.type}, {shape}]"
    if isinstance(value, bool | int | float | str | type(None)):
        return type(value).__name__
    if isinstance(value, tuple | list):
        inner = ", ".join(describe(v) for v in value)
        return f"{type(value).__name__}({inner})" if isinstance(value, tuple) else f"list[{inner}]"
    if isinstance(value, np.ndarray):
        return f"ndarray[{value.dtype}, {value.shape}]"
    return type(value).__name__


def _frame_output(frame_idx, obj_ids, masks) -> FrameOutput:
    return FrameOutput(
        frame_idx=frame_idx,
        obj_ids=tuple(obj_ids),  # the official returns its live list: copy it now
        logits=masks.detach().to("cpu", torch.float32).clone(),
    )


def _record(index: int, step: Step, returned) -> StepResult:
    if isinstance(step, Propagate):
        assert isinstance(returned, Iterator), f"propagate_in_video returned {type(returned).__name__}"
        layouts, outputs = [], []
        for item in returned:  # copied as yielded, in case a predictor reuses its buffers
            layouts.append(describe(item))
            outputs.append(_frame_output(*item))
        result = StepResult(index, str(step), "iterator[" + "; ".join(layouts) + "]", outputs)
    elif isinstance(step, RemoveObject):
        result = StepResult(index, str(step), describe(returned))
        obj_ids, updated = returned
        result.outputs = [_frame_output(frame_idx, obj_ids, masks) for frame_idx, masks in updated]
    else:
        result = StepResult(index, str(step), describe(returned))
        if returned is not None:
            result.outputs = [_frame_output(*returned)]
    return result


# One entry per ``run_scenario`` call: (predictor's module, process CPU seconds, wall seconds, outputs).
TIMINGS: list[tuple[str, float, float, int]] = []


def run_scenario(
    predictor,
    video_path: str | Path,
    steps: list[Step],
    autocast_dtype: torch.dtype | None = None,
) -> list[StepResult]:
    """Fresh ``init_state(video_path)``, then every step in order; returns one ``StepResult`` per step.

    With ``autocast_dtype`` everything (including the generator's frames) runs under
    ``torch.autocast("cpu", dtype=autocast_dtype)``. An exception propagates with the failing step noted.
    """
    context = contextlib.nullcontext()
    if autocast_dtype is not None:
        context = torch.autocast("cpu", dtype=autocast_dtype)
    results = []
    cpu, wall = time.process_time(), time.perf_counter()
    with context:
        state = predictor.init_state(str(video_path))
        for index, step in enumerate(steps):
            try:
                results.append(_record(index, step, step(predictor, state)))
            except Exception as exc:
                if hasattr(exc, "add_note"):  # Python >= 3.11
                    exc.add_note(f"while running step {index}: {step} on {type(predictor).__name__}")
                raise
    outputs = sum(len(r.outputs) for r in results)
    module = type(predictor).__module__
    TIMINGS.append((module, time.process_time() - cpu, time.perf_counter() - wall, outputs))
    return results


# ------------------------------------------------------------------------------------------ comparing


@dataclass
class Comparison:
    """Largest differences over a whole replay (official as the reference)."""

    max_logit_abs: float = 0.0  # over every pixel of every compared mask
    min_iou: float = 1.0
    outputs: int = 0  # frame outputs compared
    masks: int = 0  # (frame, object) masks compared
    nonempty_masks: int = 0  # reference masks with some foreground
    background_masks: int = 0  # reference masks with some background
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.outputs} frame outputs, {self.masks} masks ({self.nonempty_masks} non-empty): "
            f"min IoU {self.min_iou:.6f}, max |logit diff| {self.max_logit_abs:.3g}"
        )


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    union = (a | b).sum().item()
    return 1.0 if union == 0 else (a & b).sum().item() / union


def compare_runs(
    ours: list[StepResult],
    ref: list[StepResult],
    min_iou: float = 0.999,
    logit_atol: float | None = 1e-3,
    label: str = "",
) -> Comparison:
    """Compare two replays of the same scenario; raise AssertionError naming the first failure.

    Checks, step by step: the same number of steps and of frame outputs, identical ``structure`` strings
    (types, dtypes, devices, shapes), the same frame indices in the same order and the same object ids;
    then per frame and object, mask IoU (``logits > 0``) >= ``min_iou`` and, unless ``logit_atol`` is None,
    max |logit difference| <= ``logit_atol``. All measurements are gathered before raising.
    """
    cmp = Comparison()
    prefix = f"{label}: " if label else ""
    if len(ours) != len(ref):
        raise AssertionError(f"{prefix}{len(ours)} steps recorded, official {len(ref)}")
    for mine, theirs in zip(ours, ref):
        where = f"step {theirs.index} [{theirs.call}]"
        if mine.structure != theirs.structure:
            cmp.failures.append(f"{where}: returned {mine.structure}\n  official {theirs.structure}")
            continue
        got = [(o.frame_idx, o.obj_ids) for o in mine.outputs]
        want = [(o.frame_idx, o.obj_ids) for o in theirs.outputs]
        if got != want:
            cmp.failures.append(f"{where}: (frame, obj ids) in order {got}\n  official {want}")
            continue
        for out, ref_out in zip(mine.outputs, theirs.outputs):
            cmp.outputs += 1
            for k, obj_id in enumerate(ref_out.obj_ids):
                a, b = out.logits[k, 0], ref_out.logits[k, 0]
                iou = mask_iou(a > 0, b > 0)
                # Pixels where both sides report the object absent hold the same constant; elsewhere the
                # difference is what we measure.
                diff = (a - b).abs()
                k_max = int(diff.argmax())
                max_diff = float(diff.flatten()[k_max])
                cmp.masks += 1
                cmp.nonempty_masks += int((b > 0).any())
                cmp.background_masks += int((b <= 0).any())
                cmp.min_iou = min(cmp.min_iou, iou)
                cmp.max_logit_abs = max(cmp.max_logit_abs, max_diff)
                bad_iou = iou < min_iou
                bad_logit = logit_atol is not None and max_diff > logit_atol
                if bad_iou or bad_logit:
                    y, x = divmod(k_max, b.shape[-1])
                    cmp.failures.append(
                        f"{where}, frame {ref_out.frame_idx}, obj {obj_id}: IoU {iou:.6f} "
                        f"(fg px ours {int((a > 0).sum())}, official {int((b > 0).sum())}), "
                        f"max |logit diff| {max_diff:.4g} at (y={y}, x={x}): "
                        f"ours {float(a[y, x]):.5g}, official {float(b[y, x]):.5g}"
                    )
    if cmp.failures:
        shown = "\n".join(cmp.failures[:5])
        more = f"\n... and {len(cmp.failures) - 5} more" if len(cmp.failures) > 5 else ""
        raise AssertionError(
            f"{prefix}{len(cmp.failures)} mismatches; first:\n{shown}{more}\noverall: {cmp.summary()}"
        )
    return cmp


def assert_non_vacuous(cmp: Comparison, label: str = "") -> None:
    """The replay must have compared something: some masks with foreground and some with background."""
    assert cmp.masks > 0, f"{label}: no masks were returned"
    assert cmp.nonempty_masks > 0, f"{label}: every reference mask is empty ({cmp.summary()})"
    assert cmp.background_masks > 0, f"{label}: every reference mask covers the whole frame"


# ------------------------------------------------------------------------------------------ scenarios
# Object ids: the disc is 1, the block 2, the kite 3, unless a scenario says otherwise.


def _xy(clip: SyntheticClip, name: str, frame_idx: int) -> tuple[float, float]:
    centre = clip.centre(name, frame_idx)
    assert centre is not None, f"{name} is not visible on frame {frame_idx}"
    return centre


def click_first_frame_forward(clip: SyntheticClip) -> list[Step]:
    """One positive click on the disc on frame 0, propagated forward over the whole clip."""
    return [click(0, 1, (*_xy(clip, "disc", 0), 1)), Propagate()]


def box_prompt(clip: SyntheticClip) -> list[Step]:
    """A box alone around the block, and a box plus a positive click on the disc, both on frame 0."""
    x, y = _xy(clip, "disc", 0)
    return [
        AddPoints(0, 2, box=clip.box("block", 0)),
        AddPoints(
            0,
            1,
            points=np.array([[x, y]], np.float32),
            labels=np.array([1], np.int32),
            box=clip.box("disc", 0, margin=4),
        ),
        Propagate(),
    ]


def mask_prompt(clip: SyntheticClip) -> list[Step]:
    """The disc's ground-truth mask on frame 0, propagated forward."""
    return [AddMask(0, 1, clip.mask("disc", 0)), Propagate()]


def two_objects(clip: SyntheticClip) -> list[Step]:
    """Ids 7 then 3 (insertion order, not sorted): a click on the disc, a positive and a negative click
    for the block, both on frame 0; then a refinement click on object 7 given in [0, 1] coordinates
    (``normalize_coords=False``) and forward propagation."""
    bx, by = _xy(clip, "block", 0)
    dx, dy = _xy(clip, "disc", 0)
    refine = np.array([[(dx + 3) / clip.width, (dy - 6) / clip.height]], np.float32)
    return [
        click(0, 7, (dx, dy, 1)),
        click(0, 3, (bx, by, 1), (*clip.background_point(0), 0)),
        AddPoints(0, 7, refine, np.array([1], np.int32), clear_old_points=False, normalize_coords=False),
        Propagate(),
    ]


def object_added_after_propagation(clip: SyntheticClip) -> list[Step]:
    """The disc is tracked over the clip; then the kite, which enters later, is clicked on its first
    frame and tracked forward and backward from there (starting from frame 0 would hit the official
    fp32 defect: see ``object_without_pointer_yet``)."""
    t = clip.appear_frame
    return [
        click(0, 1, (*_xy(clip, "disc", 0), 1)),
        Propagate(),
        click(t, 3, (*_xy(clip, "kite", t), 1)),
        Propagate(start_frame_idx=t),
        Propagate(start_frame_idx=t, reverse=True),
    ]


def correction_click(clip: SyntheticClip) -> list[Step]:
    """Disc and block clicked on frame 0 and tracked; on a tracked frame the disc gets a correction
    (a negative click, then a positive one kept with it); then propagation again from the start, which
    recomputes, and so overwrites, the corrected frame."""
    t = min(3, clip.num_frames - 1)
    return [
        click(0, 1, (*_xy(clip, "disc", 0), 1)),
        click(0, 2, (*_xy(clip, "block", 0), 1)),
        Propagate(),
        click(t, 1, (*clip.background_point(t), 0)),
        click(t, 1, (*_xy(clip, "disc", t), 1), clear=False),
        Propagate(),
    ]


def reverse_from_last_frame(clip: SyntheticClip) -> list[Step]:
    """A click on the disc on the last frame, propagated in reverse down to frame 0."""
    last = clip.num_frames - 1
    return [click(last, 1, (*_xy(clip, "disc", last), 1)), Propagate(reverse=True)]


def max_frames_to_track(clip: SyntheticClip) -> list[Step]:
    """A click on frame 2, tracked forward 3 frames, backward 1 frame, then 0 frames (the start only)."""
    return [
        click(2, 1, (*_xy(clip, "disc", 2), 1)),
        Propagate(start_frame_idx=2, max_frame_num_to_track=3),
        Propagate(start_frame_idx=2, max_frame_num_to_track=1, reverse=True),
        Propagate(start_frame_idx=2, max_frame_num_to_track=0),
    ]


def clear_prompts_in_frame(clip: SyntheticClip) -> list[Step]:
    """Disc clicked on frames 0 and 4, block on frame 0; tracked; the disc's frame-4 prompts are cleared
    (its output is downgraded to non-conditioning) and tracking is run again."""
    t = min(4, clip.num_frames - 1)
    return [
        click(0, 1, (*_xy(clip, "disc", 0), 1)),
        click(0, 2, (*_xy(clip, "block", 0), 1)),
        click(t, 1, (*_xy(clip, "disc", t), 1)),
        Propagate(),
        ClearPrompts(t, 1),
        Propagate(),
    ]


def remove_object(clip: SyntheticClip) -> list[Step]:
    """Three objects; tracked; the disc (prompted on frames 0 and 3) is removed, which re-packs the
    remaining objects and returns updated masks for its prompted frames; an unknown id is a no-op;
    tracking runs again on the two left."""
    t = min(3, clip.num_frames - 1)
    return [
        click(0, 2, (*_xy(clip, "block", 0), 1)),
        click(0, 1, (*_xy(clip, "disc", 0), 1)),
        click(t, 1, (*_xy(clip, "disc", t), 1)),
        AddPoints(0, 5, box=clip.box("disc", 0, margin=6)),
        Propagate(),
        RemoveObject(1),
        RemoveObject(99),
        Propagate(),
    ]


def reset_state(clip: SyntheticClip) -> list[Step]:
    """A click and a short propagation, then ``reset_state``; afterwards a new object (id 4) from a mask
    prompt on frame 1 is tracked on the same state."""
    return [
        click(0, 1, (*_xy(clip, "disc", 0), 1)),
        Propagate(max_frame_num_to_track=2),
        ResetState(),
        AddMask(1, 4, clip.mask("block", 1)),
        Propagate(start_frame_idx=1),
    ]


def object_without_pointer_yet(clip: SyntheticClip) -> list[Step]:
    """The disc clicked on frame 0 and the kite on its first frame (> 0), then the default propagation,
    which starts at frame 0: on frames before the kite's first prompt its memory has no object pointer.
    The official code fails there in fp32 on the CPU (see the reference's "Known defects")."""
    t = clip.appear_frame
    assert t >= 2, "the kite must enter on frame 2 or later"
    return [
        click(0, 1, (*_xy(clip, "disc", 0), 1)),
        click(t, 3, (*_xy(clip, "kite", t), 1)),
        Propagate(),
    ]


def real_size_two_objects(clip: SyntheticClip) -> list[Step]:
    """For the 1024 configuration (short clip): a click on the disc and a box on the block on frame 0,
    forward propagation."""
    return [
        click(0, 1, (*_xy(clip, "disc", 0), 1)),
        AddPoints(0, 2, box=clip.box("block", 0)),
        Propagate(),
    ]


SCENARIOS: dict[str, Callable[[SyntheticClip], list[Step]]] = {
    "click_first_frame_forward": click_first_frame_forward,
    "box_prompt": box_prompt,
    "mask_prompt": mask_prompt,
    "two_objects": two_objects,
    "object_added_after_propagation": object_added_after_propagation,
    "correction_click": correction_click,
    "reverse_from_last_frame": reverse_from_last_frame,
    "max_frames_to_track": max_frames_to_track,
    "clear_prompts_in_frame": clear_prompts_in_frame,
    "remove_object": remove_object,
    "reset_state": reset_state,
}
