"""What comes out of a session: rendering, exports read back with independent readers, save and load, and
"segment everything" on an image."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from sam2_ui import Session, SessionError
from sam2_ui.engine.prompts import action_to_json
from tests.support.session_helpers import (
    HEIGHT,
    NUM_FRAMES,
    WIDTH,
    all_masks,
    assert_same_masks,
    block_box,
    disc_centre,
    make_frames,
    predictor,
    state_of,
    write_mp4,
)

# pycocotools.decode trips a numpy 2 deprecation warning.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

FPS = 10


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_mp4(make_frames(), tmp_path_factory.mktemp("video") / "clip.mp4", fps=FPS)


@pytest.fixture(scope="module")
def tracked(video):
    """A session on an mp4 file: disc and block tracked through the clip, then the disc corrected on frame 4
    (so frames 0, 1, 3 and 5 of the disc are stale). Tests only read it."""
    with Session.open(video, predictor()) as s:
        disc, block = s.add_object("red disc"), s.add_object("block")
        s.add_point(2, disc, *disc_centre(2))
        s.add_box(2, block, *block_box(2))
        list(s.propagate("both"))
        s.add_point(4, disc, *disc_centre(4), positive=False)
        yield s


def test_tracked_fixture_is_what_the_tests_expect(tracked):
    assert tracked.fps == pytest.approx(FPS)
    assert tracked.tracked_frames() == list(range(NUM_FRAMES))
    assert tracked.stale_frames() == [0, 1, 3, 5]


# ------------------------------------------------------------------------------------------------ render
def test_render_draws_overlays_and_prompt_markers_at_display_size(tracked):
    raw = tracked.frame(2)
    image, mapping = tracked.render(2)
    assert image.shape == raw.shape and mapping.display_size == (WIDTH, HEIGHT)
    mask = tracked.mask(2, 1)
    assert not np.array_equal(image[mask], raw[mask])  # the overlay tints the object
    bare, _ = tracked.render(2, prompts=False)
    x, y = (round(v) for v in disc_centre(2))
    assert not np.array_equal(image[y, x], bare[y, x])  # the click marker
    small, mapping = tracked.render(2, display_size=(48, 48))
    assert small.shape == (32, 48, 3) and mapping.display_size == (48, 32)


def test_display_coordinates_map_back_to_frame_pixels(tracked):
    tracked.render(0, display_size=(48, 32))
    assert tracked.display_to_frame(10, 5) == pytest.approx((20.5, 10.5))
    assert tracked.display_to_frame(10, 5, display_size=(WIDTH, HEIGHT)) == (10, 5)
    x, y = tracked.display_to_frame(47.4, 1, display_size=(48, 32))
    assert x < WIDTH - 0.5  # a click on the last display pixel lands on the frame


# ------------------------------------------------------------------------------------------------ exports
def test_per_object_pngs_hold_each_mask(tracked, tmp_path):
    files = tracked.export_pngs(tmp_path / "pngs")
    assert len(files) == 2 * NUM_FRAMES
    for frame in range(NUM_FRAMES):
        for obj, folder in ((1, "001_red_disc"), (2, "002_block")):
            pixels = np.asarray(Image.open(tmp_path / "pngs" / folder / f"{frame:05d}.png"))
            assert set(np.unique(pixels)) <= {0, 255}
            assert np.array_equal(pixels == 255, tracked.mask(frame, obj))


def test_davis_pngs_index_objects_in_id_order(tracked, tmp_path):
    files = tracked.export_davis(tmp_path / "davis")
    assert [f.name for f in files] == [f"{i:05d}.png" for i in range(NUM_FRAMES)]
    for frame, path in enumerate(files):
        image = Image.open(path)
        assert image.mode == "P" and image.getpalette()[3:6] == [128, 0, 0]
        expected = np.zeros((HEIGHT, WIDTH), np.uint8)
        for obj in (1, 2):  # object ids 1, 2 -> values 1, 2; the higher id wins overlaps
            expected[tracked.mask(frame, obj)] = obj
        assert np.array_equal(np.asarray(image), expected)


def test_coco_json_decodes_to_the_masks_with_names_and_colours(tracked, tmp_path):
    path = tracked.export_coco(tmp_path / "masks.json")
    data = json.loads(path.read_text())
    assert data["videos"][0]["num_frames"] == NUM_FRAMES and data["videos"][0]["fps"] == pytest.approx(FPS)
    assert [(c["id"], c["name"], c["color"]) for c in data["categories"]] == [
        (o.id, o.name, list(o.color)) for o in tracked.objects
    ]
    seen = set()
    for ann in data["annotations"]:
        decoded = coco_mask.decode(ann["segmentation"]).astype(bool)
        assert np.array_equal(decoded, tracked.mask(ann["image_id"], ann["category_id"]))
        seen.add((ann["image_id"], ann["category_id"]))
    nonempty = {key for key, mask in all_masks(tracked).items() if mask.any()}
    assert seen == nonempty


def test_overlay_video_has_the_source_fps_and_frame_count(tracked, tmp_path):
    path = tracked.export_video(tmp_path / "overlay.mp4")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        rate = stream.average_rate
    assert rate == Fraction(FPS) and len(frames) == NUM_FRAMES
    # H.264 at 4:2:0 blurs the speckled masks of random weights, but each video frame is still nearest
    # to its own rendered frame: one video frame per frame, in order.
    rendered = [tracked.render(i, prompts=False)[0].astype(int) for i in range(NUM_FRAMES)]
    for i, frame in enumerate(frames):
        assert np.argmin([np.abs(frame - r).mean() for r in rendered]) == i


def test_exports_to_unwritable_places_raise_session_error(tracked, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    before = state_of(tracked)
    for call in (
        lambda: tracked.export_pngs(blocker / "pngs"),
        lambda: tracked.export_davis(blocker),
        lambda: tracked.export_coco(blocker / "masks.json"),
        lambda: tracked.export_video(tmp_path / "overlay.gif"),
        lambda: tracked.save(blocker / "session.json"),
        lambda: tracked.save(tmp_path),  # a folder, not a file
    ):
        with pytest.raises(SessionError, match="Cannot"):
            call()
    assert state_of(tracked) == before
    assert blocker.read_text() == "not a folder"


def test_exports_with_no_masks_say_so(tmp_path):
    with Session.open(make_frames(2), predictor()) as s:
        s.add_object()
        with pytest.raises(SessionError, match="no masks to export"):
            s.export_pngs(tmp_path / "pngs")


# ------------------------------------------------------------------------------------------------ save/load
def test_save_and_load_restore_objects_prompts_masks_and_stale_frames(tracked, tmp_path):
    path = tracked.save(tmp_path / "session.json")
    with Session.load(path, predictor()) as loaded:
        assert loaded.source_path == tracked.source_path
        assert loaded.fps == tracked.fps and loaded.size == tracked.size
        assert loaded.objects == tracked.objects
        assert [action_to_json(a) for a in loaded.prompt_log] == [
            action_to_json(a) for a in tracked.prompt_log
        ]
        assert_same_masks(all_masks(loaded), all_masks(tracked))
        assert loaded.stale_frames() == tracked.stale_frames()
        assert loaded.selected == tracked.selected
        assert not loaded.can_undo


@pytest.mark.slow
def test_a_loaded_session_replays_to_identical_masks_and_carries_on_identically(tracked, tmp_path, video):
    path = tracked.save(tmp_path / "session.json")
    with Session.load(path, predictor(), replay=True) as replayed:
        assert_same_masks(all_masks(replayed), all_masks(tracked))
        assert replayed.stale_frames() == tracked.stale_frames()
        # a new prompt after loading meets the same predictor state as in the original session
        with Session.load(path, predictor()) as original_copy:
            for s in (replayed, original_copy):
                s.add_point(3, 1, *disc_centre(3))
                list(s.propagate("forward", start=3))
            assert_same_masks(all_masks(replayed), all_masks(original_copy))


def test_a_session_file_moved_with_its_video_still_loads(tracked, tmp_path, video):
    folder = tmp_path / "project"
    folder.mkdir()
    moved = folder / "clip.mp4"
    moved.write_bytes(video.read_bytes())
    with Session.open(moved, predictor()) as s:
        s.add_object()
        s.add_point(0, 1, *disc_centre(0))
        path = s.save(folder / "session.json")
        masks = all_masks(s)
    other = tmp_path / "elsewhere"
    folder.rename(other)
    with Session.load(other / "session.json", predictor()) as loaded:
        assert loaded.source_path == (other / "clip.mp4").resolve()
        assert_same_masks(all_masks(loaded), masks)
    assert not path.exists()


def test_sessions_on_frames_in_memory_load_with_the_frames_given_again(tmp_path):
    frames = make_frames(3)
    with Session.open(frames, predictor()) as s:
        s.add_object()
        s.add_box(1, 1, *block_box(1))
        path = s.save(tmp_path / "s.json")
        masks = all_masks(s)
    with pytest.raises(SessionError, match="frames in memory"):
        Session.load(path, predictor())
    with Session.load(path, predictor(), source=frames) as loaded:
        assert_same_masks(all_masks(loaded), masks)


@pytest.mark.parametrize("problem", ["missing file", "not json", "other format", "other video", "gone video"])
def test_loading_a_wrong_file_or_video_raises_session_error(tracked, tmp_path, problem):
    path = tmp_path / "session.json"
    if problem == "not json":
        path.write_text("{oops")
    elif problem == "other format":
        path.write_text(json.dumps({"format": "something else"}))
    elif problem != "missing file":
        tracked.save(path)
    source = None
    if problem == "other video":
        source = make_frames()[::-1].copy()
    if problem == "gone video":
        data = json.loads(path.read_text())
        data["source"] = {"kind": "path", "path": str(tmp_path / "gone.mp4"), "relative": "gone.mp4"}
        path.write_text(json.dumps(data))
    with pytest.raises(SessionError) as error:
        Session.load(path, predictor(), source=source)
    message = str(error.value)
    assert {
        "missing file": "no session file",
        "not json": "not a sam2-ui session",
        "other format": "not a sam2-ui session",
        "other video": "different first frame",
        "gone video": "not there anymore",
    }[problem] in message


# ------------------------------------------------------------------------------------------------ images
def test_segment_everything_makes_one_object_per_mask_as_one_undo_step(tmp_path):
    image_path = tmp_path / "photo.png"
    Image.fromarray(make_frames(1)[0]).save(image_path)
    with Session.open(image_path, predictor()) as s:
        assert s.is_image
        # Random weights give large overlapping masks: keep them all (no NMS, no quality filter).
        ids = s.segment_everything(
            points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0
        )
        assert len(ids) >= 2 and ids == [o.id for o in s.objects]
        areas = [s.mask(0, obj).sum() for obj in ids]
        assert all(area > 0 for area in areas)
        for obj in ids:
            assert s.prompts(0)[obj].mask is not None  # each mask is the object's mask prompt
        after = all_masks(s)
        assert s.undo() == "segment everything"
        assert s.objects == [] and all_masks(s) == {}
        s.redo()
        assert_same_masks(all_masks(s), after)
        # the objects can be refined and "tracked" like any other
        s.add_point(0, ids[0], 5, 5, positive=False)
        events = list(s.propagate())
        assert [e.frame_index for e in events] == [0]
        assert set(events[0].masks) == set(ids)
