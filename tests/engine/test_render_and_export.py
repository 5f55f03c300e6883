"""The engine's pure building blocks: object colours, frame rendering with its display mapping, and exporters.

Exports are read back with independent readers (PIL, pycocotools, PyAV) and compared with the masks.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO

from sam2_ui.engine.colors import PALETTE, davis_palette, davis_palette_flat, object_color
from sam2_ui.engine.errors import SessionError
from sam2_ui.output.export import (
    davis_indices,
    export_coco_json,
    export_davis_pngs,
    export_object_pngs,
    export_overlay_video,
    fps_fraction,
    object_folder_name,
)
from sam2_ui.output.render import DisplayMapping, render_frame

# pycocotools.decode trips a numpy 2 deprecation warning.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

GREY = (100, 100, 100)
RED, BLUE = (255, 0, 0), (0, 0, 255)


def grey_frame(h: int, w: int) -> np.ndarray:
    return np.full((h, w, 3), GREY, np.uint8)


def blend(color, alpha=0.45):
    return tuple(round(g + alpha * (c - g)) for g, c in zip(GREY, color))


def inner(mask: np.ndarray) -> np.ndarray:
    """The mask minus its 4-neighbourhood boundary (the image border counts as inside)."""
    p = np.pad(mask, 1, mode="edge")
    return mask & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]


# ------------------------------------------------------------------------------------------------ colours
def test_object_colors_are_distinct_and_stable_for_50_ids():
    colors = [object_color(i) for i in range(50)]
    assert colors == [object_color(i) for i in range(50)]
    assert colors[: len(PALETTE)] == list(PALETTE)
    assert all(len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c) for c in colors)
    rgb = np.array(colors, float)
    distance = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1) + np.eye(50) * 1e9
    assert distance.min() > 25  # no two of the first 50 objects look alike
    assert len({object_color(i) for i in range(1000, 1100)}) == 100  # no fixed limit on ids


def test_davis_palette_is_the_standard_one():
    palette = davis_palette()
    assert len(palette) == 256 and len(davis_palette_flat()) == 768
    assert palette[:8] == (
        (0, 0, 0),
        (128, 0, 0),
        (0, 128, 0),
        (128, 128, 0),
        (0, 0, 128),
        (128, 0, 128),
        (0, 128, 128),
        (128, 128, 128),
    )
    assert palette[8] == (64, 0, 0) and palette[255] == (224, 224, 192)


# ------------------------------------------------------------------------------------------------ render
def test_overlay_colour_inside_masks_and_frame_untouched_outside():
    mask = np.zeros((40, 60), bool)
    mask[10:30, 15:45] = True
    image, mapping = render_frame(grey_frame(40, 60), {1: mask}, {1: RED}, outline=False)
    assert image.shape == (40, 60, 3) and image.dtype == np.uint8
    assert mapping.display_size == mapping.frame_size == (60, 40)
    assert (image[mask] == blend(RED)).all()
    assert (image[~mask] == GREY).all()


def test_outline_pixels_lie_on_the_mask_boundary():
    mask = np.zeros((40, 60), bool)
    mask[5:25, 10:30] = True
    mask[0:12, 40:60] = True  # touches the top and right image borders
    image, _ = render_frame(grey_frame(40, 60), {2: mask}, {2: BLUE})
    edge = mask & ~inner(mask)
    assert (image[edge] == BLUE).all()
    assert (image[inner(mask)] == blend(BLUE)).all()
    assert (image[~mask] == GREY).all()
    assert (image[0, 41:59] == blend(BLUE)).all()  # no outline along the image border


def test_selected_object_is_drawn_on_top():
    a = np.zeros((30, 30), bool)
    a[5:20, 5:20] = True
    b = np.zeros((30, 30), bool)
    b[10:25, 10:25] = True
    plain, _ = render_frame(grey_frame(30, 30), {1: a, 2: b}, {1: RED, 2: BLUE}, outline=False)
    chosen, _ = render_frame(grey_frame(30, 30), {1: a, 2: b}, {1: RED, 2: BLUE}, selected=1, outline=False)
    # Overlap: object 2 is on top by default, the selected object 1 when it is selected.
    assert plain[15, 15, 2] > plain[15, 15, 0]
    assert chosen[15, 15, 0] > chosen[15, 15, 2]


def test_masks_render_at_display_size_for_large_frames():
    mask = np.zeros((1080, 1920), bool)
    mask[300:900, 600:1500] = True
    image, mapping = render_frame(grey_frame(1080, 1920), {1: mask}, {1: RED}, display_size=(640, 640))
    assert image.shape == (360, 640, 3) and mapping.display_size == (640, 360)
    assert (image[110:290, 210:490] == blend(RED)).all()  # well inside, mapped by 1/3
    assert (image[:90] == GREY).all() and (image[310:] == GREY).all()
    assert (image[:, :190] == GREY).all() and (image[:, 510:] == GREY).all()


def find(image: np.ndarray, color, around: tuple[int, int], reach: int) -> bool:
    u, v = around
    patch = image[max(0, v - reach) : v + reach + 1, max(0, u - reach) : u + reach + 1]
    return bool((patch == color).all(axis=-1).any())


def test_point_and_box_markers_are_drawn_at_the_mapped_display_position():
    frame = grey_frame(720, 1280)
    points = [(1, 300.0, 200.0, True), (1, 900.0, 500.0, False)]
    boxes = [(2, 200.0, 100.0, 600.0, 500.0)]
    image, mapping = render_frame(frame, {}, {1: BLUE, 2: RED}, points, boxes, display_size=(640, 480))
    assert mapping.display_size == (640, 360)

    u, v = (round(c) for c in mapping.to_display(300, 200))
    assert (image[v, u] == 255).all()  # centre of the white plus
    assert (image[v - 2, u] == 255).all()  # its vertical arm
    assert (image[v + 2, u + 2] == BLUE).all()  # disc filled with the object colour
    assert (image[v, u + 20] == GREY).all()

    u, v = (round(c) for c in mapping.to_display(900, 500))
    assert (image[v, u] == 255).all()  # centre of the white minus
    assert (image[v - 2, u] == BLUE).all()  # no vertical arm on a negative point
    assert find(image, (235, 30, 30), (u, v), reach=8)  # red ring

    for corner in [(200, 100), (600, 100), (200, 500), (600, 500)]:
        u, v = (round(c) for c in mapping.to_display(*corner))
        assert (image[v, u] == RED).all()
    u, v = (round(c) for c in mapping.to_display(400, 300))
    assert (image[v, u] == GREY).all()  # a box is an outline, not a fill


@pytest.mark.parametrize(
    "frame_size, max_size, display_size",
    [
        ((300, 200), (125, 125), (125, 83)),
        ((200, 300), (90, 1000), (90, 135)),
        ((64, 48), (640, 480), (64, 48)),
    ],
)
def test_display_mapping_round_trips(frame_size, max_size, display_size):
    mapping = DisplayMapping.fit(frame_size, max_size)
    assert mapping.display_size == display_size
    for x, y in [(0, 0), (10.25, 3.5), (frame_size[0] - 1, frame_size[1] - 1), (-0.5, 7)]:
        assert np.allclose(mapping.to_frame(*mapping.to_display(x, y)), (x, y))
        assert np.allclose(mapping.to_display(*mapping.to_frame(x, y)), (x, y))
    w, h = frame_size
    assert mapping.contains(0, 0) and mapping.contains(w - 1, h - 1) and mapping.contains(-0.5, -0.5)
    assert not mapping.contains(w - 0.5, 0) and not mapping.contains(0, -0.6) and not mapping.contains(0, h)


def test_display_mapping_matches_pil_resize_geometry_for_non_square_frames():
    w, h = 300, 200
    mapping = DisplayMapping.fit((w, h), (125, 125))
    dw, dh = mapping.display_size
    # A bilinear resize keeps a linear ramp linear, so each display pixel holds the frame x (or y) it samples.
    ramp_x = Image.fromarray(np.tile(np.arange(w, dtype=np.float32), (h, 1)))
    ramp_y = Image.fromarray(np.tile(np.arange(h, dtype=np.float32)[:, None], (1, w)))
    sampled_x = np.asarray(ramp_x.resize((dw, dh), Image.Resampling.BILINEAR))[dh // 2]
    sampled_y = np.asarray(ramp_y.resize((dw, dh), Image.Resampling.BILINEAR))[:, dw // 2]
    inside = slice(2, -2)  # the filter clamps at the image edges
    us, vs = np.arange(dw), np.arange(dh)
    # Exact up to the filter's discrete weights (< 0.05 px); a half-pixel convention slip would be 1.2 px.
    assert np.allclose(sampled_x[inside], [mapping.to_frame(u, 0)[0] for u in us[inside]], atol=0.05)
    assert np.allclose(sampled_y[inside], [mapping.to_frame(0, v)[1] for v in vs[inside]], atol=0.05)

    # render_frame resizes the frame with that geometry too.
    frame = np.repeat(np.tile((np.arange(w) * 0.8).astype(np.uint8), (h, 1))[..., None], 3, axis=2)
    image, _ = render_frame(frame, {}, {}, display_size=(125, 125))
    expected = [0.8 * mapping.to_frame(u, 0)[0] for u in us[inside]]
    assert np.abs(image[dh // 2, inside, 0].astype(float) - expected).max() <= 1.0


# ------------------------------------------------------------------------------------------------ exports
H, W = 24, 32  # a non-square video: size (W, H) = (32, 24)


@pytest.fixture
def masks_by_frame() -> dict[int, dict[int, np.ndarray]]:
    rng = np.random.default_rng(0)
    out = {f: {oid: rng.random((H, W)) < 0.3 for oid in (1, 3, 7)} for f in (0, 2, 3)}
    out[2][3][:] = False  # an empty mask
    del out[3][7]  # an object missing on a frame
    return out


def test_object_pngs_read_back_exactly(tmp_path, masks_by_frame):
    files = export_object_pngs(masks_by_frame, tmp_path / "pngs", {1: "red car", 3: "dog/cat"})
    folders = {1: "001_red_car", 3: "003_dog_cat", 7: "007"}
    assert [object_folder_name(o, n) for o, n in [(1, "red car"), (3, "dog/cat"), (7, None)]] == list(
        folders.values()
    )
    expected = [tmp_path / "pngs" / folders[o] / f"{f:05d}.png" for o in (1, 3, 7) for f in (0, 2, 3)]
    assert files == expected
    assert sorted(p for p in (tmp_path / "pngs").rglob("*") if p.is_file()) == sorted(expected)
    for oid in (1, 3, 7):
        for frame in (0, 2, 3):
            image = Image.open(tmp_path / "pngs" / folders[oid] / f"{frame:05d}.png")
            assert image.mode == "L" and image.size == (W, H)
            mask = masks_by_frame[frame].get(oid, np.zeros((H, W), bool))
            assert np.array_equal(np.asarray(image), mask.astype(np.uint8) * 255)


def test_object_pngs_replace_an_earlier_export_of_the_same_object(tmp_path, masks_by_frame):
    folder = tmp_path / "001"
    folder.mkdir()
    (folder / "00099.png").write_bytes(b"stale")
    (folder / "notes.txt").write_text("mine")
    export_object_pngs({0: {1: masks_by_frame[0][1]}}, tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["00000.png", "notes.txt"]
    assert not list(tmp_path.glob(".partial-*"))


def test_davis_pngs_are_indexed_with_the_davis_palette(tmp_path, masks_by_frame):
    files = export_davis_pngs(masks_by_frame, tmp_path / "davis", num_frames=5, size=(W, H))
    assert files == [tmp_path / "davis" / f"{f:05d}.png" for f in range(5)]
    assert sorted((tmp_path / "davis").iterdir()) == files
    indices = davis_indices([1, 3, 7])
    assert indices == {1: 1, 3: 2, 7: 3}
    for frame, path in enumerate(files):
        image = Image.open(path)
        assert image.mode == "P" and image.size == (W, H)
        assert image.getpalette()[:768] == davis_palette_flat()
        expected = np.zeros((H, W), np.uint8)
        for oid in sorted(masks_by_frame.get(frame, {})):  # higher ids win overlaps
            expected[masks_by_frame[frame][oid]] = indices[oid]
        assert np.array_equal(np.asarray(image), expected)
    assert not np.asarray(Image.open(files[1])).any() and not np.asarray(Image.open(files[4])).any()


def test_davis_object_ids_keep_each_object_its_slot(tmp_path, masks_by_frame):
    only_7 = {0: {7: masks_by_frame[0][7]}}
    (path,) = export_davis_pngs(only_7, tmp_path, num_frames=1, size=(W, H), object_ids=[1, 3, 7])
    assert set(np.unique(np.asarray(Image.open(path)))) <= {0, 3}
    with pytest.raises(SessionError, match="at most 255 objects"):
        davis_indices(range(300))


def test_coco_json_decodes_to_the_masks_with_pycocotools(tmp_path, masks_by_frame):
    path = export_coco_json(
        masks_by_frame,
        tmp_path / "out" / "masks.json",
        {1: "car", 3: "dog", 9: "unused"},
        {1: RED},
        (W, H),
        29.97,
    )
    data = json.loads(path.read_text())
    assert data["videos"] == [{"id": 1, "width": W, "height": H, "num_frames": 3, "fps": 30000 / 1001}]
    assert [(c["id"], c["name"], c["color"]) for c in data["categories"]] == [
        (1, "car", list(RED)),
        (3, "dog", list(object_color(3))),
        (7, "object 7", list(object_color(7))),
        (9, "unused", list(object_color(9))),
    ]
    coco = COCO(str(path))  # the official reader indexes it
    seen = set()
    for ann in data["annotations"]:
        frame, oid = ann["image_id"], ann["object_id"]
        decoded = coco_mask.decode(ann["segmentation"])
        assert np.array_equal(decoded.astype(bool), masks_by_frame[frame][oid])
        assert np.array_equal(coco.annToMask(coco.anns[ann["id"]]).astype(bool), masks_by_frame[frame][oid])
        assert ann["area"] == masks_by_frame[frame][oid].sum() == coco_mask.area(ann["segmentation"])
        assert ann["bbox"] == coco_mask.toBbox(ann["segmentation"]).tolist()
        assert ann["category_id"] == oid
        seen.add((frame, oid))
    nonempty = {(f, o) for f, masks in masks_by_frame.items() for o, m in masks.items() if m.any()}
    assert seen == nonempty and (2, 3) not in seen
    assert [img["id"] for img in data["images"]] == [0, 2, 3]


def read_video(path: Path) -> tuple[Fraction, int, tuple[int, int], np.ndarray]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return stream.average_rate, len(frames), (stream.width, stream.height), frames[0]


@pytest.mark.parametrize(
    "fps, rate", [(29.97, Fraction(30000, 1001)), (25, Fraction(25)), (12.5, Fraction(25, 2))]
)
def test_overlay_video_has_exact_frame_count_and_fps(tmp_path, fps, rate):
    frames = (np.full((25, 33, 3), (40 * i, 200, 90), np.uint8) for i in range(7))  # odd width and height
    path = export_overlay_video(frames, tmp_path / "overlay.mp4", fps)
    average_rate, count, size, first = read_video(path)
    assert (average_rate, count, size) == (rate, 7, (34, 26))  # padded to even dimensions
    assert np.abs(first[:25, :33].astype(int) - (0, 200, 90)).max() < 12
    assert [p.name for p in tmp_path.iterdir()] == ["overlay.mp4"]


def test_overlay_video_falls_back_to_mpeg4_without_libx264(tmp_path, monkeypatch):
    monkeypatch.setattr(av, "codecs_available", set(av.codecs_available) - {"libx264"})
    frames = [np.full((24, 32, 3), 50 * i, np.uint8) for i in range(5)]
    path = export_overlay_video(frames, tmp_path / "v.mp4", 30000 / 1001)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    average_rate, count, size, _ = read_video(path)
    assert (average_rate, count, size) == (Fraction(30000, 1001), 5, (32, 24))


def test_overlay_video_resizes_frames_to_the_requested_size(tmp_path):
    frames = [np.zeros((48, 64, 3), np.uint8)] * 3
    _, count, size, _ = read_video(export_overlay_video(frames, tmp_path / "v.mkv", 10, size=(32, 24)))
    assert (count, size) == (3, (32, 24))


def test_fps_snaps_to_the_rates_videos_store():
    assert fps_fraction(29.97) == Fraction(30000, 1001)
    assert fps_fraction(30000 / 1001) == Fraction(30000, 1001)
    assert fps_fraction(23.976) == Fraction(24000, 1001)
    assert fps_fraction(59.94) == Fraction(60000, 1001)
    assert fps_fraction(24.0) == 24 and fps_fraction(Fraction(7, 3)) == Fraction(7, 3)
    with pytest.raises(ValueError):
        fps_fraction(0)


def test_unwritable_paths_raise_session_error_and_leave_nothing_behind(tmp_path, masks_by_frame):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    under_file = blocker / "exports"
    calls = {
        "pngs": lambda: export_object_pngs(masks_by_frame, under_file),
        "davis": lambda: export_davis_pngs(masks_by_frame, under_file, 4, (W, H)),
        "davis into a file": lambda: export_davis_pngs(masks_by_frame, blocker, 4, (W, H)),
        "coco": lambda: export_coco_json(masks_by_frame, under_file / "m.json", {}, {}, (W, H)),
        "coco onto a folder": lambda: export_coco_json(masks_by_frame, tmp_path, {}, {}, (W, H)),
        "video": lambda: export_overlay_video([grey_frame(8, 8)], under_file / "v.mp4", 25),
        "video suffix": lambda: export_overlay_video([grey_frame(8, 8)], tmp_path / "v.txt", 25),
        "no frames": lambda: export_overlay_video([], tmp_path / "v.mp4", 25),
    }
    for name, call in calls.items():
        with pytest.raises(SessionError) as info:
            call()
        assert str(tmp_path) in str(info.value), name
    assert "a_file is a file" in str(pytest.raises(SessionError, calls["coco"]).value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_a_failed_export_leaves_no_partial_output(tmp_path, masks_by_frame):
    def frames_then_failure():
        yield grey_frame(16, 16)
        yield grey_frame(16, 16)
        raise RuntimeError("decoder broke")

    with pytest.raises(RuntimeError):
        export_overlay_video(frames_then_failure(), tmp_path / "v.mp4", 25)
    bad = {0: {1: np.zeros((H + 1, W), bool)}}
    with pytest.raises(ValueError):
        export_davis_pngs(bad, tmp_path / "davis", 1, (W, H))
    assert list(tmp_path.iterdir()) == []
