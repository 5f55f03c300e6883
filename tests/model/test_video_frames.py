"""Video frame sources: every kind of input gives the same frames, lazily, with a bounded cache."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from model.errors import VideoSourceError
from model.video.frame_source import FrameSource
from model.video.video_file import VideoFileSource
from model.video.video_frames import list_frame_files, open_frames

NUM_FRAMES, HEIGHT, WIDTH = 12, 96, 128
SQUARE, STEP = 16, 8


def make_clip() -> np.ndarray:
    """T, H, W, 3 uint8: a bright square moving right by STEP pixels a frame over a smooth dark gradient."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    background = np.stack([20 + 40 * xx / WIDTH, 30 + 30 * yy / HEIGHT, np.full_like(xx, 50.0)], -1)
    clip = np.repeat(background[None].astype(np.uint8), NUM_FRAMES, 0)
    for t in range(NUM_FRAMES):
        clip[t, 40 : 40 + SQUARE, 8 + STEP * t : 8 + STEP * t + SQUARE] = (240, 230, 220)
    return clip


def square_column(frame: np.ndarray) -> float:
    """Mean column of the bright square: tells which frame of the clip this is."""
    return float(np.nonzero(frame.mean(-1) > 150)[1].mean())


def write_video(path: Path, frames: np.ndarray, codec: str, rotation: float | None = None) -> Path:
    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=10)
    stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    stream.codec_context.gop_size = 4  # several keyframes, so that random access has to seek
    if codec == "libx264":
        stream.options = {"crf": "12"}  # x264 keeps its B-frames: decode order differs from display order
    if rotation is not None:
        stream.set_display_rotation(rotation)
    for frame in frames:
        container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    container.mux(stream.encode())
    container.close()
    return path


def h264_or_mpeg4() -> str:
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return make_clip()


@pytest.fixture(scope="module")
def media(clip, tmp_path_factory) -> dict[str, Path]:
    """The clip as an official JPEG folder, a PNG folder with unpadded names, and an mp4."""
    root = tmp_path_factory.mktemp("clip")
    jpeg_dir, png_dir = root / "jpeg", root / "png"
    jpeg_dir.mkdir()
    png_dir.mkdir()
    for t, frame in enumerate(clip):
        Image.fromarray(frame).save(jpeg_dir / f"{t:05d}.jpg", quality=95)
        Image.fromarray(frame).save(png_dir / f"frame{t + 1}.png")
    return {"jpeg": jpeg_dir, "png": png_dir, "mp4": write_video(root / "clip.mp4", clip, h264_or_mpeg4())}


def test_all_sources_give_same_length_and_order(clip, media):
    expected = [square_column(frame) for frame in clip]
    for video in (media["jpeg"], media["png"], media["mp4"], clip, list(clip)):
        source = open_frames(video)
        assert len(source) == NUM_FRAMES
        assert (source.height, source.width) == (HEIGHT, WIDTH)
        got = [square_column(source.rgb(t)) for t in range(len(source))]
        np.testing.assert_allclose(got, expected, atol=1.0, err_msg=str(video)[:80])


def test_png_folder_equals_array_exactly(clip, media):
    png, array = open_frames(media["png"]), open_frames(clip)
    for t in range(NUM_FRAMES):
        assert np.array_equal(png.rgb(t), array.rgb(t))
        assert torch.equal(png.network_input(t, 64), array.network_input(t, 64))


def test_pil_images_give_same_network_input_as_array(clip):
    pil = open_frames([Image.fromarray(frame) for frame in clip])
    array = open_frames(clip)
    assert torch.equal(pil.network_input(3, 64), array.network_input(3, 64))


def test_mp4_frames_are_close_to_the_originals(clip, media):
    source = open_frames(media["mp4"])
    assert isinstance(source, VideoFileSource) and source.fps == pytest.approx(10.0)
    diffs = [np.abs(source.rgb(t).astype(float) - clip[t]).mean() for t in range(NUM_FRAMES)]
    assert max(diffs) < 4.0


@pytest.mark.parity
def test_jpeg_folder_network_input_matches_official_loader(media):
    from sam2.utils.misc import load_video_frames

    images, height, width = load_video_frames(
        str(media["jpeg"]), 256, offload_video_to_cpu=True, compute_device=torch.device("cpu")
    )
    source = open_frames(media["jpeg"])
    ours = torch.stack([source.network_input(t, 256) for t in range(len(source))])
    assert (height, width) == (source.height, source.width)
    assert ours.dtype == images.dtype == torch.float32
    assert torch.equal(ours, images)


