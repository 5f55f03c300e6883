"""The scripting API's contract, through ``gradio_client`` against the launched app: every endpoint that acts
returns the same view JSON, ``/masks`` is COCO RLE, ``/close`` ends only the caller's session, ``/propagate``
ends with a summary and refuses a frame that does not exist, refusals reach the client in our words, and the
README's "Scripting it" snippet runs as written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from pycocotools import mask as mask_utils

from apps.web.uploads import AppLimits
from tests.support.app_helpers import TEST_LIMITS, running_app
from tests.support.messages import assert_no_internals
from tests.support.session_helpers import block_box, disc_centre

pytestmark = pytest.mark.server

README = Path(__file__).resolve().parents[2] / "README.md"
README_URL = "http://127.0.0.1:7860/"
README_CLIP = (16, 360, 640)  # frames, height, width: the snippet clicks at (320, 180) and asks for frame 12
NUM_FRAMES = 6
# Frames as large as the README's clip are worked on at their size (no downscaling to the default 512).
LIMITS = AppLimits(**{**TEST_LIMITS.__dict__, "max_side": 640})


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("app"), limits=LIMITS) as launched:
        yield launched


def client_for(app) -> Client:
    return Client(app[1], verbose=False, download_files=str(app[0].registry.root / "client_downloads"))


def error_of(client: Client, *args, api_name: str) -> str:
    with pytest.raises(Exception) as info:  # gradio_client raises AppError carrying the server's message
        client.predict(*args, api_name=api_name)
    return str(info.value)


def session_of(app, client: Client):
    """The client's engine session on the server (the app runs in this process)."""
    return app[0].registry.peek(client.session_hash).session


def display_centre(client: Client) -> tuple[float, float]:
    """The middle of the frame image as the view draws it (``/click`` takes display pixels)."""
    width, height = client.predict(api_name="/view")["display_size"]
    return width / 2, height / 2


def opened_with_a_point(app, clip: Path) -> Client:
    client = client_for(app)
    client.predict(handle_file(str(clip)), api_name="/open")
    client.predict(0, 0, *disc_centre(0), True, api_name="/add_point")
    return client


def test_every_endpoint_that_acts_returns_the_view_json(app, clip, tmp_path):
    client = client_for(app)
    keys = set(client.predict(api_name="/view"))
    assert {"frame", "num_frames", "objects", "selected", "enabled", "progress", "summary"} <= keys
    returned = {
        "/open": client.predict(handle_file(str(clip)), api_name="/open"),
        "/add_object": client.predict("ball", api_name="/add_object"),
        "/add_point": client.predict(0, 0, *disc_centre(0), True, api_name="/add_point"),
        "/rename_object": client.predict(0, "red ball", api_name="/rename_object"),
        "/add_box": client.predict(0, 0, *block_box(0), api_name="/add_box"),
        "/remove_point": client.predict(0, 0, 0, api_name="/remove_point"),
        "/set_tool": client.predict("positive", api_name="/set_tool"),
        "/click": client.predict(*display_centre(client), False, api_name="/click"),
        "/command": client.predict("undo", api_name="/command"),
        "/key": client.predict("Ctrl+Shift+z", api_name="/key"),
        "/select_object": client.predict(1, api_name="/select_object"),
        "/go_to": client.predict(3, api_name="/go_to"),
    }
    updates = list(client.submit("forward", 0, api_name="/propagate"))
    returned["/propagate (first update)"] = updates[0]
    returned["/propagate (last update)"] = updates[-1]
    returned["/stop"] = client.predict(api_name="/stop")
    returned["/view"] = client.predict(api_name="/view")
    tracked = returned["/view"]["objects"]
    saved = client.predict(api_name="/export_session")
    returned["/load_session"] = client.predict(
        handle_file(saved), handle_file(str(clip)), api_name="/load_session"
    )
    returned["/add_object (second)"] = client.predict("", api_name="/add_object")
    returned["/remove_object"] = client.predict(0, api_name="/remove_object")
    for endpoint, view in returned.items():
        assert isinstance(view, dict) and set(view) == keys, endpoint
    assert all(set(update) == keys for update in updates)
    assert returned["/open"]["num_frames"] == NUM_FRAMES and returned["/open"]["objects"] == []
    assert returned["/go_to"]["frame"] == 3
    assert [(o["name"], o["timeline"]) for o in returned["/load_session"]["objects"]] == [
        (o["name"], o["timeline"]) for o in tracked
    ]
    assert [o["name"] for o in tracked] == ["red ball"] and returned["/remove_object"]["objects"] == tracked


