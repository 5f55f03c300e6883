"""What a person is told about bad media and bad session files names the file, never the server: no folder
(an upload lands in /tmp/gradio/<64 hex>/), no hash, no errno, no traceback, no exception class name.

Everything goes through `Session` and `Interaction`, the two ways a front end reaches the engine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sam2_ui import Session, SessionError
from sam2_ui.interaction.interaction import Interaction
from tests.support.bad_media import UNOPENABLE, write_bad_media
from tests.support.messages import assert_no_internals, internals_in
from tests.support.session_helpers import disc_centre, make_frames, predictor, write_mp4

UPLOAD_HASH = "0123456789abcdef" * 4


@pytest.fixture
def upload_folder(tmp_path) -> Path:
    """Where Gradio puts an upload: a folder named by the file's hash."""
    return tmp_path / "gradio" / UPLOAD_HASH


def refusal(call, *args, **kwargs) -> str:
    """The message of the `SessionError` that ``call(*args, **kwargs)`` raises."""
    with pytest.raises(SessionError) as info:
        call(*args, **kwargs)
    return str(info.value)


def said(view) -> list[str]:
    """Every text the view shows: its messages, status line and notes."""
    return [m.text for m in view.messages] + [view.status, *view.notes]


# ----------------------------------------------------------------------------------------------- the check
@pytest.mark.parametrize(
    "text",
    [
        "/tmp/gradio/0123456789abcdef0123456789abcdef/bad.mp4",
        "Cannot open C:\\Users\\ana\\clip.mp4",
        "moov atom not found [Errno 1094995529]",
        "OSError: x",
        "it failed (InvalidDataError)",
        "KeyboardInterrupt: stopped",
        "Traceback (most recent call last):",
        "the file deadbeefdeadbeef00 is gone",
    ],
)
def test_internals_are_found(text):
    assert internals_in(text)


@pytest.mark.parametrize(
    "text",
    [
        "bad.mp4 is not a readable video",
        "Frame 3 does not exist (frames 0–5)",
        "Trim the video and/or re-encode it; 1/2 of it is kept.",
        "download https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt again",
        "Warning: clips/run 2/clip.mp4 has 3 frames",
    ],
)
def test_plain_words_are_not_flagged(text):
    assert internals_in(text) == []


def test_the_leaks_are_named_by_kind():
    found = internals_in("Cannot open /tmp/gradio/0123456789abcdef0123/bad.mp4: [Errno 2] OSError: gone")
    kinds = {item.split(":", 1)[0] for item in found}
    assert kinds == {"POSIX path", "hash", "errno", "exception class", "builtin exception"}


# --------------------------------------------------------------------------------------------------- media
@pytest.mark.parametrize("case", UNOPENABLE)
def test_media_that_cannot_be_opened_is_refused_without_internals(upload_folder, case):
    source = write_bad_media(upload_folder, case)
    ui = Interaction(predictor())
    for given in (source, str(source)):
        message = refusal(Session.open, given, predictor())
        assert message.startswith(f"Cannot open {source.name}: ")
        assert_no_internals(message, *said(ui.open(given)))


def test_a_missing_relative_path_is_refused_without_the_working_folder(upload_folder, monkeypatch):
    upload_folder.mkdir(parents=True)
    monkeypatch.chdir(upload_folder)
    message = refusal(Session.open, "clips/no_such_clip.mp4", predictor())
    assert "no file or folder" in message and UPLOAD_HASH not in message
    assert_no_internals(message)


def test_frames_given_in_memory_are_refused_without_internals():
    for bad in (np.zeros((0, 8, 8, 3), np.uint8), np.zeros((2, 8, 8), np.float32), [], {"frames": 1}):
        assert_no_internals(refusal(Session.open, bad, predictor()))


# The decoder's own warning (for the server's log or a notebook's cell) names the file; it is no message.
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*the previous frame stands in for it:UserWarning")
def test_a_frame_damaged_in_the_middle_is_said_without_internals(upload_folder):
    clip = write_bad_media(upload_folder, "damaged middle")
    with Session.open(clip, predictor()) as session:
        texts = []
        for frame in range(session.num_frames):
            try:
                session.frame(frame)
            except SessionError as error:
                texts.append(str(error))
        assert texts, "no frame of the damaged clip was refused"
        session.add_point(0, session.add_object(), *disc_centre(0))
        try:
            for _ in session.propagate("forward"):
                pass
        except SessionError as error:
            texts.append(str(error))
        texts += session.messages
    ui = Interaction(predictor())
    ui.open(clip)
    for frame in range(12):
        texts += said(ui.go_to(frame))
    assert any("damaged" in text for text in texts)
    assert_no_internals(*texts)


# ------------------------------------------------------------------------------------------- session files
@pytest.fixture
def clip(upload_folder) -> Path:
    upload_folder.mkdir(parents=True, exist_ok=True)
    return write_mp4(make_frames(), upload_folder / "clip.mp4", 10)


@pytest.fixture
def saved(clip, upload_folder) -> Path:
    """A session file saved in the upload folder, naming the clip by its full path (not portable)."""
    with Session.open(clip, predictor()) as session:
        session.add_point(0, session.add_object(), *disc_centre(0))
        return session.save(upload_folder / "session.json")


def forged(saved: Path, change) -> Path:
    document = json.loads(saved.read_text())
    change(document)
    saved.write_text(json.dumps(document))
    return saved


FORGERIES = {
    "binary": lambda path: path.write_bytes(bytes(range(256))),
    "not JSON": lambda path: path.write_text("frame,object\n0,1\n"),
    "nested too deep": lambda path: path.write_text("[" * 100_000),
    "another format": lambda path: path.write_text('{"format": "coco"}'),
    "a later version": lambda path: forged(path, lambda d: d.update(version=7)),
    "a missing field": lambda path: forged(path, lambda d: d.pop("video")),
    "a field of the wrong type": lambda path: forged(path, lambda d: d.update(objects=5)),
    "a word for a number": lambda path: forged(path, lambda d: d["video"].update(fps="fast")),
    "an infinite number": lambda path: forged(path, lambda d: d["video"].update(num_frames=float("inf"))),
    "a frame outside the video": lambda path: forged(path, lambda d: d["masks"][0].update(frame=999)),
    "a model of the wrong type": lambda path: forged(path, lambda d: d.update(model=[1])),
    "a folder": lambda path: (path.unlink(), path.mkdir()),
    "missing": lambda path: path.unlink(),
}


@pytest.mark.parametrize("case", FORGERIES)
def test_a_bad_session_file_is_refused_without_internals(saved, clip, case):
    FORGERIES[case](saved)
    message = refusal(Session.load, saved, predictor(), source=clip)
    assert "session.json" in message
    ui = Interaction(predictor())
    assert_no_internals(message, *said(ui.load(saved, clip)))


def test_a_session_file_whose_video_is_gone_names_the_video_only(saved, clip):
    clip.unlink()
    message = refusal(Session.load, saved, predictor())
    assert "clip.mp4" in message
    assert_no_internals(message)


def test_a_session_file_given_another_video_is_refused_without_internals(saved, upload_folder):
    frames = make_frames()
    shorter = write_mp4(frames[:4], upload_folder / "shorter.mp4", 10)
    other = write_mp4(frames[::-1].copy(), upload_folder / "reversed.mp4", 10)
    ui = Interaction(predictor())
    for video in (shorter, other):
        message = refusal(Session.load, saved, predictor(), source=video)
        assert "give the same video" in message
        assert_no_internals(message, *said(ui.load(saved, video)))
