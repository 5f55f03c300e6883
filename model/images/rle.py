"""Run-length encoding of masks, in plain numpy (no torch): one codec for the automatic mask generator, the
engine's mask store, session files, the prompt log, the Gradio API and the COCO exporter.

Two layouts of the same runs: `encode_rle` counts over the row-major pixels (exact JSON lists: session files,
the API), COCO's over the column-major pixels, as lists (`coco_rle_to_mask` reads them; the generator's
"uncompressed_rle") or compressed into COCO's string form (`coco_rle`, `compress_rle`: what
``pycocotools.mask.encode`` writes). Runs alternate False and True, starting with False (possibly empty).
"""

from __future__ import annotations

import numpy as np


def runs_from_changes(changes: np.ndarray, length: int, starts_on: bool) -> list[int]:
    """Run lengths of a flat bool array of ``length`` values, from the positions where the value differs from
    the one before (increasing, in 1..length-1) and its first value (a leading 0 when it is True)."""
    counts = np.diff(np.concatenate([[0], changes, [length]])).tolist()
    return [0, *counts] if starts_on else counts


def run_lengths(flat: np.ndarray) -> list[int]:
    """Lengths of the alternating runs of False and True in a 1-D bool array, starting with False (a leading
    0 when the first value is True)."""
    flat = np.asarray(flat, dtype=bool)
    if flat.size == 0:
        return []
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    return runs_from_changes(changes, flat.size, bool(flat[0]))


def rle_area(rle: dict) -> int:
    """Number of set pixels of an RLE with list counts (either layout)."""
    return int(sum(rle["counts"][1::2]))


def encode_rle(mask: np.ndarray) -> dict:
    """A bool H, W mask as JSON-ready run lengths: ``{"size": [H, W], "counts": [...]}``.

    Counts alternate between runs of False and True over the row-major pixels, starting with False (a
    leading 0 when the first pixel is set). Exact and independent of any library; see `decode_rle`.
    """
    mask = np.asarray(mask, dtype=bool)
    return {"size": [int(s) for s in mask.shape], "counts": run_lengths(mask.ravel())}


def decode_rle(rle: dict) -> np.ndarray:
    """The H, W bool mask of `encode_rle` output; ValueError if the counts do not fill the size."""
    height, width = (int(s) for s in rle["size"])
    counts = np.asarray(rle["counts"], dtype=np.int64)
    if counts.sum() != height * width or (counts < 0).any():
        raise ValueError(f"run lengths sum to {counts.sum()}, expected {height * width} pixels")
    values = np.arange(counts.size) % 2 == 1
    return np.repeat(values, counts).reshape(height, width)


def coco_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE of an H, W mask: ``{"size": [H, W], "counts": str}``, as pycocotools writes it."""
    mask = np.asarray(mask, dtype=bool)
    # pycocotools writes one empty run for a mask without pixels.
    counts = run_lengths(mask.ravel(order="F")) or [0]
    return compress_rle({"size": mask.shape, "counts": counts})


def compress_rle(rle: dict) -> dict:
    """A COCO RLE with list counts (column-major runs) -> its compressed form ``{"size", "counts": str}``.

    Each count is stored as its difference to the count two places back (from the fourth on), in 5-bit
    little-endian groups: bit 0x20 of a group says another follows, bit 0x10 of the last one is the sign,
    and each group is offset by 48 into printable ASCII.
    """
    counts = list(rle["counts"])
    chars: list[str] = []
    for i, count in enumerate(counts):
        value = count - counts[i - 2] if i > 2 else count
        while True:
            group = value & 0x1F
            value >>= 5  # arithmetic shift: negative values tend to -1
            more = value != -1 if group & 0x10 else value != 0
            if more:
                group |= 0x20
            chars.append(chr(group + 48))
            if not more:
                break
    return {"size": [int(s) for s in rle["size"]], "counts": "".join(chars)}


def decompress_counts(text: str | bytes) -> list[int]:
    """The run lengths of COCO's compressed string (see `compress_rle`)."""
    text = text.decode("ascii") if isinstance(text, bytes) else text
    counts: list[int] = []
    pos = 0
    while pos < len(text):
        value, shift = 0, 0
        while True:
            group = ord(text[pos]) - 48
            pos += 1
            value |= (group & 0x1F) << shift
            shift += 5
            if not group & 0x20:
                if group & 0x10:
                    value -= 1 << shift  # sign-extend
                break
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def coco_rle_to_mask(rle: dict) -> np.ndarray:
    """The H, W bool mask of a COCO RLE, compressed (str or bytes counts) or not (a list of column-major
    runs); the inverse of `coco_rle`."""
    counts = rle["counts"]
    counts = np.asarray(
        decompress_counts(counts) if isinstance(counts, (str, bytes)) else counts, dtype=np.int64
    )
    height, width = (int(s) for s in rle["size"])
    values = np.arange(counts.size) % 2 == 1
    return np.ascontiguousarray(np.repeat(values, counts).reshape(width, height).T)
