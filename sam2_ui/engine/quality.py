"""Which masks deserve a second look: the model's own doubts and sudden changes in size.

Tracking seldom fails loudly. A mask the decoder itself rates poorly, an object the model cannot tell is there
or not, or a mask that suddenly grows, shrinks, appears or vanishes from one frame to the next are where a
person should check the result first. `doubtful_frames` applies a `DoubtRule` to one object's masks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .masks import MaskEntry


@dataclass(frozen=True)
class DoubtRule:
    """When a mask counts as doubtful.

    min_iou: a mask whose predicted IoU (the decoder's estimate of its own quality, 0..1) is below this is
      doubtful. Only non-empty masks are judged: the IoU of a mask the model emptied says nothing.
    min_score: an object score logit strictly between -min_score and +min_score means the model is unsure
      whether the object is on the frame at all (logit 0 is a coin toss; +-1 is about 27% / 73%).
    max_area_ratio: a mask whose pixel count differs by more than this factor from the object's mask on the
      previous frame that has one (in frame order) is doubtful; the larger of the two must be at least
      min_area pixels, so specks flickering do not count. An empty mask counts as 1 pixel here, so a mask
      appearing or vanishing suddenly is doubtful too.
    min_area: see max_area_ratio.
    """

    min_iou: float = 0.5
    min_score: float = 1.0
    max_area_ratio: float = 2.5
    min_area: int = 64


DEFAULT_RULE = DoubtRule()


def doubt_reasons(
    entries_by_frame: Mapping[int, MaskEntry], prompted: set[int], rule: DoubtRule = DEFAULT_RULE
) -> dict[int, str]:
    """One object's doubtful frames, each with why it is doubtful (a short sentence for a person).

    Arguments:
      entries_by_frame: frame -> the object's mask entry there (any order).
      prompted: frames with the object's own prompts: never doubtful (the user decided those masks), though
        they still serve as the previous frame for the area rule.
      rule: the thresholds.
    Returns frame -> reason, in frame order.
    """
    reasons: dict[int, str] = {}
    previous: MaskEntry | None = None
    for frame in sorted(entries_by_frame):
        entry = entries_by_frame[frame]
        if frame not in prompted:
            reason = _reason(entry, previous, rule)
            if reason is not None:
                reasons[frame] = reason
        previous = entry
    return reasons


def doubtful_frames(
    entries_by_frame: Mapping[int, MaskEntry], prompted: set[int], rule: DoubtRule = DEFAULT_RULE
) -> list[int]:
    """The frames, sorted, where one object's mask is doubtful under ``rule`` (see `doubt_reasons`)."""
    return list(doubt_reasons(entries_by_frame, prompted, rule))


def _reason(entry: MaskEntry, previous: MaskEntry | None, rule: DoubtRule) -> str | None:
    if entry.iou is not None and entry.area > 0 and entry.iou < rule.min_iou:
        return f"the model rates this mask poorly (predicted IoU {entry.iou:.2f} < {rule.min_iou:g})"
    if entry.score is not None and -rule.min_score < entry.score < rule.min_score:
        return f"the model is unsure the object is there (object score {entry.score:+.2f})"
    if previous is not None:
        small, large = sorted((entry.area, previous.area))
        if large >= rule.min_area and large / max(small, 1) > rule.max_area_ratio:
            return f"the mask changed size suddenly ({previous.area} -> {entry.area} pixels)"
    return None
