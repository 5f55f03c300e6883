"""The web app's shared parts: the model, the session registry, the limits and the examples; builds the page.

Each browser tab (each ``gradio_client`` client) gets its own session, kept server-side in a
`SessionRegistry` under the tab's ``session_hash``. Handlers always run in this process; on a ZeroGPU Space
the sessions hand their model calls to ``spaces.GPU`` around `sam2_ui.engine.model_worker.serve` (see
`zero_gpu`), so what a forked GPU worker computes comes back as data and the session here stays the only
copy of the document.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import warnings
import weakref
from pathlib import Path
from typing import Any

import gradio as gr
import gradio.utils
import numpy as np
from PIL import Image

from model.loading.precision import describe_precision, resolve_precision
from sam2_ui.engine.errors import SessionError
from sam2_ui.engine.executor import ExecutorFactory
from sam2_ui.engine.media import Limits, open_media, plain_words
from sam2_ui.engine.predictor import predictor_device
from sam2_ui.interaction.commands import DEFAULT_DISPLAY
from sam2_ui.interaction.interaction import Interaction
from sam2_ui.interaction.keys import KEYMAP
from sam2_ui.interaction.view import View

from ..examples import example_files
from .api import add_api
from .draw import image_data_url, memory_html
from .handlers import PageHandlers
from .layout import STATIC, Layout, build_layout, script
from .refusals import guarded, refuse
from .registry import SessionRegistry
from .tab_state import TabState
from .uploads import AppLimits, check_upload
from .zero_gpu import on_zero_gpu, zero_gpu_executors

KEEP_EXPORTS = 3
THUMBNAIL_SIZE = (160, 96)
TITLE = "SAM 2 — segment and track"


class App:
    """The model, the sessions and the limits shared by every tab; `build` makes the page.

    ``precision`` ("auto", "fp32", "bf16"; see ``model.loading.precision``) is resolved once for the model's
    device; every session runs in it, and the page says which (`precision_label`).
    """

    def __init__(
        self,
        predictor: Any,
        limits: AppLimits | None = None,
        display_size: tuple[int, int] = DEFAULT_DISPLAY,
        examples_dir: str | Path | None = None,
        model_label: str = "",
        work_root: str | Path | None = None,
        precision: str = "auto",
        executor: ExecutorFactory | None = None,
    ) -> None:
        self.predictor = predictor
        self.limits = limits or AppLimits()
        self.display_size = display_size
        self.model_label = model_label
        device = predictor_device(predictor)
        self.precision = resolve_precision(precision, device)
        self.precision_label = describe_precision(device, self.precision)
        zero_gpu = on_zero_gpu()
        if executor is None and zero_gpu:
            executor = zero_gpu_executors(predictor)
        self.executor = executor  # None: model calls run in this process
        self.registry = SessionRegistry(
            lambda: Interaction(
                self.predictor,
                self.limits.engine_limits(),
                display_size=display_size,
                state_on_cpu=zero_gpu,  # the GPU is lent per call: keep session state on the CPU
                precision=self.precision,
                executor=executor,
            ),
            max_sessions=self.limits.max_sessions,
            ttl_s=self.limits.session_ttl_min * 60,
            root=work_root,
        )
        self.examples = example_files(examples_dir or self.registry.root / "examples")
        self.example_thumbnails = [_thumbnail(path) for path in self.examples]
        self._tabs: weakref.WeakKeyDictionary[Interaction, TabState] = weakref.WeakKeyDictionary()
        self._sweeper: threading.Thread | None = None
        self.demo: gr.Blocks | None = None
        self.layout: Layout | None = None

    # ------------------------------------------------------------------------------------------ sessions
    def interaction(self, request: gr.Request | None) -> Interaction:
        """The tab's interaction (opened on its first request); a note for the tab is shown as a toast."""
        key = getattr(request, "session_hash", None)
        try:
            ui, note = self.registry.get(key)
        except SessionError as error:
            raise refuse(str(error)) from error
        if note:
            gr.Warning(note)
        return ui

    def tab(self, ui: Interaction) -> TabState:
        """What the tab's page was last given (see `TabState`)."""
        return self._tabs.setdefault(ui, TabState())

    def memory(self, ui: Interaction, view: View) -> str | None:
        """The memory panel's HTML when the tab has it open, else None (nothing to redraw)."""
        if not self.tab(ui).memory_open:
            return None
        session = ui.session
        if session is None or view.selected is None or session.is_image:
            return memory_html(None, "Select a tracked object in a video to see its memory.")
        try:
            return memory_html(session.memory_view(view.frame, view.selected))
        except SessionError as error:
            return memory_html(None, str(error))

    def start_sweeper(self, every_s: float = 60.0) -> None:
        """Close expired sessions in the background (besides the sweep on every request)."""

        def loop() -> None:
            while True:
                time.sleep(every_s)
                self.registry.sweep()

        self._sweeper = threading.Thread(target=loop, name="sam2-ui-session-sweeper", daemon=True)
        self._sweeper.start()

    def close_session(self, request: gr.Request) -> None:
        """End the tab's session (the page's unload, or a script's ``/close``)."""
        self.registry.close(getattr(request, "session_hash", None) or "")

    # ------------------------------------------------------------------------------------------ files
    def open_media(self, path: str | None, request: gr.Request) -> View:
        """Open an upload in the tab's session; `SessionError` if the upload is refused (the session keeps
        what it had). Notes (a video cut to its first seconds) come as toasts."""
        ui = self.interaction(request)
        self.admit(ui, path)
        view = ui.open(self.keep_upload(path, request))
        if not view.errors:
            self.forget_old_uploads(request)
        return view

    def load_session(self, session_file: str | None, media: str | None, request: gr.Request) -> View:
        """Restore a saved session with its media; `SessionError` if either is refused."""
        ui = self.interaction(request)
        if session_file is None:
            raise SessionError("Choose the session file (.json) to restore.")
        if media is None:
            raise SessionError("Upload the session's video or image together with its session file.")
        self.admit(ui, media)
        view = ui.load(session_file, self.keep_upload(media, request))
        if not view.errors:
            self.forget_old_uploads(request)
        return view

    def admit(self, ui: Interaction, path: str | None) -> None:
        """Check an upload against the app's limits (`SessionError` if refused) and open it within them;
        notes (a video cut to its first seconds) come as toasts."""
        limits, notes = check_upload(path, self.limits)
        ui.limits = limits
        for note in notes:
            gr.Warning(note)

    def keep_upload(self, path: str, request: gr.Request) -> Path:
        """The tab's own copy of an upload (a hard link where possible): Gradio's cache of uploads is
        cleaned on a timer, while the session reads its video for as long as it lives."""
        upload = Path(path)
        folder = self.registry.workdir(request.session_hash) / "media" / f"{time.time_ns()}"
        folder.mkdir(parents=True)
        kept = folder / upload.name
        try:
            os.link(upload, kept)
        except OSError:
            shutil.copyfile(upload, kept)
        return kept

    def forget_old_uploads(self, request: gr.Request) -> None:
        """Delete the tab's kept uploads that its session no longer reads (after an open or a restore)."""
        session = self.interaction(request).session
        in_use = session.source_path.parent if session is not None and session.source_path else None
        for old in (self.registry.workdir(request.session_hash) / "media").glob("*"):
            if old != in_use:
                shutil.rmtree(old, ignore_errors=True)

    def export(self, kind: str, request: gr.Request) -> str:
        """Write one download of the tab's session; its path for Gradio to serve."""
        ui = self.interaction(request)
        try:
            workdir = self.registry.workdir(request.session_hash)
            # Gradio copies a download to its cache once served: keep only the latest few of each kind.
            for old in sorted(workdir.glob(f"export_{kind}_*"))[:-KEEP_EXPORTS]:
                shutil.rmtree(old, ignore_errors=True)
            return str(ui.export(kind, workdir / f"export_{kind}_{time.time_ns()}"))
        except SessionError as error:  # its words name the tab's work folder: not for the visitor
            raise refuse(plain_words(str(error))) from error

    @property
    def upload_folder(self) -> str:
        """Where Gradio stores uploads (the only place a script's file may come from)."""
        return gradio.utils.get_upload_folder()

    # ------------------------------------------------------------------------------------------ page
    def header(self) -> str:
        where = " · model calls in a forked GPU worker (ZeroGPU)" if self.executor is not None else ""
        model = f"{self.model_label} · " if self.model_label else ""
        return (
            f"**{TITLE}** · open a video or an image, click an object (drag for a box, right-click to "
            f"exclude), then **Track**; `?` shows the keys.  \n{model}Runs in {self.precision_label}{where}"
        )

    def build(self) -> gr.Blocks:
        """The page: layout, page handlers, the scripting API, and every handler guarded."""
        empty = Interaction(None).view()
        # delete_cache: Gradio's copies of uploads, frames and downloads older than 2 h go, checked hourly.
        with gr.Blocks(title=TITLE, delete_cache=(3600, 7200)) as demo:
            layout = build_layout(self.header(), {"image": None, "examples": self.example_thumbnails},
                                  dict(empty.enabled))  # fmt: skip
            self.layout = layout
            PageHandlers(self, layout).bind()
            add_api(self)
            page_script = script("page.js").replace("COMMANDS", json.dumps(KEYMAP))
            demo.load(None, None, None, js=page_script, api_visibility="private")
            for block_fn in demo.fns.values():  # unexpected errors become a message
                if block_fn.fn is not None:
                    page = str(block_fn.api_name or "").startswith("ui_")
                    block_fn.fn = guarded(block_fn.fn, page=page)
            demo.unload(self.close_session)  # scripts, which never unload, call /close
        demo.app_state = self  # for tests and tools: the registry and limits behind this Blocks
        self.demo = demo
        return demo


def css() -> str:
    """The page's style sheet."""
    return (STATIC / "app.css").read_text(encoding="utf-8")


def _thumbnail(path: Path) -> dict[str, str]:
    """An example for the drop zone: its name and a small picture of its first frame."""
    with warnings.catch_warnings():  # "only the first frame was opened", "downscaled": as asked
        warnings.simplefilter("ignore")
        media = open_media(path, Limits(max_frames=1, max_side=THUMBNAIL_SIZE[0]))
    try:
        picture = Image.fromarray(media.frames.rgb(0))
    finally:
        media.frames.close()
    picture.thumbnail(THUMBNAIL_SIZE)
    return {"name": path.name, "thumb": image_data_url(np.asarray(picture))}
