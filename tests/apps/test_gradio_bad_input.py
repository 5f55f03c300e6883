"""Bad input through the app's API: each gives a message a person can act on, the server reads nothing but
the tab's own uploads, and the tab keeps working afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from gradio_client import Client, handle_file

import sam2_ui.engine.media
from apps.web.uploads import AppLimits
from sam2_ui import Session
from tests.support.app_helpers import masks_from_api, running_app, write_clip
from tests.support.messages import assert_no_internals
from tests.support.session_helpers import (
    assert_same_masks,
    disc_centre,
    predictor,
)

pytestmark = pytest.mark.server

LIMITS = AppLimits(max_upload_mb=1, max_seconds=60, max_frames=300, max_side=512, max_sessions=8)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("app"), limits=LIMITS) as launched:
        yield launched


@pytest.fixture
def opened_paths(monkeypatch):
    """Every source the engine opens frames from, while the test runs (the server runs in this process)."""
    seen: list[object] = []
    original = sam2_ui.engine.media.open_frames

    def recording(source, *args, **kwargs):
        seen.append(source)
        return original(source, *args, **kwargs)

    monkeypatch.setattr(sam2_ui.engine.media, "open_frames", recording)
    return seen


def error_of(client: Client, *args, api_name: str) -> str:
    """The message a refused call reaches the script with: ours, never empty, and with no server path,
    hash, errno or exception class in it (every bad-input test here reads its messages through this)."""
    with pytest.raises(Exception) as info:  # gradio_client raises AppError carrying the server's message
        client.predict(*args, api_name=api_name)
    message = str(info.value)
    assert message.strip() and "verbose error reporting" not in message, message
    assert_no_internals(message)
    return message


def still_works(client: Client, clip: Path) -> None:
    view = client.predict(handle_file(str(clip)), api_name="/open")
    assert view["num_frames"] == 6
    view = client.predict(0, 0, *disc_centre(0), True, api_name="/add_point")
    assert view["objects"][0]["timeline"][0] == "P"


def audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def bad_files(folder: Path, clip: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, words the message must contain)."""
    text = folder / "notes.mp4"
    text.write_text("these are my notes, not a video\n" * 20)
    empty = folder / "empty.mp4"
    empty.write_bytes(b"")
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    pdf = folder / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.4\n" + b"0" * 100)
    return {
        "not a video": (text, "not a readable video"),
        "empty": (empty, "empty"),
        "truncated": (truncated, "not a readable video"),
        "no video stream": (audio_only(folder / "sound.mp4"), "no video stream"),
        # /open takes any file (a script's upload has no file-type filter): the app refuses it by its type.
        "wrong type": (pdf, "not a video or image this app reads"),
    }


@pytest.mark.parametrize("case", ["not a video", "empty", "truncated", "no video stream", "wrong type"])
def test_unreadable_uploads_are_refused_with_a_message_and_the_tab_keeps_working(app, clip, tmp_path, case):
    path, words = bad_files(tmp_path, clip)[case]
    client = Client(app[1], verbose=False)
    still_works(client, clip)
    message = error_of(client, handle_file(str(path)), api_name="/open")
    assert words in message, message
    view = client.predict(api_name="/view")  # the session opened before is still there
    assert view["num_frames"] == 6 and view["objects"][0]["timeline"][0] == "P"
    still_works(client, clip)


def test_an_upload_over_the_size_limit_is_refused(app, clip, tmp_path):
    big = tmp_path / "big.mp4"
    big.write_bytes(clip.read_bytes() + b"\0" * 1_200_000)
    client = Client(app[1], verbose=False)
    # gradio_client refuses it before sending, against the app's advertised limit: its message names the
    # caller's own file, nothing of the server's.
    with pytest.raises(Exception) as info:
        client.predict(handle_file(str(big)), api_name="/open")
    assert "exceeds the maximum file size of 1048576 bytes" in str(info.value), info.value
    still_works(client, clip)


def test_clicks_before_any_upload_and_outside_the_image_give_messages(app, clip):
    client = Client(app[1], verbose=False)
    assert "Upload a video or an image first" in error_of(client, 0, 0, 5.0, 5.0, True, api_name="/add_point")
    assert "Upload a video or an image first" in error_of(client, 10.0, 10.0, False, api_name="/click")
    client.predict(handle_file(str(clip)), api_name="/open")
    assert "outside the 96x64 frame" in error_of(client, 0, 0, 400.0, 5.0, True, api_name="/add_point")
    assert "outside the image" in error_of(client, 5000.0, 5.0, False, api_name="/click")
    assert "does not exist" in error_of(client, 9, 0, 5.0, 5.0, True, api_name="/add_point")
    assert "no object 7" in error_of(client, 7, api_name="/select_object").lower()
    still_works(client, clip)


def saved_session(clip: Path, folder: Path) -> tuple[dict, dict]:
    with Session.open(clip, predictor()) as session:
        session.add_point(0, session.add_object(), *disc_centre(0))
        path = session.save(folder / "saved.json")
        masks = {(f, o): m for f in range(6) for o, m in session.masks(f).items()}
    return json.loads(path.read_text()), masks


@pytest.mark.parametrize("server_path", ["/etc/passwd", "../../../../etc/passwd", "/root"])
def test_a_session_file_naming_a_server_path_reads_only_the_uploaded_media(
    app, clip, tmp_path, opened_paths, server_path
):
    document, expected = saved_session(clip, tmp_path)
    document["source"] = {"kind": "path", "path": server_path, "relative": server_path}
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(document))
    client = Client(app[1], verbose=False)
    opened_paths.clear()
    view = client.predict(handle_file(str(forged)), handle_file(str(clip)), api_name="/load_session")
    assert [o["id"] for o in view["objects"]] == [1]
    got = {(0, o): m for o, m in masks_from_api(client.predict(0, api_name="/masks")).items()}
    assert_same_masks(got, {k: v for k, v in expected.items() if k[0] == 0})
    assert opened_paths, "the media was not opened through the engine"
    for source in opened_paths:
        assert Path(source).name == clip.name and "etc" not in Path(source).parts, source
    # Without its media, the file is refused: the path inside is never a fallback.
    message = error_of(client, handle_file(str(forged)), None, api_name="/load_session")
    assert "Send the" in message and "video or image" in message and "handle_file" in message, message
    still_works(client, clip)


def test_a_session_file_for_another_video_is_refused_and_the_session_kept(app, clip, tmp_path):
    document, _ = saved_session(clip, tmp_path)
    saved = tmp_path / "saved_for_clip.json"
    saved.write_text(json.dumps(document))
    other = write_clip(tmp_path / "other.mp4", num_frames=9)
    client = Client(app[1], verbose=False)
    still_works(client, clip)
    message = error_of(client, handle_file(str(saved)), handle_file(str(other)), api_name="/load_session")
    assert "has 9 frames of 96x64, but the session was saved on 6 frames" in message, message
    view = client.predict(api_name="/view")
    assert view["num_frames"] == 6 and view["objects"][0]["timeline"][0] == "P"
    not_json = tmp_path / "broken.json"
    not_json.write_text("{ not json")
    assert "is not a sam2-ui session file" in error_of(
        client, handle_file(str(not_json)), handle_file(str(clip)), api_name="/load_session"
    )
    still_works(client, clip)