def test_masks_are_coco_rle_that_pycocotools_decodes_to_the_sessions_masks(app, clip):
    client = opened_with_a_point(app, clip)
    client.predict(0, 0, *block_box(0), api_name="/add_box")
    client.predict("thing", api_name="/add_object")
    client.predict(0, 0, *disc_centre(0), True, api_name="/add_point")
    list(client.submit("forward", 0, api_name="/propagate"))
    session = session_of(app, client)
    for frame in range(NUM_FRAMES):
        rles = client.predict(frame, api_name="/masks")
        expected = session.masks(frame)
        assert sorted(rles) == [str(obj) for obj in sorted(expected)] == ["1", "2"]
        for obj, rle in rles.items():
            assert rle["size"] == [64, 96] and isinstance(rle["counts"], str), (frame, obj)
            decoded = mask_utils.decode(rle)
            assert decoded.shape == (64, 96) and decoded.dtype == np.uint8
            assert np.array_equal(decoded.astype(bool), expected[int(obj)]), (frame, obj)
    assert any(mask_utils.decode(rle).any() for rle in client.predict(0, api_name="/masks").values())


def test_close_ends_only_the_callers_session(app, clip):
    registry = app[0].registry
    leaving, staying = opened_with_a_point(app, clip), opened_with_a_point(app, clip)
    staying_before = staying.predict(api_name="/view")
    staying_session = session_of(app, staying)
    assert leaving.session_hash in registry and staying.session_hash in registry

    leaving.predict(api_name="/close")
    assert leaving.session_hash not in registry
    assert staying.session_hash in registry and session_of(app, staying) is staying_session
    fresh = leaving.predict(api_name="/view")  # the next call starts a fresh, empty session
    assert fresh["num_frames"] == 0 and fresh["objects"] == []
    assert leaving.session_hash in registry and session_of(app, leaving) is None
    staying_after = staying.predict(api_name="/view")
    for key in ("num_frames", "frame", "objects", "selected"):
        assert staying_after[key] == staying_before[key], key
    assert sorted(staying.predict(0, api_name="/masks")) == ["1"]
    staying.predict(api_name="/close")


def test_propagate_ends_with_a_summary_of_the_whole_run(app, clip):
    client = opened_with_a_point(app, clip)
    updates = list(client.submit("forward", 0, api_name="/propagate"))
    assert [u["progress"]["done"] for u in updates[:-1]] == [1, 2, 3, 4, 5, 6]
    assert all(u["summary"] is None for u in updates[:-1])
    last = updates[-1]
    assert last["progress"] is None
    summary = last["summary"]
    assert summary["direction"] == "forward" and summary["start"] == 0
    assert summary["done"] == summary["total"] > 0 and summary["cancelled"] is False
    assert summary["elapsed_s"] >= 0
    client.predict(2, api_name="/go_to")  # -1: from the current frame
    summary = list(client.submit("backward", -1, api_name="/propagate"))[-1]["summary"]
    assert summary["direction"] == "backward" and summary["start"] == 2
    assert summary["done"] == summary["total"] and not summary["cancelled"]


@pytest.mark.parametrize("frame", [99, -5])
def test_propagate_from_a_frame_that_does_not_exist_is_refused_and_tracks_nothing(app, clip, frame):
    client = opened_with_a_point(app, clip)
    before = client.predict(api_name="/view")
    assert before["objects"][0]["timeline"] == "P....."
    job = client.submit("forward", frame, api_name="/propagate")
    with pytest.raises(Exception) as info:  # iterating a job ends at an error; its result raises it
        list(job)
        job.result()
    message = str(info.value)
    assert f"Frame {frame} does not exist" in message, message
    assert_no_internals(message)
    after = client.predict(api_name="/view")
    assert after["objects"] == before["objects"] and after["frame"] == before["frame"]
    assert sorted(client.predict(3, api_name="/masks")) == []


