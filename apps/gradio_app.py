"""The Gradio Blocks app: segment and track objects in a video or an image, in the browser or on a Space.

Every handler here translates a Gradio event into the interaction layer (`sam2_ui.interaction`) and draws the
`View` it returns; none decides what a click or a key means. Each browser tab (each ``gradio_client``
client) gets its own session, kept server-side in a `SessionRegistry` under the tab's ``session_hash``.

Model work (clicks, tracking, segment everything) goes through Gradio's queue under one ``concurrency_id``;
scrubbing, redraws, stop and downloads do not wait behind it. Every action is also a named API endpoint
named after the engine verb (``/add_point``, ``/propagate``, ...), listed on the app's "Use via API" page.

Handlers always run in the app's process. On a ZeroGPU Space the sessions hand their model calls to
``spaces.GPU`` around `sam2_ui.model_worker.serve` (`zero_gpu_executors`), so what a forked GPU worker
computes comes back as data and the session here stays the only copy of the document.

    python app.py [--model facebook/sam2.1-hiera-tiny | --checkpoint PATH [--config NAME]] [--device auto]
                  [--precision auto|fp32|bf16] [--zero-gpu-emulation reuse|fresh|random]
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import gradio as gr

from model.loading.precision import PRECISION_CHOICES, PRECISION_ENV, describe_precision, resolve_precision
from sam2_ui.errors import SessionError
from sam2_ui.executor import ExecutorFactory
from sam2_ui.forked_gpu import WORKER_MODES, ForkedGPU
from sam2_ui.interaction import TOOLS, Interaction
from sam2_ui.keys import KEYMAP, key_help_markdown
from sam2_ui.masks import encode_rle
from sam2_ui.model_worker import serve
from sam2_ui.predictor import predictor_device
from sam2_ui.timeline import frame_at, render_timelines
from sam2_ui.view import WARNING, View
from sam2_ui.worker_executor import WorkerExecutors, call_seconds

from .examples import example_files
from .model_loading import DEFAULT_MODEL, choose_precision, load_predictor
from .registry import SessionRegistry
from .uploads import AppLimits, check_upload

MODEL_GROUP = "model"  # one model call at a time, across users
VIEW_GROUP = "view"  # redraws of computed masks: never wait behind model work
DISPLAY_SIZE = (960, 640)
TIMELINE_WIDTH = 960
STREAM_INTERVAL_S = 0.25  # least time between two streamed previews of a tracking run
KEEP_EXPORTS = 3
STOP_WAIT_S = 30.0  # Stop waits for the run to end (within a frame) to draw where it stopped
TOOL_LABELS = {
    "positive": "+ point (object)",
    "negative": "− point (not object)",
    "box": "□ box (two clicks)",
}
BUTTON_COMMANDS = (
    "add_object",
    "remove_object",
    "rename_object",
    "undo",
    "redo",
    "clear_frame",
    "clear_object",
    "reset",
    "propagate_backward",
    "propagate_both",
    "propagate_forward",
    "stop",
    "segment_everything",
    "prev_frame",
    "next_frame",
)


def view_to_json(view: View) -> dict[str, Any]:
    """The JSON part of a view (everything but the image), as the API returns it."""
    return {
        "frame": view.frame,
        "num_frames": view.num_frames,
        "fps": view.fps,
        "is_image": view.is_image,
        "tool": view.tool,
        "pending_box": view.pending_box,
        "selected": view.selected,
        "objects": [
            {"id": r.id, "name": r.name, "color": list(r.color), "timeline": r.timeline, "key": r.key}
            for r in view.objects
        ],
        "status": view.status,
        "messages": [{"level": m.level, "text": m.text} for m in view.messages],
        "notes": list(view.notes),
        "enabled": dict(view.enabled),
        "estimate": view.estimate,
        "progress": None
        if view.progress is None
        else {"done": view.progress.done, "total": view.progress.total, "eta_s": view.progress.eta_s},
        "stats": dict(view.stats),
        "precision": view.precision,
        "display_size": None if view.mapping is None else list(view.mapping.display_size),
    }


LOG = logging.getLogger("sam2_ui.app")


def guarded(fn: Callable) -> Callable:
    """``fn`` with unexpected errors turned into a message for the user (and a log entry with the
    traceback): the tab keeps working, as it does after the errors the engine expects."""

    def fail(error: Exception) -> gr.Error:
        LOG.exception("handler %s failed", getattr(fn, "__name__", fn))
        return gr.Error(
            f"Something went wrong ({type(error).__name__}: {error}). The session keeps what it had: try "
            "again, or reload the page if it happens again.",
            print_exception=False,
        )

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as error:
                raise fail(error) from error

        return generator

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as error:
            raise fail(error) from error

    return call


def _raise_errors(view: View) -> View:
    """Errors become a Gradio error (a toast in the browser, an exception in a client); warnings a toast."""
    for message in view.messages:
        if message.level == WARNING:
            gr.Warning(message.text)
    errors = view.errors
    if errors:
        raise gr.Error(" ".join(errors), print_exception=False)
    return view


def _status_markdown(view: View) -> str:
    lines = [f"**{view.status}**"]
    if view.estimate:
        lines.append(view.estimate)
    lines.extend(view.notes)
    return "  \n".join(lines)


def _objects_html(view: View) -> str:
    if not view.objects:
        return "<div class='sam2-objects'>No objects yet: press <b>Add object</b> (key <code>a</code>).</div>"
    items = []
    for row in view.objects:
        r, g, b = row.color
        stale, doubtful = row.timeline.count("S"), row.timeline.count("D")
        flags = []
        if stale:
            flags.append(f"{stale} stale")
        if doubtful:
            flags.append(f"{doubtful} doubtful")
        weight = "bold" if row.selected else "normal"
        items.append(
            f"<div style='font-weight:{weight}'><span style='display:inline-block;width:12px;height:12px;"
            f"background:rgb({r},{g},{b});margin-right:6px;border-radius:2px'></span>"
            f"{row.key + '. ' if row.key else ''}{_escape(row.name)} (id {row.id})"
            f"{' — ' + ', '.join(flags) if flags else ''}</div>"
        )
    return "<div class='sam2-objects'>" + "".join(items) + "</div>"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


BROWSER_SCRIPT = """
() => {
  const commands = COMMANDS;  // key -> command name: the interaction layer's key map
  const queue = [];
  let sending = false;
  // Events Gradio does not forward reach the server through hidden textbox + button pairs, one at a time.
  const pump = () => {
    if (sending || queue.length === 0) return;
    const [channel, text] = queue.shift();
    const box = document.querySelector('#' + channel + ' textarea, #' + channel + ' input');
    const button = document.querySelector('#' + channel + '-send');
    if (!box || !button) return;
    sending = true;
    box.value = text;
    box.dispatchEvent(new Event('input', { bubbles: true }));
    setTimeout(() => { button.click(); sending = false; setTimeout(pump, 60); }, 40);
  };
  const send = (channel, text) => { queue.push([channel, text]); pump(); };
  const typing = (el) => el && (el.tagName === 'TEXTAREA' || el.isContentEditable ||
    (el.tagName === 'INPUT' && ['text', 'search', 'number', 'email', 'password', 'url'].includes(el.type)));
  document.addEventListener('keydown', (event) => {
    if (typing(event.target) || event.altKey) return;
    let key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    let command = commands[key];
    if (event.ctrlKey || event.metaKey) {
      command = key === 'z' ? (event.shiftKey ? 'redo' : 'undo') : key === 'y' ? 'redo' : undefined;
    }
    if (!command) return;
    event.preventDefault();
    // A command with a button goes through that button: the same handler, queue and streaming.
    const button = document.querySelector('#cmd-' + command);
    if (button && !button.disabled) { button.click(); return; }
    if (button && command !== 'stop') return;  // Esc with nothing to stop still drops a half-given box
    send('sam2-view-event', 'key:' + key);
  });
  document.addEventListener('contextmenu', (event) => {
    const frame = document.querySelector('#sam2-frame');
    const image = frame && frame.querySelector('img');
    if (!image || !frame.contains(event.target)) return;
    // The pixel under the pointer, as Gradio maps a left click: scaled down to fit, never up, centred.
    const rect = image.getBoundingClientRect();
    const r = Math.min(rect.width / image.naturalWidth, rect.height / image.naturalHeight, 1);
    const x = Math.round((event.clientX - rect.left - (rect.width - image.naturalWidth * r) / 2) / r);
    const y = Math.round((event.clientY - rect.top - (rect.height - image.naturalHeight * r) / 2) / r);
    if (x < 0 || y < 0 || x >= image.naturalWidth || y >= image.naturalHeight) return;
    event.preventDefault();
    const shown = document.querySelector('#sam2-slider input[type=number]');
    send('sam2-event', 'right:' + x + ',' + y + ',' + (shown ? shown.value : ''));
  });
}
""".replace("COMMANDS", json.dumps(KEYMAP))

CSS = """
#sam2-event, #sam2-event-send, #sam2-view-event, #sam2-view-event-send {
  position: absolute !important; left: -10000px !important; width: 1px !important;
}
.sam2-objects div { padding: 2px 0; }
#sam2-timeline img { image-rendering: pixelated; width: 100%; }
.sam2-legend { font-size: 0.8em; opacity: 0.8; }
"""


def on_zero_gpu() -> bool:
    """Whether the app runs where ``spaces.GPU`` lends a GPU per call (a Hugging Face ZeroGPU Space).

    Spaces set ``SPACES_ZERO_GPU`` on ZeroGPU hardware; the ``spaces`` package alone is also installed on
    Spaces with a GPU of their own, where state may stay on it.
    """
    try:
        import spaces  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")


def zero_gpu_executors(predictor: Any) -> WorkerExecutors:
    """Model calls of every session in ZeroGPU's forked GPU workers: ``spaces.GPU`` around the worker's one
    function, asking each call's own duration. Made before the app launches (ZeroGPU wants its GPU
    functions known by then, and workers forked later must find the model)."""
    import spaces  # type: ignore[import-not-found]

    return WorkerExecutors(spaces.GPU(duration=call_seconds)(serve), predictor)


class App:
    """The app's shared parts: the model, the session registry and the limits; builds the Blocks.

    ``precision`` ("auto", "fp32", "bf16"; see ``model.loading.precision``) is resolved once for the model's
    device; every session runs in it, and the page says which (`precision_label`).
    """

    def __init__(
        self,
        predictor: Any,
        limits: AppLimits | None = None,
        display_size: tuple[int, int] = DISPLAY_SIZE,
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
        self._sweeper: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------ sessions
    def interaction(self, request: gr.Request | None) -> Interaction:
        key = getattr(request, "session_hash", None)
        try:
            ui, note = self.registry.get(key)
        except SessionError as error:
            raise gr.Error(str(error), print_exception=False) from error
        if note:
            gr.Warning(note)
        return ui

    def start_sweeper(self, every_s: float = 60.0) -> None:
        """Close expired sessions in the background (besides the sweep on every request)."""

        def loop() -> None:
            while True:
                time.sleep(every_s)
                self.registry.sweep()

        self._sweeper = threading.Thread(target=loop, name="sam2-ui-session-sweeper", daemon=True)
        self._sweeper.start()

    # ------------------------------------------------------------------------------------------ handlers
    def open_media(self, path: str | None, request: gr.Request) -> View:
        ui = self.interaction(request)
        try:
            limits, notes = check_upload(path, self.limits)
        except SessionError as error:
            raise gr.Error(str(error), print_exception=False) from error
        ui.limits = limits
        view = ui.open(self.keep_upload(path, request))
        self.forget_old_uploads(request)
        for note in notes:
            gr.Warning(note)
        return view

    def load_session(self, session_file: str | None, media: str | None, request: gr.Request) -> View:
        ui = self.interaction(request)
        if session_file is None:
            raise gr.Error("Choose the session file (.json) to restore.", print_exception=False)
        if media is None:
            raise gr.Error(
                "Upload the session's video or image together with its session file.", print_exception=False
            )
        try:
            limits, notes = check_upload(media, self.limits)
        except SessionError as error:
            raise gr.Error(str(error), print_exception=False) from error
        ui.limits = limits
        for note in notes:
            gr.Warning(note)
        view = ui.load(session_file, self.keep_upload(media, request))
        self.forget_old_uploads(request)
        return view

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
        ui = self.interaction(request)
        try:
            workdir = self.registry.workdir(request.session_hash)
            # Gradio copies a download to its cache once served: keep only the latest few of each kind.
            for old in sorted(workdir.glob(f"export_{kind}_*"))[:-KEEP_EXPORTS]:
                shutil.rmtree(old, ignore_errors=True)
            return str(ui.export(kind, workdir / f"export_{kind}_{time.time_ns()}"))
        except SessionError as error:
            raise gr.Error(str(error), print_exception=False) from error

    def export_handler(self, kind: str) -> Callable[[gr.Request], str]:
        def handler(request: gr.Request) -> str:
            return self.export(kind, request)

        return handler

    def close_session(self, request: gr.Request) -> None:
        self.registry.close(getattr(request, "session_hash", None) or "")

    # ------------------------------------------------------------------------------------------ blocks
    def build(self) -> gr.Blocks:
        # delete_cache: Gradio's copies of uploads, frames and downloads older than 2 h go, checked hourly.
        with gr.Blocks(title="SAM 2 — segment and track", delete_cache=(3600, 7200)) as demo:
            gr.Markdown(
                "## Segment Anything 2 — click objects, track them through the video\n"
                "Upload a video or image (or pick an example), **add an object**, click on it "
                "(click a point again to remove it), then **track**. Keys: `a` add object, "
                "`p`/`n`/`b` tools, `z`/`y` undo/redo, `t` track, `Esc` stop, `←`/`→` frames."
                + (f"  \nModel: {self.model_label} · " if self.model_label else "  \n")
                + f"Runs in {self.precision_label}"
                + (" · model calls in a forked GPU worker (ZeroGPU)" if self.executor is not None else ""),
                elem_id="sam2-model-info",
            )
            key_state = gr.State(None)
            with gr.Row():
                with gr.Column(scale=3):
                    frame_image = gr.Image(
                        label="Frame (click with the current tool)",
                        interactive=False,
                        type="numpy",
                        format="jpeg",
                        buttons=["fullscreen"],
                        height=560,
                        elem_id="sam2-frame",
                    )
                    with gr.Row():
                        buttons = {}
                        buttons["prev_frame"] = gr.Button("◀ Prev", size="sm", elem_id="cmd-prev_frame")
                        slider = gr.Slider(
                            0,
                            1,
                            value=0,
                            step=1,
                            label="Frame",
                            interactive=False,
                            scale=6,
                            elem_id="sam2-slider",
                        )
                        buttons["next_frame"] = gr.Button("Next ▶", size="sm", elem_id="cmd-next_frame")
                    timeline_image = gr.Image(
                        show_label=False,
                        container=False,
                        interactive=False,
                        type="numpy",
                        format="png",
                        elem_id="sam2-timeline",
                        buttons=[],
                    )
                    gr.Markdown(
                        "Timeline per object (click to jump): white-topped = your prompt, colour = mask, "
                        "grey = stale (track again), amber = doubtful (check it).",
                        elem_classes=["sam2-legend"],
                    )
                    status = gr.Markdown("Upload a video or an image to start.", elem_id="sam2-status")
                with gr.Column(scale=2):
                    media = gr.File(
                        label="Video or image",
                        file_types=["video", "image", ".mp4", ".mov", ".webm", ".mkv", ".avi"],
                        type="filepath",
                        elem_id="sam2-upload",
                    )
                    example_picker = gr.Examples(
                        examples=[[str(p)] for p in self.examples],
                        inputs=[media],
                        label="Examples",
                        cache_examples=False,
                    )
                    tool = gr.Radio(
                        [(TOOL_LABELS[t], t) for t in TOOLS],
                        value="positive",
                        label="Tool",
                        elem_id="sam2-tool",
                    )
                    objects = gr.Radio([], label="Objects (1–9 select)", elem_id="sam2-objects")
                    objects_html = gr.HTML(_objects_html(Interaction(None).view()))
                    with gr.Row():
                        buttons["add_object"] = gr.Button("Add object", elem_id="cmd-add_object")
                        buttons["remove_object"] = gr.Button("Remove object", elem_id="cmd-remove_object")
                    with gr.Row():
                        name = gr.Textbox(label="Name", scale=3, placeholder="name of the selected object")
                        buttons["rename_object"] = gr.Button("Rename", scale=1, elem_id="cmd-rename_object")
                    with gr.Row():
                        buttons["undo"] = gr.Button("Undo", elem_id="cmd-undo")
                        buttons["redo"] = gr.Button("Redo", elem_id="cmd-redo")
                        buttons["clear_frame"] = gr.Button("Clear frame", elem_id="cmd-clear_frame")
                        buttons["clear_object"] = gr.Button("Clear object", elem_id="cmd-clear_object")
                        buttons["reset"] = gr.Button("Reset", variant="stop", elem_id="cmd-reset")
                    with gr.Row():
                        buttons["propagate_backward"] = gr.Button(
                            "◀ Track back", elem_id="cmd-propagate_backward"
                        )
                        buttons["propagate_both"] = gr.Button(
                            "Track ◀▶", variant="primary", elem_id="cmd-propagate_both"
                        )
                        buttons["propagate_forward"] = gr.Button(
                            "Track fwd ▶", elem_id="cmd-propagate_forward"
                        )
                        buttons["stop"] = gr.Button("Stop", variant="stop", elem_id="cmd-stop")
                    with gr.Row():
                        points_per_side = gr.Slider(4, 32, value=16, step=1, label="Points per side", scale=2)
                        buttons["segment_everything"] = gr.Button(
                            "Segment everything", scale=2, elem_id="cmd-segment_everything"
                        )
                    with gr.Accordion("Download", open=True):
                        with gr.Row():
                            download_buttons = {
                                "pngs": gr.Button("PNG masks (zip)", size="sm", elem_id="dl-pngs"),
                                "davis": gr.Button("DAVIS PNGs (zip)", size="sm", elem_id="dl-davis"),
                                "coco": gr.Button("COCO RLE JSON", size="sm", elem_id="dl-coco"),
                                "video": gr.Button("Overlay MP4", size="sm", elem_id="dl-video"),
                                "session": gr.Button("Session JSON", size="sm", elem_id="dl-session"),
                            }
                        download = gr.File(label="Download", interactive=False, elem_id="sam2-download")
                    with gr.Accordion("Restore a saved session", open=False):
                        session_file = gr.File(label="Session JSON", file_types=[".json"], type="filepath")
                        session_media = gr.File(
                            label="Its video or image", file_types=["video", "image"], type="filepath"
                        )
                        restore = gr.Button("Restore")
                    with gr.Accordion("Keyboard", open=False):
                        gr.Markdown(key_help_markdown())
                    event_box = gr.Textbox(elem_id="sam2-event", show_label=False, container=False)
                    event_send = gr.Button("event", elem_id="sam2-event-send")
                    view_event_box = gr.Textbox(elem_id="sam2-view-event", show_label=False, container=False)
                    view_event_send = gr.Button("view event", elem_id="sam2-view-event-send")
                    view_json = gr.JSON(visible=False)

            outputs = [
                frame_image,
                slider,
                timeline_image,
                objects,
                objects_html,
                status,
                view_json,
                key_state,
            ]
            outputs += [buttons[c] for c in BUTTON_COMMANDS]
            outputs += list(download_buttons.values())

            def draw(view: View, request: gr.Request) -> tuple:
                n = view.num_frames
                timeline = (
                    render_timelines(view.objects, n, view.frame, width=TIMELINE_WIDTH, row_height=16)
                    if n > 1
                    else None
                )
                return (
                    view.image,
                    gr.update(minimum=0, maximum=max(1, n - 1), value=view.frame, interactive=n > 1),
                    timeline,
                    gr.update(
                        choices=[(f"{r.key + '. ' if r.key else ''}{r.name}", r.id) for r in view.objects],
                        value=view.selected,
                    ),
                    _objects_html(view),
                    _status_markdown(view),
                    view_to_json(view),
                    getattr(request, "session_hash", None),
                    *(gr.update(interactive=bool(view.enabled.get(c))) for c in BUTTON_COMMANDS),
                    *(
                        gr.update(interactive=bool(view.enabled.get("save" if k == "session" else "export")))
                        for k in download_buttons
                    ),
                )

            def ui_with(action: Callable[[Interaction, Any], View]) -> Callable:
                """A handler of one input value: ``action(interaction, value)``, then draw the view."""

                def handler(value: Any, request: gr.Request) -> tuple:
                    return draw(_raise_errors(action(self.interaction(request), value)), request)

                return handler

            def ui(action: Callable[[Interaction], View]) -> Callable:
                """A handler that runs ``action`` on the tab's interaction and draws the view."""

                def handler(request: gr.Request) -> tuple:
                    view = _raise_errors(action(self.interaction(request)))
                    return draw(view, request)

                return handler

            def on(
                event,
                fn,
                inputs,
                name,
                group=VIEW_GROUP,
                public=False,
                progress="minimal",
                **kw,
            ):
                """Bind a handler that draws the view: model work in the one model queue, redraws beside it,
                never waiting. Handlers run in this process; on ZeroGPU the session hands its model calls to
                the GPU worker (`App.executor`). ``public``: listed on the API page as ``name``, else an
                undocumented ``ui_<name>``."""
                return event(
                    fn,
                    inputs,
                    outputs,
                    api_name=name if public else f"ui_{name}",
                    api_visibility="public" if public else "undocumented",
                    concurrency_id=group,
                    concurrency_limit=1 if group == MODEL_GROUP else None,
                    show_progress=progress,
                    **kw,
                )

            # --- media
            def on_open(path: str | None, request: gr.Request) -> tuple:
                return draw(_raise_errors(self.open_media(path, request)), request)

            def on_example(evt: gr.SelectData, request: gr.Request) -> tuple:
                return on_open(str(self.examples[evt.index]), request)

            on(media.upload, on_open, [media], "open", group=MODEL_GROUP, public=True, progress="full")
            on(example_picker.dataset.select, on_example, None, "example", group=MODEL_GROUP, progress="full")

            def on_restore(session_path: str | None, media_path: str | None, request: gr.Request) -> tuple:
                return draw(_raise_errors(self.load_session(session_path, media_path, request)), request)

            on(
                restore.click,
                on_restore,
                [session_file, session_media],
                "load_session",
                group=MODEL_GROUP,
                public=True,
                progress="full",
            )

            # --- clicks on the frame
            def on_select(shown: float | None, evt: gr.SelectData, request: gr.Request) -> tuple:
                ui_ = self.interaction(request)
                x, y = evt.index[0], evt.index[1]
                frame = None if shown is None else int(shown)  # the frame the person saw when clicking
                return draw(_raise_errors(ui_.click(x, y, frame=frame)), request)

            on(frame_image.select, on_select, [slider], "click", group=MODEL_GROUP)

            def on_timeline(evt: gr.SelectData, request: gr.Request) -> tuple:
                ui_ = self.interaction(request)
                n = ui_.session.num_frames if ui_.session else 0
                return draw(ui_.go_to(frame_at(evt.index[0], TIMELINE_WIDTH, n)), request)

            on(timeline_image.select, on_timeline, None, "timeline", progress="hidden")

            # --- frames and tools (redraws only)
            on(
                slider.input,
                ui_with(lambda u, frame: u.go_to(int(frame))),
                [slider],
                "go_to",
                progress="hidden",
                trigger_mode="always_last",
            )
            on(buttons["prev_frame"].click, ui(lambda u: u.command("prev_frame")), None, "prev_frame")
            on(buttons["next_frame"].click, ui(lambda u: u.command("next_frame")), None, "next_frame")
            on(tool.input, ui_with(lambda u, t: u.set_tool(t)), [tool], "set_tool", progress="full")
            on(
                objects.input,
                ui_with(lambda u, o: u.select_object(o)),
                [objects],
                "select_object",
                progress="full",
            )

            # --- object and history buttons
            on(
                buttons["add_object"].click,
                ui_with(lambda u, text: u.add_object(text or None)),
                [name],
                "add_object",
            )
            on(
                buttons["remove_object"].click,
                ui(lambda u: u.remove_object()),
                None,
                "remove_object",
                group=MODEL_GROUP,  # the predictor drops the object's tracking state
            )
            on(
                buttons["rename_object"].click,
                ui_with(lambda u, text: u.rename_object(None, text)),
                [name],
                "rename_object",
            )
            for command in ("undo", "redo", "clear_frame", "clear_object", "reset"):
                on(
                    buttons[command].click,
                    ui(lambda u, c=command: u.command(c)),
                    None,
                    command,
                    group=MODEL_GROUP,
                )

            on(
                buttons["segment_everything"].click,
                ui_with(lambda u, pps: u.segment_everything(points_per_side=int(pps))),
                [points_per_side],
                "segment_everything",
                group=MODEL_GROUP,
            )

            # --- tracking, streamed, with Stop
            def track(direction: str) -> Callable:
                def run(request: gr.Request, progress=gr.Progress()) -> Iterator[tuple]:  # noqa: B008
                    ui_ = self.interaction(request)
                    # Views at most every STREAM_INTERVAL_S (a browser shows no more), and the last one; the
                    # first at once (Stop on, this run's progress at 0) before any frame is tracked.
                    views = ui_.propagate(direction, min_interval_s=STREAM_INTERVAL_S, announce=True)
                    with closing(views):  # a cancelled event ends the run too
                        for view in views:
                            if view.progress is None:  # the end: errors become a message
                                yield draw(_raise_errors(view), request)
                                continue
                            p = view.progress
                            progress((p.done, p.total), desc=f"Tracking {p.direction}, ~{p.eta_s:.0f} s left")
                            yield draw(view, request)

                return run

            track_events = [
                on(
                    buttons[f"propagate_{d}"].click,
                    track(d),
                    None,
                    f"propagate_{d}",
                    group=MODEL_GROUP,
                )
                for d in ("backward", "both", "forward")
            ]
            on(
                buttons["stop"].click,
                ui(lambda u: u.stop(wait_s=STOP_WAIT_S)),
                None,
                "stop",
                progress="full",
                cancels=track_events,
            )

            # --- right clicks and keys without a button: the browser says what happened, the interaction
            # layer decides what it means (keys with a button click that button in the browser)
            def on_right_click(text: str, request: gr.Request) -> tuple:
                ui_ = self.interaction(request)
                try:
                    x, y, shown = (text or "").removeprefix("right:").split(",")
                    frame = int(float(shown)) if shown else None
                    view = ui_.click(float(x), float(y), negative=True, frame=frame)  # as in Meta's demo
                except ValueError:
                    view = ui_.view()  # not a click the page script sends: nothing to do
                return draw(_raise_errors(view), request)

            def on_key(text: str, request: gr.Request) -> tuple:
                ui_ = self.interaction(request)
                key, ctrl, shift = _parse_key((text or "").removeprefix("key:"))
                return draw(_raise_errors(ui_.key(key, ctrl=ctrl, shift=shift)), request)

            on(event_send.click, on_right_click, [event_box], "right_click", group=MODEL_GROUP)
            on(view_event_send.click, on_key, [view_event_box], "key")

            # --- downloads
            for kind, button in download_buttons.items():
                button.click(
                    self.export_handler(kind),
                    None,
                    download,
                    api_name=f"export_{kind}",
                    concurrency_id=VIEW_GROUP,
                    concurrency_limit=None,
                )

            self._add_api()
            demo.load(None, None, None, js=BROWSER_SCRIPT)
            for block_fn in demo.fns.values():  # every handler: unexpected errors become a message
                if block_fn.fn is not None:
                    block_fn.fn = guarded(block_fn.fn)
            demo.unload(self.close_session)
        demo.app_state = self  # for tests and tools: the registry and limits behind this Blocks
        return demo

    # ------------------------------------------------------------------------------------------ API
    def _add_api(self) -> None:
        """Scripting endpoints named after the engine verbs; each returns the view as JSON."""
        app = self

        def call(request: gr.Request, action: Callable[[Interaction], View]) -> dict:
            return view_to_json(_raise_errors(action(app.interaction(request))))

        def add_object(name: str = "", request: gr.Request = None) -> dict:
            """Add an object (selected at once); ``name`` optional."""
            return call(request, lambda u: u.add_object(name or None))

        def select_object(obj: int, request: gr.Request = None) -> dict:
            """Select the object prompts go to."""
            return call(request, lambda u: u.select_object(int(obj)))

        def rename_object(obj: int, name: str, request: gr.Request = None) -> dict:
            """Rename an object."""
            return call(request, lambda u: u.rename_object(int(obj), name))

        def remove_object(obj: int, request: gr.Request = None) -> dict:
            """Remove an object with its prompts and masks (undoable)."""
            return call(request, lambda u: u.remove_object(int(obj)))

        def add_point(
            frame: int, obj: int, x: float, y: float, positive: bool = True, request: gr.Request = None
        ) -> dict:
            """Click on frame ``frame`` at frame pixel (x, y) for object ``obj`` (0: the selected one)."""
            return call(request, lambda u: u.add_point(int(frame), int(obj) or None, x, y, bool(positive)))

        def add_box(
            frame: int, obj: int, x0: float, y0: float, x1: float, y1: float, request: gr.Request = None
        ) -> dict:
            """Give object ``obj`` (0: the selected one) a box on ``frame``, in frame pixels."""
            return call(request, lambda u: u.add_box(int(frame), int(obj) or None, x0, y0, x1, y1))

        def remove_point(frame: int, obj: int, index: int, request: gr.Request = None) -> dict:
            """Remove click ``index`` (in the order given) of object ``obj`` on ``frame``."""
            return call(request, lambda u: u.remove_point(int(frame), int(obj), int(index)))

        def click(x: float, y: float, negative: bool = False, request: gr.Request = None) -> dict:
            """A click on the displayed frame image (display pixels), as the browser sends it."""
            return call(request, lambda u: u.click(x, y, negative=bool(negative)))

        def set_tool(tool: str, request: gr.Request = None) -> dict:
            """Choose the tool: positive, negative or box."""
            return call(request, lambda u: u.set_tool(tool))

        def go_to(frame: int, request: gr.Request = None) -> dict:
            """Show a frame."""
            return call(request, lambda u: u.go_to(int(frame)))

        def command(name: str, request: gr.Request = None) -> dict:
            """Run a command by name: undo, redo, clear_frame, clear_object, reset, next_frame, ..."""
            return call(request, lambda u: u.command(name))

        def key(key: str, request: gr.Request = None) -> dict:
            """A key press (the shared key map), e.g. ``z`` or ``Ctrl+Shift+z``."""
            k, ctrl, shift = _parse_key(key)
            return call(request, lambda u: u.key(k, ctrl=ctrl, shift=shift))

        def propagate(direction: str = "both", frame: int = -1, request: gr.Request = None) -> Iterator[dict]:
            """Track from ``frame`` (-1: the current frame) forward, backward or both; streams progress."""
            ui_ = app.interaction(request)
            if frame >= 0:
                ui_.go_to(int(frame))
            with closing(ui_.propagate(direction)) as views:  # a cancelled call ends the run too
                for view in views:
                    yield view_to_json(view if view.progress is not None else _raise_errors(view))

        def stop(request: gr.Request = None) -> dict:
            """Stop the running tracking run (frames done so far are kept)."""
            return call(request, lambda u: u.stop(wait_s=STOP_WAIT_S))

        def segment_everything(points_per_side: int = 16, request: gr.Request = None) -> dict:
            """Automatic masks on the current frame; each becomes an object."""
            return call(request, lambda u: u.segment_everything(points_per_side=int(points_per_side)))

        def masks(frame: int, request: gr.Request = None) -> dict:
            """The masks of a frame: object id -> run-length mask {"size": [H, W], "counts": [...]}."""
            ui_ = app.interaction(request)
            if ui_.session is None:
                raise gr.Error("Upload a video or an image first.", print_exception=False)
            try:
                found = ui_.session.masks(int(frame))
            except SessionError as error:
                raise gr.Error(str(error), print_exception=False) from error
            return {str(obj): encode_rle(mask) for obj, mask in found.items()}

        def view(request: gr.Request = None) -> dict:
            """The current view as JSON (frame, objects with timelines, status, enabled commands)."""
            return call(request, lambda u: u.view())

        model_calls = (
            add_object,
            select_object,
            rename_object,
            remove_object,
            add_point,
            add_box,
            remove_point,
            click,
            command,
            key,
            segment_everything,
        )
        for fn in model_calls:
            gr.api(fn, api_name=fn.__name__, concurrency_id=MODEL_GROUP, concurrency_limit=1)
        gr.api(propagate, api_name="propagate", concurrency_id=MODEL_GROUP, concurrency_limit=1)
        for fn in (set_tool, go_to, stop, masks, view):
            gr.api(fn, api_name=fn.__name__, concurrency_id=VIEW_GROUP, concurrency_limit=None)


