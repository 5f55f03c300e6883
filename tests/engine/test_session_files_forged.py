"""Session files from elsewhere (a download, a forged upload): checked before anything is decoded or used.

A file whose masks, frames, objects or sizes the named video cannot have is refused with a message, a
front end's own limits win over the limits written in the file, and a portable file names no folder.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from sam2_ui import Limits, Session, SessionError
from tests.support.session_helpers import (
    HEIGHT,
    NUM_FRAMES,
    WIDTH,
    disc_centre,
    make_frames,
    predictor,
)


@pytest.fixture(scope="module")
def saved_text(frames, tmp_path_factory) -> str:
    """A tracked session's file, made once for the module (a tracking run)."""
    with Session.open(frames, predictor()) as session:
        session.add_point(0, session.add_object(), *disc_centre(0))
        for _ in session.propagate("forward"):
            pass
        path = session.save(tmp_path_factory.mktemp("saved") / "session.json")
    return path.read_text()


@pytest.fixture
def saved(saved_text) -> dict:
    """The tracked session's file as a fresh document for each test to forge."""
    return json.loads(saved_text)


def load_forged(document: dict, frames, tmp_path, **kwargs):
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(document))
    return Session.load(path, predictor(), source=frames, **kwargs)


@pytest.mark.parametrize(
    ("forge", "words"),
    [
        (lambda d: d["masks"][0].update(frame=999), "frame 999 is outside the video's 6 frames"),
        (lambda d: d["masks"][0].update(object=77), "object id 77 was never handed out"),
        (lambda d: d["masks"][0]["rle"].update(size=[100000, 100000]), "a mask of size [100000, 100000]"),
        (lambda d: d["log"][0].update(frame=-1), "frame -1 is outside"),
        (
            lambda d: d["log"].append(
                {"type": "propagate", "legs": [{"start": 0, "count": 10**9, "reverse": False}]}
            ),
            "a tracking run",
        ),
        (lambda d: d["masks"].extend(d["masks"] * 100), "more than a session of this video can hold"),
        (lambda d: d["objects"].append({"id": 50, "name": "x", "color": [1, 2, 3]}), "object id 50"),
    ],
)
def test_a_forged_session_file_is_refused_before_anything_is_decoded(saved, frames, tmp_path, forge, words):
    forge(saved)
    began = time.perf_counter()
    with pytest.raises(SessionError) as info:
        load_forged(saved, frames, tmp_path)
    assert "forged.json is not a valid sam2-ui session file" in str(info.value)
    assert words in str(info.value)
    assert time.perf_counter() - began < 30  # nothing the size of the forged mask was allocated


def test_the_callers_limits_win_over_the_limits_in_the_file(saved, frames, tmp_path):
    saved["limits"] = {"max_frames": None, "max_side": None}
    with pytest.raises(SessionError, match="has 4 frames of 96x64, but the session was saved on 6 frames"):
        load_forged(saved, frames, tmp_path, limits=Limits(max_frames=4))
    with load_forged(saved, frames, tmp_path, limits=Limits(max_frames=10)) as session:
        assert session.limits.max_frames == 10 and session.num_frames == NUM_FRAMES


def test_a_portable_session_file_names_its_video_by_file_name_only(tmp_path):
    from tests.support.session_helpers import write_mp4

    folder = tmp_path / "deep" / "server" / "folder"
    folder.mkdir(parents=True)
    clip = write_mp4(make_frames(), folder / "clip.mp4", 10)
    with Session.open(clip, predictor()) as session:
        session.add_point(0, session.add_object(), *disc_centre(0))
        path = session.save(tmp_path / "download.json", portable=True)
        expected = session.masks(0)
    text = path.read_text()
    assert "server" not in text and "deep" not in text
    assert json.loads(text)["source"]["path"] == "clip.mp4"
    (tmp_path / "clip.mp4").write_bytes(clip.read_bytes())  # the user keeps the video beside the file
    with Session.load(path, predictor()) as restored:
        assert restored.size == (WIDTH, HEIGHT)
        assert all(np.array_equal(restored.masks(0)[o], m) for o, m in expected.items())