def forged(path: str) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def call_event(url: str, api_name: str, data: list) -> tuple[str, object]:
    """A raw call of a named endpoint, as any HTTP client can make it: (the last event, its data)."""
    with httpx.Client(base_url=url, timeout=60) as http:
        started = http.post(f"gradio_api/call/{api_name}", json={"data": data})
        started.raise_for_status()
        stream = http.get(f"gradio_api/call/{api_name}/{started.json()['event_id']}").text
    events = re.findall(r"^event: (\S+)\ndata: (.*)$", stream, flags=re.MULTILINE)
    assert events, stream
    kind, data = events[-1]
    return kind, json.loads(data)


def test_refusals_reach_the_client_in_our_words_without_server_internals(app, clip, tmp_path, monkeypatch):
    client = client_for(app)
    messages = []

    monkeypatch.chdir(clip.parent)
    message = error_of(client, "clip.mp4", api_name="/open")  # a name, not the file
    assert "handle_file" in message, message
    messages.append(message)

    # A FileData payload naming a server file: refused, whether Gradio's file check sees it (with "meta")
    # or it reaches the app (without); in both cases nothing was opened.
    for payload in (forged("/etc/hostname"), {"path": "/etc/hostname"}, {"path": "/etc/../etc/hostname"}):
        kind, data = call_event(app[1], "open", [payload])
        assert kind == "error", (payload, data)
        if data.get("error") is not None:
            messages.append(data["error"])
            assert "handle_file" in data["error"], data
    # The app's own function, given a payload no client would send: a path outside the upload folder.
    open_fn = next(f.fn for f in app[0].demo.fns.values() if f.api_name == "open")
    escape = str(Path(app[0].upload_folder) / ".." / ".." / "etc" / "hostname")
    for payload in (forged("/etc/hostname"), forged(escape), forged(str(clip))):
        with pytest.raises(gr.Error) as info:
            open_fn(payload, SimpleNamespace(session_hash="forger"))
        assert "the server reads only files uploaded to it" in info.value.message, info.value.message
        messages.append(info.value.message)
    assert "forger" not in app[0].registry

    message = error_of(client, 99, api_name="/go_to")  # nothing open yet
    assert "first" in message, message
    messages.append(message)
    client.predict(handle_file(str(clip)), api_name="/open")
    message = error_of(client, 99, api_name="/go_to")
    assert "Frame 99 does not exist" in message and "0 to 5" in message, message
    messages.append(message)
    assert client.predict(api_name="/view")["frame"] == 0
    assert_no_internals(*messages)


def readme_snippet() -> str:
    """The fenced python block that follows "**Scripting it**" in README.md."""
    text = README.read_text(encoding="utf-8")
    after = text[text.index("**Scripting it**") :]
    found = re.search(r"```python\n(.*?)```", after, flags=re.DOTALL)
    assert found, "no python block after **Scripting it**"
    return found.group(1)


def test_readme_scripting_snippet_runs_as_written(app, tmp_path, monkeypatch, capsys):
    from tests.support.session_helpers import make_frames, write_mp4

    code = readme_snippet()
    assert README_URL in code
    frames, height, width = README_CLIP
    write_mp4(make_frames(frames, height, width), tmp_path / "clip.mp4", 10)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code.replace(README_URL, app[1]), str(README), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "cancelled" in printed, printed  # the run's summary, printed last

    clients = [v for v in namespace.values() if isinstance(v, Client)]
    assert clients, "the snippet makes no Client"
    assert all(c.session_hash not in app[0].registry for c in clients), "the snippet's session was not closed"
    decoded = [v for v in namespace.values() if isinstance(v, np.ndarray) and v.shape[:2] == (height, width)]
    assert decoded, "no mask of the clip's size was decoded"
    downloads = [Path(v) for v in namespace.values() if isinstance(v, str) and v.endswith(".json")]
    assert downloads and all(p.is_file() for p in downloads), downloads
    assert "annotations" in json.loads(downloads[0].read_text())
