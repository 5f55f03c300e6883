"""The compressed mask store (`sam2_ui.engine.masks`): the same pixels as the bit-packed store it replaced,
exact undo and redo, session files old and new, and far less memory on a long session."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from model.images.rle import decode_rle
from sam2_ui import Session
from sam2_ui.engine.document import SessionState, from_document
from sam2_ui.engine.masks import PROPAGATION, MaskEntry
from sam2_ui.output.persist import _Bounds
from tests.support.session_helpers import all_masks, make_frames, predictor
from tests.support.synthetic_masks import frame_masks

OLD_SESSION_FILE = Path(__file__).parent / "data" / "session_v1_bitpacked.json"
SHAPES = [(1, 1), (3, 5), (5, 3), (1, 9), (64, 96), (719, 1281), (1281, 719)]


def edge_case_masks(shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Masks that stress a codec: empty, full, lone pixels at both ends, a checkerboard, noise, stripes."""
    height, width = shape
    rng = np.random.default_rng(height * 10_000 + width)
    first, last = np.zeros(shape, bool), np.zeros(shape, bool)
    first[0, 0] = True
    last[-1, -1] = True
    rows, cols = np.indices(shape)
    masks = {
        "empty": np.zeros(shape, bool),
        "full": np.ones(shape, bool),
        "first pixel": first,
        "last pixel": last,
        "all but the last pixel": ~last,
        "checkerboard": (rows + cols) % 2 == 1,
        "columns": cols % 2 == 0,
        "last column": cols == width - 1,
    }
    for density in (0.001, 0.5, 0.999):
        masks[f"noise {density}"] = rng.random(shape) < density
    return masks


def bit_packed_round_trip(mask: np.ndarray) -> np.ndarray:
    """What the previous store gave back: ``np.packbits`` of the row-major pixels, unpacked."""
    return np.unpackbits(np.packbits(mask.ravel()), count=mask.size).view(bool).reshape(mask.shape)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_compressed_masks_read_back_as_the_bit_packed_ones_on_edge_cases(shape):
    for name, mask in edge_case_masks(shape).items():
        entry = MaskEntry.from_mask(mask, PROPAGATION, 3)
        read = entry.mask(shape)
        assert read.dtype == bool and read.shape == shape, name
        assert np.array_equal(read, mask), name
        assert np.array_equal(read, bit_packed_round_trip(mask)), name
        assert entry.area == np.count_nonzero(mask), name
        assert (entry.packed is None) == (entry.area == 0), name


def test_compressed_masks_read_back_as_the_bit_packed_ones_on_tracked_like_masks():
    for frame in range(0, 600, 37):
        for obj, mask in frame_masks(frame, 5, 180, 321, seed=frame).items():
            read = MaskEntry.from_mask(mask, PROPAGATION, 1).mask((180, 321))
            assert np.array_equal(read, mask), (frame, obj)
            assert np.array_equal(read, bit_packed_round_trip(mask)), (frame, obj)


def test_masks_of_any_dtype_store_their_nonzero_pixels():
    values = np.array([[0, 2, 0], [255, 0, 1]], np.uint8)
    for mask in (values, values.astype(np.float32), values.astype(bool), values.T.copy().T):
        assert np.array_equal(MaskEntry.from_mask(mask, PROPAGATION, 0).mask((2, 3)), values > 0)


def test_each_read_is_a_new_array_and_the_entry_stays_the_same():
    mask = np.zeros((4, 6), bool)
    mask[1:3, 2:5] = True
    entry = MaskEntry.from_mask(mask, PROPAGATION, 0)
    mask[:] = False  # the caller's array is not the entry's
    first = entry.mask((4, 6))
    first[:] = False
    assert entry.mask((4, 6)).sum() == 6 and entry.area == 6
    with pytest.raises(AttributeError):
        entry.packed = None  # immutable
    assert not hasattr(entry, "__dict__")  # slots: no room for a decompressed copy to hide in


def test_an_entry_refuses_another_frame_size_and_a_mask_that_is_not_two_dimensional():
    entry = MaskEntry.from_mask(np.ones((10, 20), bool), PROPAGATION, 0)
    with pytest.raises(ValueError, match="stored for frames of another size, not 20x30"):
        entry.mask((20, 30))
    with pytest.raises(ValueError, match=r"a mask is H, W; got an array of shape \(1, 10, 20\)"):
        MaskEntry.from_mask(np.ones((1, 10, 20), bool), PROPAGATION, 0)


def test_noise_stays_within_a_few_bytes_of_bit_packed_and_regular_patterns_shrink():
    shape = (719, 1281)
    packed_size = np.packbits(np.zeros(shape, bool)).nbytes
    masks = edge_case_masks(shape)
    assert MaskEntry.from_mask(masks["noise 0.5"], PROPAGATION, 0).nbytes < packed_size * 1.01
    for name in ("full", "checkerboard", "columns", "last column", "first pixel"):
        assert MaskEntry.from_mask(masks[name], PROPAGATION, 0).nbytes < packed_size / 50, name


# ------------------------------------------------------------------------------------ store and history
def track(state: SessionState, frames: range, objects: int, seed: int) -> None:
    """One tracking run as the engine records it: one edit, every frame's masks, one undo step."""
    height, width = state.store.shape
    clock = state.tick()
    change = state.change("propagate forward")
    for frame in frames:
        masks = frame_masks(frame, objects, height, width, seed)
        state.put_tracked(change, frame, masks, {obj: (0.9, 5.0) for obj in masks}, clock)
    state.history.push(change.step())