def _parse_key(text: str) -> tuple[str, bool, bool]:
    """ "Ctrl+Shift+z" -> ("z", True, True); "ArrowLeft" -> ("ArrowLeft", False, False)."""
    parts = (text or "").split("+")
    key = parts[-1] if parts[-1] else "+"
    mods = {p.lower() for p in parts[:-1]}
    return key, bool(mods & {"ctrl", "meta", "cmd"}), "shift" in mods


# ============================================================================================== command line
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = AppLimits()
    parser = argparse.ArgumentParser(prog="python app.py", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help="Hugging Face model id (cached after the first run)"
    )
    parser.add_argument("--checkpoint", type=Path, help="a local official .pt checkpoint instead of --model")
    parser.add_argument(
        "--config", help="config of --checkpoint when its file name does not tell, e.g. sam2.1_hiera_tiny"
    )
    parser.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, mps")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISION_CHOICES,
        help=f"auto: bf16 where the device runs it fast, else fp32 (${PRECISION_ENV} replaces auto)",
    )
    parser.add_argument(
        "--image-size", type=int, help="model input size (default: the model's, 1024); lower is faster"
    )
    parser.add_argument(
        "--host",
        default=None,
        help="address to listen on (default $GRADIO_SERVER_NAME or 127.0.0.1; 0.0.0.0 for all)",
    )
    parser.add_argument("--port", type=int, default=None, help="default $GRADIO_SERVER_PORT or 7860")
    parser.add_argument("--share", action="store_true", help="also serve on a public gradio.live link")
    parser.add_argument("--max-upload-mb", type=float, default=defaults.max_upload_mb)
    parser.add_argument(
        "--max-seconds", type=float, default=defaults.max_seconds, help="longer videos are cut"
    )
    parser.add_argument("--max-frames", type=int, default=defaults.max_frames)
    parser.add_argument(
        "--max-side", type=int, default=defaults.max_side, help="larger frames are downscaled"
    )
    parser.add_argument("--max-sessions", type=int, default=defaults.max_sessions)
    parser.add_argument("--session-ttl-min", type=float, default=defaults.session_ttl_min)
    parser.add_argument(
        "--zero-gpu-emulation",
        choices=WORKER_MODES,
        help="run every model call in a forked worker as a ZeroGPU Space does (reuse: one worker kept; "
        "fresh: a new fork per call; random: either), to try the Space's process model on any machine",
    )
    return parser.parse_args(argv)


