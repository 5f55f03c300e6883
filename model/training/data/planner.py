"""Which frames and objects of a video make a clip: the official ``RandomUniformSampler``.

A clip is ``N`` consecutive annotated frames from a uniformly drawn start, played backwards with probability
``reverse_time_prob``; its objects are up to ``K`` drawn among the objects visible on its first frame (after
the reversal). A draw whose first frame shows no object is drawn again, as the official does (so the clip is
uniform over the draws that show one); a video with none gives no plan and the caller takes another.

A video with fewer than ``N`` annotated frames can be played forward and back until the clip is long enough
(frames 0, 1, 2, 1, 0, 1, ... of a 3-frame video): the sampler asks for that only when no video of the data
has ``N`` frames, and otherwise leaves short videos out, as the official does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.training.data.source import Source, VideoItem

MAX_DRAWS = 1000  # draws of a start before a video is given up (as the official MAX_RETRIES)


@dataclass(frozen=True)
class ClipPlan:
    """What to read for a clip: video frame indices in clip order, and the chosen objects' ids."""

    frames: tuple[int, ...]
    objects: tuple[int, ...]


class ClipPlanner:
    """Draws clip plans with the official uniform sampler's semantics.

    Arguments:
        num_frames: N, the frames of a clip.
        max_objects: K, the most objects of a clip.
        reverse_time_prob: probability of playing the clip backwards.
    """

    def __init__(self, num_frames: int, max_objects: int, reverse_time_prob: float = 0.0) -> None:
        if num_frames < 1 or max_objects < 1:
            raise ValueError(
                f"a clip needs at least 1 frame and 1 object, got {num_frames} and {max_objects}"
            )
        if not 0.0 <= reverse_time_prob <= 1.0:
            raise ValueError(f"reverse_time_prob must be in [0, 1], got {reverse_time_prob}")
        self.num_frames = num_frames
        self.max_objects = max_objects
        self.reverse_time_prob = reverse_time_prob

    def positions(self, length: int, rng: np.random.Generator) -> list[int]:
        """Places in a video's list of ``length`` annotated frames, in clip order (one draw)."""
        if length >= self.num_frames:
            start = int(rng.integers(0, length - self.num_frames + 1))
            positions = list(range(start, start + self.num_frames))
        else:
            positions = bounce(length, self.num_frames)
        if rng.random() < self.reverse_time_prob:
            positions.reverse()
        return positions

    def plan(self, source: Source, item: VideoItem, rng: np.random.Generator) -> ClipPlan | None:
        """A clip of ``item``, or None when no draw shows an object on the clip's first frame."""
        visible: dict[int, tuple[int, ...]] = {}  # first position -> objects on it (each read once)
        firsts = self._first_positions(len(item.frames))
        for _ in range(MAX_DRAWS):
            positions = self.positions(len(item.frames), rng)
            first = positions[0]
            if first not in visible:
                visible[first] = source.visible_objects(item, first)
            if visible[first]:
                break
            if firsts <= visible.keys() and not any(visible.values()):
                return None  # every possible first frame is empty
        else:
            return None
        chosen = rng.permutation(len(visible[first]))[: self.max_objects]
        objects = tuple(int(visible[first][i]) for i in chosen)
        return ClipPlan(tuple(item.frames[p] for p in positions), objects)

    def _first_positions(self, length: int) -> set[int]:
        """Every place a clip of a video of ``length`` annotated frames can start from."""
        if length < self.num_frames:
            starts, ends = {0}, {bounce(length, self.num_frames)[-1]}
        else:
            starts = set(range(length - self.num_frames + 1))
            ends = {start + self.num_frames - 1 for start in starts}
        forward = starts if self.reverse_time_prob < 1 else set()
        return forward | (ends if self.reverse_time_prob > 0 else set())


def bounce(length: int, count: int) -> list[int]:
    """``count`` places in a list of ``length``, played forward and back: 0, 1, .., length-1, length-2, .."""
    if length == 1:
        return [0] * count
    period = 2 * (length - 1)
    return [p if (p := i % period) < length else period - p for i in range(count)]
