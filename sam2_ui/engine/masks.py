"""The engine's masks: per frame and object, kept compressed, with where each one came from.

The mask store is the source of truth for what a front end shows and what the exporters write. Entries are
immutable, so an undo step can hold the entries it replaced without copying them, and restoring them gives
back exactly the same pixels.

A mask is kept as its bit-packed pixels (``np.packbits``, row-major) compressed with deflate (``zlib``) at its
fastest level. An object mask is mostly long runs of equal bytes, which deflate shrinks 30-100x (a 1280x720
mask: 115 KB bit-packed, 1-6 KB compressed), while the worst mask (noise) stays within a few bytes of its
bit-packed size; plain run lengths would grow 30x past it on a checkerboard. Either way is about 0.1 ms a
720p mask on one CPU core. ``python -m benchmarks.mask_store`` measures a 3000-frame, five-object session.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

PROMPT = "prompt"  # the mask of an object on a frame it has prompts on
PROPAGATION = "propagation"  # a mask that tracking computed from prompts on other frames
ORIGINS = (PROMPT, PROPAGATION)
COMPRESSION_LEVEL = 1  # deflate's fastest; higher levels save ~30 % more and take 2-3x longer each way

Key = tuple[int, int]  # frame index, object id


@dataclass(frozen=True, eq=False, slots=True)
class MaskEntry:
    """One object's mask on one frame.

    packed: the deflate-compressed ``np.packbits`` of the H*W row-major mask, or None for an empty mask (the
        object is absent there); read it back with `mask`.
    origin: `PROMPT` or `PROPAGATION`.
    clock: the session's edit clock when the mask was computed (for stale-mask bookkeeping).
    iou: the model's predicted IoU of the mask, or None if unknown (see `quality`).
    score: the model's object score logit (> 0: the object is there), or None if unknown.
    area: the mask's pixel count (`from_mask` counts it).
    """

    packed: bytes | None
    origin: str
    clock: int
    iou: float | None = None
    score: float | None = None
    area: int = 0

    @classmethod
    def from_mask(
        cls, mask: np.ndarray, origin: str, clock: int, iou: float | None = None, score: float | None = None
    ) -> MaskEntry:
        """Compress an H, W mask (any dtype: nonzero is set); ValueError for another number of dimensions."""
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim != 2:
            raise ValueError(f"a mask is H, W; got an array of shape {mask.shape}")
        area = int(np.count_nonzero(mask))
        packed = zlib.compress(np.packbits(mask, axis=None).tobytes(), COMPRESSION_LEVEL) if area else None
        return cls(packed, origin, clock, iou, score, area)

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The H, W bool mask (a new array); ValueError if the entry holds a mask of another pixel count."""
        height, width = shape
        if self.packed is None:
            return np.zeros((height, width), bool)
        bits = zlib.decompress(self.packed)
        if len(bits) != (height * width + 7) // 8:
            raise ValueError(f"this mask was stored for frames of another size, not {height}x{width}")
        flat = np.unpackbits(np.frombuffer(bits, np.uint8), count=height * width)  # H*W uint8, 0 or 1
        return flat.view(bool).reshape(height, width)

    @property
    def nbytes(self) -> int:
        """Bytes of compressed pixels the entry holds (0 for an empty mask)."""
        return 0 if self.packed is None else len(self.packed)


class MaskStore:
    """Frame index -> object id -> `MaskEntry`, for frames of one size (H, W)."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self._frames: dict[int, dict[int, MaskEntry]] = {}

    def get(self, frame: int, obj: int) -> MaskEntry | None:
        return self._frames.get(frame, {}).get(obj)

    def put(self, frame: int, obj: int, entry: MaskEntry | None) -> None:
        """Set an entry; None removes it."""
        if entry is None:
            masks = self._frames.get(frame)
            if masks is not None:
                masks.pop(obj, None)
                if not masks:
                    del self._frames[frame]
        else:
            self._frames.setdefault(frame, {})[obj] = entry

    def entries(self, frame: int) -> dict[int, MaskEntry]:
        """A copy of the frame's entries, by object id in increasing order."""
        return dict(sorted(self._frames.get(frame, {}).items()))

    def of_object(self, obj: int) -> dict[int, MaskEntry]:
        """One object's entries by frame, in frame order."""
        return {frame: masks[obj] for frame, masks in sorted(self._frames.items()) if obj in masks}

    def keys(self, obj: int | None = None) -> list[Key]:
        """(frame, object) keys holding an entry, optionally of one object only, sorted."""
        return sorted(
            (frame, o) for frame, masks in self._frames.items() for o in masks if obj is None or o == obj
        )

    def items(self) -> Iterator[tuple[Key, MaskEntry]]:
        for frame in sorted(self._frames):
            for obj, entry in sorted(self._frames[frame].items()):
                yield (frame, obj), entry

    @property
    def nbytes(self) -> int:
        """Bytes of compressed pixels held by the entries (not counting Python object overhead)."""
        return sum(entry.nbytes for masks in self._frames.values() for entry in masks.values())

    def snapshot(self) -> dict[int, dict[int, MaskEntry]]:
        """A shallow copy (entries are immutable): what an exporter reads while tracking goes on."""
        return {frame: dict(masks) for frame, masks in self._frames.items()}


class FrameMasksView(Mapping):
    """Frame index -> {object id: H, W bool mask} over frames 0..num_frames-1, decompressed on access.

    What the exporters read: a long video's masks are never all decompressed at once.
    """

    def __init__(self, entries: dict[int, dict[int, MaskEntry]], num_frames: int, shape: tuple[int, int]):
        self._entries = entries
        self._num_frames = num_frames
        self._shape = shape

    def __getitem__(self, frame: int) -> dict[int, np.ndarray]:
        if not 0 <= frame < self._num_frames:
            raise KeyError(frame)
        return {obj: e.mask(self._shape) for obj, e in sorted(self._entries.get(frame, {}).items())}

    def __iter__(self) -> Iterator[int]:
        return iter(range(self._num_frames))

    def __len__(self) -> int:
        return self._num_frames