def limits_from_args(args: argparse.Namespace) -> AppLimits:
    return AppLimits(
        max_upload_mb=args.max_upload_mb,
        max_seconds=args.max_seconds,
        max_frames=args.max_frames,
        max_side=args.max_side,
        max_sessions=args.max_sessions,
        session_ttl_min=args.session_ttl_min,
    )


def launch(demo: gr.Blocks, host: str | None, port: int | None, share: bool = False, **kwargs: Any):
    """Queue and launch the app (what ``main`` and the tests do)."""
    app: App = demo.app_state
    demo.queue(default_concurrency_limit=1, max_size=256)
    return demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=f"{app.limits.max_upload_mb:g}mb",
        footer_links=["api", "gradio"],
        css=CSS,
        **kwargs,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    on_zero_gpu()  # on ZeroGPU this imports spaces first, as it must come before anything uses CUDA
    predictor = load_predictor(args.model, args.checkpoint, args.config, args.device, args.image_size)
    precision = choose_precision(args.precision, predictor)
    label = str(args.checkpoint) if args.checkpoint else args.model
    executor = None
    if args.zero_gpu_emulation:
        executor = WorkerExecutors(ForkedGPU(args.zero_gpu_emulation)(serve), predictor)
    app = App(
        predictor,
        limits_from_args(args),
        model_label=f"{label} on {predictor.device}",
        precision=precision,
        executor=executor,
    )
    app.start_sweeper()
    launch(app.build(), args.host, args.port, share=args.share)
