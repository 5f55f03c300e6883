"""Session.open: every kind of source, lazy frames, the frame and size budget, unreadable input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sam2_ui import Limits, Session, SessionError
from tests.support.session_helpers import (
    HEIGHT,
    NUM_FRAMES,
    WIDTH,
    make_frames,
    predictor,
    state_of,
    write_mp4,
    write_png_folder,
)


def test_array_opens_with_count_size_and_default_fps(frames):
    with Session.open(frames, predictor()) as session:
        assert session.num_frames == NUM_FRAMES
        assert session.size == (WIDTH, HEIGHT)
        assert session.fps == 30.0
        assert not session.is_image
        assert np.array_equal(session.frame(3), frames[3])
        assert session.messages == []
        assert session.source_path is None


def test_png_folder_and_list_of_frames_give_the_same_frames(frames, tmp_path):
    folder = write_png_folder(frames, tmp_path / "clip")
    with Session.open(folder, predictor(), fps=12) as session:
        assert session.num_frames == NUM_FRAMES and session.fps == 12.0
        assert session.source_path == folder.resolve()
        assert np.array_equal(session.frame(5), frames[5])
    with Session.open(list(frames), predictor()) as session:
        assert np.array_equal(session.frame(2), frames[2])


def test_video_file_carries_its_fps_and_frame_count(frames, tmp_path):
    path = write_mp4(frames, tmp_path / "clip.mp4", fps=10)
    with Session.open(path, predictor()) as session:
        assert session.num_frames == NUM_FRAMES
        assert session.fps == pytest.approx(10.0)
        assert session.size == (WIDTH, HEIGHT)
        # H.264 at CRF 10 is near-lossless on these flat colours
        assert np.abs(session.frame(4).astype(int) - frames[4]).mean() < 4


@pytest.mark.parametrize("kind", ["file", "array", "pil"])
def test_a_single_image_is_a_one_frame_video(frames, tmp_path, kind):
    image = frames[0]
    if kind == "file":
        source = tmp_path / "photo.png"
        Image.fromarray(image).save(source)
    else:
        source = image if kind == "array" else Image.fromarray(image)
    with Session.open(source, predictor()) as session:
        assert session.num_frames == 1 and session.is_image
        assert np.array_equal(session.frame(0), image)


class RecordingArray(np.ndarray):
    """An array that remembers which frames were read from it."""

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            self.read.add(int(index))
        return super().__getitem__(index)


def test_frames_are_decoded_only_when_needed(frames):
    source = frames.view(RecordingArray)
    source.read = set()
    with Session.open(source, predictor()) as session:
        assert source.read == {0}  # the predictor prepares frame 0, where people click first
        session.frame(4)
        assert source.read == {0, 4}


def test_large_frames_are_downscaled_with_a_message(frames):
    big = make_frames(height=HEIGHT * 2, width=WIDTH * 2)
    with pytest.warns(UserWarning, match="downscaled"):
        session = Session.open(big, predictor(), limits=Limits(max_side=WIDTH))
    with session:
        assert session.size == (WIDTH, HEIGHT)
        assert session.original_size == (WIDTH * 2, HEIGHT * 2)
        assert session.frame(1).shape == (HEIGHT, WIDTH, 3)
        assert len(session.messages) == 1 and f"{WIDTH}x{HEIGHT}" in session.messages[0]
        obj = session.add_object()
        masks = session.add_point(1, obj, 30, 20)
        assert masks[obj].shape == (HEIGHT, WIDTH)


def test_too_many_frames_are_cut_with_a_message(frames):
    with pytest.warns(UserWarning, match="first 4"):
        session = Session.open(frames, predictor(), limits=Limits(max_frames=4))
    with session:
        assert session.num_frames == 4
        assert "6 frames" in session.messages[0] and "max_frames" in session.messages[0]
        with pytest.raises(SessionError, match="frames 0 to 3"):
            session.frame(4)


def test_too_many_frames_can_be_refused_instead(frames):
    with pytest.raises(SessionError, match="more than the limit of 4"):
        Session.open(frames, predictor(), limits=Limits(max_frames=4, truncate=False))


@pytest.mark.parametrize("case", ["missing", "empty folder", "not media", "empty array"])
def test_unreadable_sources_raise_session_error(tmp_path, case):
    if case == "missing":
        source = tmp_path / "nope.mp4"
    elif case == "empty folder":
        source = tmp_path / "empty"
        source.mkdir()
    elif case == "not media":
        source = tmp_path / "notes.mp4"
        source.write_text("this is not a video")
    else:
        source = np.zeros((0, HEIGHT, WIDTH, 3), np.uint8)
    with pytest.raises(SessionError, match="Cannot open") as error:
        Session.open(source, predictor())
    assert "Give a video file" in str(error.value)


def test_frame_index_outside_the_video_is_a_session_error(frames):
    with Session.open(frames, predictor()) as session:
        before = state_of(session)
        for bad in (-1, NUM_FRAMES):
            with pytest.raises(SessionError, match=f"frames 0 to {NUM_FRAMES - 1}"):
                session.frame(bad)
        assert state_of(session) == before