def tracked_masks(shape: tuple[int, int], frames: range, objects: int, seed: int) -> dict:
    """(frame, object) -> the mask `track` stores there."""
    return {
        (frame, obj): mask
        for frame in frames
        for obj, mask in frame_masks(frame, objects, *shape, seed).items()
    }


def store_pixels(state: SessionState) -> dict[tuple[int, int], np.ndarray]:
    return {key: entry.mask(state.store.shape) for key, entry in state.store.items()}


def assert_pixels(state: SessionState, expected: dict[tuple[int, int], np.ndarray]) -> None:
    held = store_pixels(state)
    assert sorted(held) == sorted(expected)
    for key, mask in expected.items():
        assert np.array_equal(held[key], mask), key


def test_undo_and_redo_of_tracking_runs_restore_exactly_the_same_pixels():
    state = SessionState((97, 131), max_undo=10)
    track(state, range(0, 30), 5, seed=1)
    track(state, range(10, 40), 5, seed=2)  # replaces frames 10..29, adds 30..39
    first = tracked_masks((97, 131), range(0, 30), 5, seed=1)
    second = tracked_masks((97, 131), range(10, 40), 5, seed=2)
    after_both = {**first, **second}
    assert_pixels(state, after_both)

    state.restore(state.history.undo(), after=False)
    assert_pixels(state, first)
    state.restore(state.history.undo(), after=False)
    assert_pixels(state, {})
    state.restore(state.history.redo(), after=True)
    assert_pixels(state, first)
    state.restore(state.history.redo(), after=True)
    assert_pixels(state, after_both)


def test_the_undo_history_holds_the_stores_compressed_entries_not_pixels():
    state = SessionState((97, 131), max_undo=10)
    track(state, range(0, 12), 3, seed=1)
    track(state, range(0, 12), 3, seed=2)
    first, second = state.history.steps
    for key, (before, after) in second.masks.items():
        assert after is state.store.get(*key)
        assert before is first.masks[key][1]  # the entry the first run stored: shared, not copied
        for entry in (before, after):
            assert isinstance(entry, MaskEntry) and isinstance(entry.packed, (bytes, type(None)))
    undone = state.history.undo()
    before_entries = {key: pair[0] for key, pair in undone.masks.items()}
    state.restore(undone, after=False)
    for (frame, obj), entry in before_entries.items():
        assert state.store.get(frame, obj) is entry  # the very entries, not copies


@pytest.mark.slow
def test_a_long_session_holds_far_less_than_bit_packed_masks_history_included():
    height, width = 720, 1280
    track(SessionState((height, width), 1), range(1), 5, seed=0)  # imports and caches before measuring
    tracemalloc.start()
    try:
        state = SessionState((height, width), max_undo=10)
        track(state, range(100, 140), 5, seed=0)
        track(state, range(100, 140), 5, seed=1)  # the first run's entries live on in the undo history
        retained, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    non_empty = sum(entry.area > 0 for _, entry in state.store.items())
    assert non_empty > 150  # most objects are on most frames: the bound below is about real masks
    bit_packed = non_empty * np.packbits(np.zeros((height, width), bool)).nbytes
    assert state.store.nbytes < bit_packed / 10
    assert retained < 2 * bit_packed / 10  # two runs held: store and history, objects and dicts included


# ------------------------------------------------------------------------------------------ session files
def test_the_document_round_trip_gives_back_the_same_pixels():
    state = SessionState((61, 83), max_undo=10)
    track(state, range(25), 4, seed=3)
    masks = tracked_masks((61, 83), range(25), 4, seed=3)
    ragged = edge_case_masks((61, 83))
    change = state.change("masks")
    for frame, name in enumerate(["checkerboard", "noise 0.5", "first pixel", "last pixel", "full"]):
        change.put_mask(frame, 9, MaskEntry.from_mask(ragged[name], PROPAGATION, 1))
        masks[frame, 9] = ragged[name]
    state.history.push(change.step())
    document = json.loads(json.dumps({**state.to_document(), "next_object_id": 10}))
    saved = from_document(document, _Bounds(25, 61, 83, 10), with_masks=True)
    assert sorted(saved.entries) == sorted(masks)
    for key, entry in saved.entries.items():
        assert np.array_equal(entry.mask((61, 83)), masks[key]), key
        assert entry.area == np.count_nonzero(masks[key]) and entry.iou == state.store.get(*key).iou


def test_a_session_file_written_by_the_bit_packed_store_loads_with_the_same_pixels(tmp_path):
    document = json.loads(OLD_SESSION_FILE.read_text())
    written = {(r["frame"], r["object"]): decode_rle(r["rle"]) for r in document["masks"]}
    frames = make_frames()
    with Session.load(OLD_SESSION_FILE, predictor(), source=frames) as loaded:
        held = {key: mask for key, mask in all_masks(loaded).items() if key in written}
        assert sorted(held) == sorted(written)
        for key, mask in written.items():
            assert np.array_equal(held[key], mask), key
        assert not any(mask.any() for key, mask in all_masks(loaded).items() if key not in written)
        saved_again = json.loads(loaded.save(tmp_path / "again.json").read_text())
    assert saved_again["masks"] == document["masks"]  # the same file content, mask for mask
