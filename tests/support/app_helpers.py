"""Launching the web app for tests: on 127.0.0.1, a free port, the small random-weight predictor.

The app is the real one (`apps.gradio_app.App`, queued and launched as ``python app.py`` does); only the
model is session_helpers' SAM 2.1 tiny at 256 input with random weights, so no download is needed.
"""

from __future__ import annotations

import socket
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np

from apps.gradio_app import App, launch
from apps.uploads import AppLimits
from sam2_ui.interaction import Interaction
from sam2_ui.masks import decode_rle
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
    return {int(obj): decode_rle(rle) for obj, rle in rles.items()}


VIEW_JSON = 6  # index of the view JSON among the outputs of a UI event such as /open


class Tab:
    """One browser tab: calls the app's handlers by API name with its own session hash."""

    def __init__(self, app: App, name: str):
        self.app = app
        self.request = SimpleNamespace(session_hash=name)
        self.handlers = {f.api_name: f.fn for f in app.demo.fns.values()}

    def __call__(self, api_name: str, *args):
        fn = self.handlers[api_name]
        if api_name.startswith("ui_propagate"):
            return list(fn(self.request, progress=lambda *a, **k: None))
        return fn(*args, self.request)

    def select(self, api_name: str, x: float, y: float | None = None, shown: int | None = None):
        index = x if y is None else [x, y]  # a dataset sends its row, an image [x, y]
        data = gr.SelectData(None, {"index": index, "value": None})
        if api_name == "ui_click":  # the frame click also sends the frame shown (the slider)
            return self(api_name, shown, data)
        return self(api_name, data)

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