@pytest.mark.parity
def test_every_pixel_level_is_normalised_as_the_official_loader_does(tmp_path):
    from sam2.utils.misc import _load_img_as_tensor

    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    frame = np.stack([levels, levels.T, 255 - levels], -1)
    Image.fromarray(frame).save(tmp_path / "levels.png")
    official, _, _ = _load_img_as_tensor(tmp_path / "levels.png", 16)  # same size: PIL resize is a copy
    official = official.float()
    official -= torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    official /= torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    assert torch.equal(open_frames(frame[None]).network_input(0, 16), official)


def test_mp4_backward_and_random_access_match_sequential(media):
    sequential = open_frames(media["mp4"], cache_size=2)
    frames = [sequential.rgb(t).copy() for t in range(NUM_FRAMES)]
    backward = open_frames(media["mp4"], cache_size=2)
    for t in reversed(range(NUM_FRAMES)):
        assert np.array_equal(backward.rgb(t), frames[t]), t
    jumping = open_frames(media["mp4"], cache_size=1)
    for t in (7, 2, 11, 0, 5, 6, 1, 10):
        assert np.array_equal(jumping.rgb(t), frames[t]), t


def _count_decodes(monkeypatch) -> list[object]:
    decoded: list[object] = []
    original = VideoFileSource._decode_next

    def counting(self):
        frame = original(self)
        decoded.append(frame)
        return frame

    monkeypatch.setattr(VideoFileSource, "_decode_next", counting)
    return decoded


def test_sequential_mp4_reading_decodes_each_frame_once(media, monkeypatch):
    source = open_frames(media["mp4"], cache_size=1)
    decoded = _count_decodes(monkeypatch)
    for t in range(NUM_FRAMES):
        source.rgb(t)
    # Frame 0 was decoded when the file was opened; every other frame once, in one pass.
    assert len(decoded) == NUM_FRAMES - 1


def test_reverse_mp4_reading_keeps_frames_decoded_on_the_way(media, monkeypatch):
    source = open_frames(media["mp4"], cache_size=4)
    decoded = _count_decodes(monkeypatch)
    for t in reversed(range(NUM_FRAMES)):
        source.rgb(t)
    # Keyframes every 4 frames: seeking for each frame alone would decode 30 frames; keeping the frames
    # decoded between the keyframe and the target costs one pass per group of pictures, plus the first one.
    assert len(decoded) <= NUM_FRAMES + 4


def test_cache_never_holds_more_than_cache_size(media):
    for video in (media["mp4"], media["png"]):
        source = open_frames(video, cache_size=3)
        for t in [*range(NUM_FRAMES), *reversed(range(NUM_FRAMES)), 5, 1, 9]:
            source.network_input(t, 32)
            assert len(source._frames) <= 3 and len(source._inputs) <= 3


def test_cached_network_input_is_reused(clip):
    source = open_frames(clip, cache_size=2)
    assert source.network_input(4, 32) is source.network_input(4, 32)


