"""Launching the web app for tests: on 127.0.0.1, a free port, the small random-weight predictor.

The app is the real one (`apps.web.App`, queued and launched as ``python app.py`` does); only the
model is session_helpers' SAM 2.1 tiny at 256 input with random weights, so no download is needed.
"""

from __future__ import annotations

import base64
import io
import socket
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
from PIL import Image

from apps.web import App, launch
from apps.web.uploads import AppLimits
from model.images.rle import coco_rle_to_mask
from sam2_ui.interaction.interaction import Interaction
from tests.support.session_helpers import make_frames, predictor, write_mp4

CLIP_FPS = 10
TEST_LIMITS = AppLimits(max_upload_mb=5, max_seconds=60, max_frames=300, max_side=512, max_sessions=8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(work_root: Path, limits: AppLimits = TEST_LIMITS, display_size=(960, 640), executor=None):
    """(App, url) of a launched app, closed afterwards; model calls go through ``executor`` (None: here)."""
    app = App(
        predictor(),
        limits,
        display_size=display_size,
        work_root=work_root,
        model_label="test model",
        executor=executor,
    )
    demo = app.build()
    _, url, _ = launch(demo, "127.0.0.1", free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield app, url
    finally:
        demo.close()
        app.registry.close_all()


def write_clip(path: Path, num_frames: int = 6, height: int = 64, width: int = 96) -> Path:
    return write_mp4(make_frames(num_frames, height, width), path, CLIP_FPS)


def masks_from_api(rles: dict) -> dict[int, np.ndarray]:
    """``/masks``' answer (object id -> COCO RLE) as object id -> H, W bool mask."""
    return {int(obj): coco_rle_to_mask(rle) for obj, rle in rles.items()}


class Page:
    """What one page event drew (its ``{component: update}``), by name: ``image`` (the frame as an array,
    None if not redrawn), ``view`` (the view JSON), ``slider``, ``objects`` (the panel's rows),
    ``timeline`` (its rows), ``status`` (the status line's text); ``empty`` when nothing was redrawn."""

    def __init__(self, app: App, updates: dict):
        self.updates = updates
        self.layout = app.layout

    def get(self, name: str):
        return self.updates.get(getattr(self.layout, name))

    @property
    def empty(self) -> bool:
        return not self.updates

    @property
    def image(self) -> np.ndarray | None:
        frame = self.get("frame")
        if not frame or not frame.get("image"):
            return None
        data = base64.b64decode(frame["image"].split(",", 1)[1])
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    @property
    def view(self) -> dict:
        return self.get("view_json")

    @property
    def slider(self) -> dict | None:
        return self.get("slider")

    @property
    def objects(self) -> list[dict]:
        return self.get("objects")["rows"]

    @property
    def timeline(self) -> list[dict]:
        return self.get("timeline")["rows"]

    @property
    def status(self) -> str:
        return self.get("status")


class Tab:
    """One browser tab: calls the app's page handlers by API name with its own session hash; each call
    returns the `Page` it drew (a list of them for a streamed tracking run)."""

    def __init__(self, app: App, name: str):
        self.app = app
        self.request = SimpleNamespace(session_hash=name)
        self.handlers = {f.api_name: f.fn for f in app.demo.fns.values()}

    def __call__(self, api_name: str, *args):
        fn = self.handlers[api_name]
        if api_name.startswith("ui_propagate"):
            return [Page(self.app, updates) for updates in fn(self.request)]
        return Page(self.app, fn(*args, self.request))

    def event(self, api_name: str, **data):
        """A page script's event (``trigger(name, data)``): the frame pane, the object panel, the timeline."""
        return self(api_name, gr.EventData(None, data))

    def click(self, x: float, y: float, negative: bool = False, frame: int | None = None, size=None):
        """A click on the frame pane at display pixel (x, y) of the image drawn at ``size`` (w, h; default
        the app's display size fitted to the frame as the page has it)."""
        w, h = size or self.ui.view().mapping.display_size
        return self.event("ui_click", kind="click", x=x, y=y, negative=negative, w=w, h=h, frame=frame)

    def drag(self, x0: float, y0: float, x1: float, y1: float, frame: int | None = None, size=None):
        w, h = size or self.ui.view().mapping.display_size
        return self.event("ui_click", kind="drag", x0=x0, y0=y0, x1=x1, y1=y1, w=w, h=h, frame=frame)

    @property
    def ui(self) -> Interaction:
        return self.app.registry.get(self.request.session_hash)[0]


def track_then_stop(client, after_frames: int = 2):
    """Track forward from frame 0 through ``client`` and press Stop once an update says ``after_frames``
    frames are done. Returns (the job, the done count when Stop was pressed; None if no update said so)."""
    job = client.submit("forward", 0, api_name="/propagate")
    for update in job:
        if update["progress"] and update["progress"]["done"] >= after_frames:
            client.predict(api_name="/stop")
            return job, update["progress"]["done"]
    return job, None