@pytest.mark.parametrize("degrees", [90, -90])
def test_rotation_metadata_rotates_frames_and_swaps_size(clip, tmp_path, degrees):
    plain = open_frames(write_video(tmp_path / "plain.mp4", clip, "mpeg4"))
    rotated = open_frames(write_video(tmp_path / "rotated.mp4", clip, "mpeg4", rotation=degrees))
    assert (rotated.height, rotated.width) == (WIDTH, HEIGHT)
    # PyAV's rotation is counterclockwise, as np.rot90's; -90 is what phones filmed upright write.
    for t in (0, 5):
        assert np.array_equal(rotated.rgb(t), np.rot90(plain.rgb(t), degrees // 90))
    assert rotated.network_input(5, 32).shape == (3, 32, 32)


@pytest.mark.parametrize(
    ("suffix", "codec"), [(".mov", "mpeg4"), (".mkv", "mpeg4"), (".avi", "mpeg4"), (".webm", "libvpx")]
)
def test_other_containers_open_in_order(clip, tmp_path, suffix, codec):
    if codec not in av.codecs_available:
        pytest.skip(f"PyAV lacks the {codec} encoder")
    source = open_frames(write_video(tmp_path / f"clip{suffix}", clip, codec))
    assert len(source) == NUM_FRAMES and (source.height, source.width) == (HEIGHT, WIDTH)
    got = [square_column(source.rgb(t)) for t in (9, 0, 4)]
    np.testing.assert_allclose(got, [square_column(clip[t]) for t in (9, 0, 4)], atol=1.0)


def test_single_image_is_a_one_frame_video(clip, tmp_path):
    Image.fromarray(clip[3]).save(tmp_path / "still.png")
    source = open_frames(tmp_path / "still.png")
    assert len(source) == 1 and np.array_equal(source.rgb(0), clip[3])


def test_existing_source_is_returned_as_is(clip):
    source = open_frames(clip)
    assert open_frames(source) is source and isinstance(source, FrameSource)


def test_caller_arrays_are_not_copied_and_frames_are_read_only(clip):
    source = open_frames(clip)
    frame = source.rgb(2)
    assert np.shares_memory(frame, clip)
    assert not frame.flags.writeable and clip.flags.writeable


def test_frame_files_sort_numerically_or_naturally(tmp_path):
    numbered, named = tmp_path / "numbered", tmp_path / "named"
    numbered.mkdir()
    named.mkdir()
    for name in ("10.jpg", "9.JPG", "0.jpeg", ".DS_Store", "notes.txt"):
        (numbered / name).touch()
    for name in ("frame10.png", "frame2.jpg", "Frame1.png", "._frame3.png"):
        (named / name).touch()
    assert [p.name for p in list_frame_files(numbered)] == ["0.jpeg", "9.JPG", "10.jpg"]
    assert [p.name for p in list_frame_files(named)] == ["Frame1.png", "frame2.jpg", "frame10.png"]


def test_index_out_of_range_raises_index_error(clip):
    source = open_frames(clip)
    with pytest.raises(IndexError, match="12 frames"):
        source.rgb(NUM_FRAMES)
    with pytest.raises(IndexError):
        source.network_input(-1, 32)


def test_closed_source_cannot_be_read(media):
    source = open_frames(media["mp4"])
    source.close()
    with pytest.raises(VideoSourceError, match="closed"):
        source.rgb(0)


def _error_cases(tmp: Path, clip: np.ndarray) -> dict[str, tuple[object, str]]:
    """name: (input, a phrase the message must contain)."""
    (tmp / "empty").mkdir()
    (tmp / "no_images").mkdir()
    (tmp / "no_images" / "readme.txt").write_text("x")
    (tmp / "mixed").mkdir()
    Image.fromarray(clip[0]).save(tmp / "mixed" / "00000.jpg")
    Image.fromarray(clip[1, :64]).save(tmp / "mixed" / "00001.jpg")
    (tmp / "broken.mp4").write_bytes(b"not a video" * 100)
    (tmp / "broken_frames").mkdir()
    (tmp / "broken_frames" / "00000.jpg").write_bytes(b"not a jpeg")
    zero = av.open(str(tmp / "zero.avi"), "w")
    stream = zero.add_stream("mpeg4", rate=10)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    zero.start_encoding()
    zero.close()
    return {
        "missing path": (tmp / "nope.mp4", "not found"),
        "empty folder": (tmp / "empty", "no frames"),
        "folder without images": (tmp / "no_images", "expected image files"),
        "mixed sizes": (tmp / "mixed", "differ in size"),
        "unreadable image": (tmp / "broken_frames", "00000.jpg"),
        "not a video": (tmp / "broken.mp4", "cannot open"),
        "zero frames": (tmp / "zero.avi", "no video frames"),
        "array without channels": (clip[..., 0], "T, H, W, 3 uint8"),
        "float array": (clip.astype(np.float32), "dtype float32"),
        "empty array": (clip[:0], "no frames"),
        "empty list": ([], "empty"),
        "list of odd frames": ([clip[0], clip[1, :, :, :2]], "frame 1"),
        "list of mixed sizes": ([clip[0], clip[1, :50]], "differ in size"),
        "unsupported type": (42, "int"),
    }


ERROR_CASES = [
    "missing path",
    "empty folder",
    "folder without images",
    "mixed sizes",
    "unreadable image",
    "not a video",
    "zero frames",
    "array without channels",
    "float array",
    "empty array",
    "empty list",
    "list of odd frames",
    "list of mixed sizes",
    "unsupported type",
]


@pytest.mark.parametrize("case", ERROR_CASES)
def test_unusable_input_raises_video_source_error_naming_the_problem(clip, tmp_path, case):
    video, phrase = _error_cases(tmp_path, clip)[case]
    with pytest.raises(VideoSourceError, match=phrase):
        open_frames(video)
