"""The app's page handlers called directly (no server): each page event reaches the interaction layer and
draws its view as ``{component: update}``; a refused action draws nothing and says why in a toast; the
session registry, the upload checks and model loading.
"""

from __future__ import annotations

import base64
import io
import re
import time
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from apps.model_loading import ModelLoadError, choose_precision, load_predictor
from apps.web import App
from apps.web.api import parse_key
from apps.web.cli import parse_args
from apps.web.draw import TIMELINE_ROW_PX, TIMELINE_WIDTH
from apps.web.layout import BUTTON_COMMANDS
from apps.web.refusals import SOMETHING_WENT_WRONG
from apps.web.registry import SessionRegistry
from apps.web.uploads import AppLimits, check_upload
from sam2_ui.engine.errors import SessionError
from sam2_ui.engine.quality import DoubtRule
from sam2_ui.interaction.interaction import Interaction
from sam2_ui.interaction.timeline import DOUBTFUL_CELL, SWATCH
from tests.support.app_helpers import TEST_LIMITS, Page, Tab, write_clip
from tests.support.bad_media import assert_plain, write_bad_media
from tests.support.session_helpers import (
    HEIGHT,
    WIDTH,
    block_box,
    disc_centre,
    predictor,
    state_of,
)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    app = App(
        predictor(), TEST_LIMITS, display_size=(WIDTH, HEIGHT), work_root=tmp_path_factory.mktemp("app")
    )
    app.build()
    yield app
    app.registry.close_all()


@pytest.fixture
def toasts(monkeypatch) -> list[str]:
    """The messages the page showed as toasts (``gr.Warning``), in order."""
    seen: list[str] = []
    monkeypatch.setattr(gr, "Warning", lambda message, *args, **kwargs: seen.append(message))
    return seen


def export(tab: Tab, kind: str) -> str:
    """A download button's handler: the path of the file written for the tab."""
    return tab.handlers[f"export_{kind}"](tab.request)


def picture(data_url: str) -> np.ndarray:
    """The H, W, 3 array of a PNG data URL (a timeline strip)."""
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB"))


def strip_cell(page: Page, row: int, frame: int) -> tuple[int, ...]:
    """The colour of ``frame``'s cell in timeline row ``row`` (mid-cell, mid-row: off the cursor line)."""
    strip = picture(page.timeline[row]["strip"])
    n = page.view["num_frames"]
    column = int((frame + 0.5) * (TIMELINE_WIDTH - SWATCH) / n)
    return tuple(int(v) for v in strip[2 + TIMELINE_ROW_PX // 2, column])


def header(app: App) -> str:
    return next(b for b in app.demo.blocks.values() if getattr(b, "elem_id", None) == "sam2-header").value


def test_every_button_and_event_has_a_handler(app):
    names = {f.api_name for f in app.demo.fns.values()}
    for command in BUTTON_COMMANDS:
        assert f"ui_{command}" in names, command
    for name in (
        "ui_open",
        "ui_load_session",
        "open",
        "load_session",
        "ui_click",
        "ui_show_frame",
        "ui_timeline",
        "ui_go_to",
        "ui_set_tool",
        "ui_key",
        "ui_object",
        "ui_memory_open",
        "ui_memory_close",
        "export_pngs",
        "export_session",
    ):
        assert name in names, name


@pytest.mark.slow
def test_a_whole_session_through_the_handlers(app, clip):
    tab = Tab(app, "handlers-1")
    out = tab("ui_open", str(clip))
    assert out.image.shape == (HEIGHT, WIDTH, 3) and out.view["num_frames"] == 6
    assert "handlers-1" in app.registry and tab.ui.session.num_frames == 6  # the tab's own session
    assert out.slider["maximum"] == 5 and out.slider["interactive"]
    out = tab("ui_add_object")
    assert out.view["selected"] == 1
    out = tab.event("ui_object", kind="rename", id=1, name="ball")  # renamed in place in the panel
    assert [{k: row[k] for k in ("id", "name", "key", "selected")} for row in out.objects] == [
        {"id": 1, "name": "ball", "key": "1", "selected": True}
    ]
    assert re.fullmatch(r"#[0-9a-f]{6}", out.objects[0]["color"])
    before = out.image.copy()
    out = tab.click(*disc_centre(0))  # display size = frame size here
    assert out.view["objects"][0]["timeline"][0] == "P" and not np.array_equal(out.image, before)
    assert out.updates[app.layout.buttons["undo"]]["interactive"] is True
    out = tab("ui_set_tool", "box")
    assert out.view["tool"] == "box"
    x0, y0, x1, y1 = block_box(0)
    tab("ui_add_object")
    tab.click(x0, y0)
    out = tab.click(x1, y1)
    assert tab.ui.session.prompts(0)[2].box is not None
    out = tab.event("ui_object", kind="select", id=1)
    assert out.view["selected"] == 1
    out = tab.event("ui_object", kind="rename", id=1, name="red ball")
    assert out.view["objects"][0]["name"] == "red ball"
    outs = tab("ui_propagate_forward")
    assert [o.view["progress"] is not None for o in outs][-1] is False
    assert [(row["id"], row["name"]) for row in outs[-1].timeline] == [(1, "red ball"), (2, "object 2")]
    assert picture(outs[-1].timeline[0]["strip"]).shape[1] == TIMELINE_WIDTH - SWATCH  # the swatch is aside
    assert outs[-1].view["objects"][0]["timeline"].replace("D", "M") == "PMMMMM"
    out = tab.event("ui_timeline", kind="goto", frame=5)
    assert out.view["frame"] == 5
    assert tab("ui_prev_frame").view["frame"] == 4 and tab("ui_next_frame").view["frame"] == 5
    assert tab("ui_go_to", 2).view["frame"] == 2
    out = tab.event("ui_key", key="z", ctrl=True, shift=False)
    assert "Undid propagate forward" in out.status
    assert tab("ui_redo").view["objects"][0]["timeline"].replace("D", "M") == "PMMMMM"
    assert tab("ui_undo").view["objects"][0]["timeline"] == "P....."
    tab("ui_go_to", 0)
    out = tab("ui_clear_object")  # object 1 is selected
    assert [o["timeline"] for o in out.view["objects"]] == ["......", "P....."]
    out = tab("ui_clear_frame")
    assert [o["timeline"] for o in out.view["objects"]] == ["......", "......"]
    out = tab("ui_reset")
    assert all(o["timeline"] == "......" for o in out.view["objects"])
    out = tab.event("ui_object", kind="remove", id=1)
    assert [o["id"] for o in out.view["objects"]] == [2]
    assert tab("ui_stop").view["enabled"]["stop"] is False


@pytest.mark.slow
def test_downloads_and_restore_through_the_handlers(app, clip):
    tab = Tab(app, "handlers-2")
    tab("ui_open", str(clip))
    tab.click(*disc_centre(0))
    tab("ui_propagate_forward")
    paths = {kind: export(tab, kind) for kind in ("pngs", "davis", "coco", "video", "session")}
    workdir = app.registry.workdir("handlers-2")
    for kind, path in paths.items():
        assert path.startswith(str(workdir)), (kind, path)  # each tab writes only into its own folder
    other = Tab(app, "handlers-3")
    out = other("ui_load_session", paths["session"], str(clip))
    assert out.view["objects"][0]["timeline"].replace("D", "M") == "PMMMMM"
    for f in range(6):
        assert np.array_equal(other.ui.session.mask(f, 1), tab.ui.session.mask(f, 1))


def test_a_refused_action_draws_nothing_says_why_and_keeps_the_session(app, clip, toasts):
    tab = Tab(app, "handlers-4")
    assert tab.click(5, 5, size=(WIDTH, HEIGHT)).empty
    assert "Upload a video or an image first" in toasts[-1]
    out = tab("ui_open", None)
    assert out.updates == {app.layout.upload: None}  # only the upload box is cleared for the next try
    assert "No file was uploaded" in toasts[-1]
    tab("ui_open", str(clip))
    kept = state_of(tab.ui.session)
    assert tab.click(WIDTH + 40, 5).empty and "outside the image" in toasts[-1]
    (out,) = tab("ui_propagate_both")  # a run ends with a redraw (Stop off again), here of the same view
    assert "Nothing to track yet" in toasts[-1]
    assert out.view["progress"] is None and out.view["enabled"]["stop"] is False
    with pytest.raises(gr.Error, match="There are no masks to export"):  # a download is not a page redraw
        export(tab, "pngs")
    assert state_of(tab.ui.session) == kept
    shown = len(toasts)
    out = tab.event("ui_key", key="F5", ctrl=False, shift=False)
    assert out.view["messages"] == []  # a key without a command does nothing
    tab("ui_add_object")
    cx, cy = (round(c) for c in disc_centre(0))
    tab.click(cx, cy, negative=True, frame=0)  # a right click on frame 0
    kept = state_of(tab.ui.session)
    assert tab.event("ui_click", kind="click", x="abc", y=1, w=WIDTH, h=HEIGHT).empty  # not from the page
    assert len(toasts) == shown and state_of(tab.ui.session) == kept  # ignored, without a word
    ((x, y, positive),) = tab.ui.session.prompts(0)[1].points
    assert not positive and (x, y) == (cx, cy)


def test_the_example_picker_opens_the_generated_clip(app):
    tab = Tab(app, "handlers-5")
    out = tab.event("ui_click", kind="example", index=0)
    assert out.view["num_frames"] == 36 and out.view["fps"] == 12
    out = tab.event("ui_click", kind="example", index=1)
    assert out.view["is_image"]


def test_unloading_a_tab_closes_its_session(app, clip):
    tab = Tab(app, "handlers-6")
    tab("ui_open", str(clip))
    assert "handlers-6" in app.registry
    tab.handlers["close_session"](tab.request)
    assert "handlers-6" not in app.registry


def test_key_names_from_the_browser_parse_with_their_modifiers():
    assert parse_key("Ctrl+Shift+z") == ("z", True, True)
    assert parse_key("ArrowLeft") == ("ArrowLeft", False, False)
    assert parse_key("+") == ("+", False, False)


@pytest.mark.slow
def test_the_doubtful_buttons_jump_to_an_amber_frame_and_say_why(app, clip):
    tab = Tab(app, "handlers-doubtful")
    tab("ui_open", str(clip))
    tab.click(*disc_centre(0))
    tab("ui_propagate_forward")
    # Every tracked mask in doubt, for one reason: the object score says the model is unsure.
    tab.ui.session.doubt_rule = DoubtRule(min_iou=0, min_score=float("inf"), max_area_ratio=float("inf"))
    out = tab("ui_go_to", 0)
    assert out.view["enabled"]["next_doubtful"] and not out.view["enabled"]["prev_doubtful"]
    assert out.updates[app.layout.buttons["next_doubtful"]]["interactive"] is True
    out = tab("ui_next_doubtful")
    assert out.view["frame"] == 1 and out.view["objects"][0]["timeline"][1] == "D"
    assert strip_cell(out, 0, 1) == DOUBTFUL_CELL  # amber on the timeline
    assert "Frame 1 is doubtful (object 1: the model is unsure the object is there" in out.status
    tab("ui_go_to", 5)
    out = tab("ui_prev_doubtful")
    assert out.view["frame"] == 4 and strip_cell(out, 0, 4) == DOUBTFUL_CELL
    assert "Frame 4 is doubtful (" in out.status


def test_a_drag_on_the_frame_gives_the_selected_object_a_box_in_frame_pixels(app, clip):
    tab = Tab(app, "handlers-drag")
    tab("ui_open", str(clip))
    tab("ui_add_object")
    x0, y0, x1, y1 = block_box(0)
    # The page drew the frame at half its size: its display pixels are half the frame's.
    out = tab.drag(x0 / 2, y0 / 2, x1 / 2, y1 / 2, frame=0, size=(WIDTH // 2, HEIGHT // 2))
    assert np.allclose(tab.ui.session.prompts(0)[1].box, (x0, y0, x1, y1), atol=1)
    assert out.view["objects"][0]["timeline"][0] == "P" and out.view["pending_box"] is None
    tab("ui_add_object")
    tab("ui_set_tool", "box")  # the box tool's two clicks still give a box
    cx, cy = disc_centre(0)
    out = tab.click(cx - 11, cy - 11)
    assert out.view["pending_box"] is not None and 2 not in tab.ui.session.prompts(0)
    tab.click(cx + 11, cy + 11)
    assert np.allclose(tab.ui.session.prompts(0)[2].box, (cx - 11, cy - 11, cx + 11, cy + 11), atol=1)


def test_the_sliders_own_event_never_writes_the_slider_back_while_the_frame_buttons_do(app, clip):
    tab = Tab(app, "handlers-slider")
    tab("ui_open", str(clip))
    for frame in (3, 1):
        out = tab("ui_go_to", frame)
        assert out.view["frame"] == frame and out.image is not None and out.slider is None
    out = tab("ui_next_frame")
    assert out.view["frame"] == 2 and out.slider["value"] == 2


# ------------------------------------------------------------------------------------------------- registry
def registry(tmp_path, **kwargs) -> SessionRegistry:
    return SessionRegistry(lambda: Interaction(predictor()), root=tmp_path, **kwargs)


def test_the_registry_closes_the_least_recently_used_session_and_tells_its_user(tmp_path):
    reg = registry(tmp_path, max_sessions=2)
    a, _ = reg.get("a")
    reg.get("b")
    reg.get("a")  # a is now the most recent
    reg.get("c")
    assert "b" not in reg and "a" in reg and "c" in reg
    again, note = reg.get("b")
    assert "closed to make room for another user" in note
    assert reg.get("b")[1] is None  # told once
    reg.close_all()


def test_the_registry_never_closes_a_tracking_session_and_says_when_full(tmp_path, monkeypatch):
    reg = registry(tmp_path, max_sessions=1)
    ui, _ = reg.get("busy")
    monkeypatch.setattr(
        ui, "session", SimpleNamespace(is_propagating=True, cancel=lambda: None, close=lambda: None)
    )
    with pytest.raises(SessionError, match="The app is busy"):
        reg.get("newcomer")
    assert "busy" in reg


def test_idle_sessions_expire_after_the_time_to_live(tmp_path):
    reg = registry(tmp_path, ttl_s=0.05)
    reg.get("idle")
    time.sleep(0.1)
    assert reg.sweep() == 1 and "idle" not in reg
    assert "without use" in reg.get("idle")[1]
    reg.close_all()


# -------------------------------------------------------------------------------------------------- uploads
def test_a_long_video_is_cut_to_its_first_seconds_with_a_note(tmp_path):
    clip = write_clip(tmp_path / "long.mp4", num_frames=40)  # 4 s at 10 fps
    limits, notes = check_upload(clip, AppLimits(max_seconds=2))
    assert limits.max_frames == 20
    assert notes == [
        "long.mp4 lasts 4 s; this app works on its first 2 s (20 frames at 10 fps). "
        "Trim the video to segment a later part."
    ]
    ui = Interaction(predictor(), limits)
    assert ui.open(clip).num_frames == 20
    ui.close()


def test_upload_checks_refuse_what_the_app_cannot_use(tmp_path):
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * 2_000_000)
    with pytest.raises(SessionError, match="is 1.9 MB, over this app's limit of 1 MB"):
        check_upload(big, AppLimits(max_upload_mb=1))
    doc = tmp_path / "doc.docx"
    doc.write_bytes(b"PK")
    with pytest.raises(SessionError, match="not a video or image this app reads"):
        check_upload(doc, AppLimits())
    with pytest.raises(SessionError, match="could not be read"):
        check_upload(tmp_path / "gone.mp4", AppLimits())


def test_large_frames_are_downscaled_with_a_message(tmp_path):
    clip = write_clip(tmp_path / "wide.mp4", num_frames=2, height=256, width=384)
    limits, _ = check_upload(clip, AppLimits(max_side=192))
    ui = Interaction(predictor(), limits)
    view = ui.open(clip)
    assert ui.session.size == (192, 128)
    assert any("downscaled to 192x128" in m.text for m in view.messages)
    ui.close()


# -------------------------------------------------------------------------------------------- model loading
def test_missing_weights_offline_end_with_one_message_saying_how_to_get_them(hub_cache):
    with pytest.raises(ModelLoadError) as info:
        load_predictor("facebook/sam2.1-hiera-tiny", device="cpu")
    message = str(info.value)
    assert "--checkpoint" in message and "sam2.1_hiera_tiny.pt" in message


def test_a_missing_or_unnamed_checkpoint_file_says_what_to_pass(tmp_path):
    with pytest.raises(ModelLoadError, match="no checkpoint file at"):
        load_predictor(checkpoint=tmp_path / "nope.pt")
    odd = tmp_path / "weights.pt"
    odd.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="pass --config"):
        load_predictor(checkpoint=odd)


def test_the_app_loads_an_official_format_checkpoint(tmp_path):
    from model import build_sam2
    from tests.support.checkpoints import save_official_checkpoint

    path = save_official_checkpoint(
        build_sam2("sam2.1_hiera_tiny", None, device="cpu"), tmp_path / "sam2.1_hiera_tiny.pt"
    )
    loaded = load_predictor(checkpoint=path, device="cpu", image_size=256)
    assert loaded.image_size == 256
    args = parse_args(["--checkpoint", str(path), "--max-seconds", "5", "--port", "7999"])
    assert args.checkpoint == path and args.max_seconds == 5 and args.port == 7999 and args.host is None


@pytest.mark.slow
def test_the_page_and_every_view_say_which_precision_runs(app, monkeypatch, tmp_path, clip):
    from model.loading import precision as prec

    assert app.precision == "fp32" and "Runs in fp32 on CPU" in header(app)  # SAM2_UI_PRECISION
    monkeypatch.setattr(prec, "fast_bf16", lambda device: "AVX-512 BF16")
    bf16 = App(predictor(), TEST_LIMITS, work_root=tmp_path, model_label="tiny on cpu", precision="bf16")
    bf16.build()
    try:
        assert "tiny on cpu · Runs in bf16 autocast on CPU (AVX-512 BF16)" in header(bf16)
        tab = Tab(bf16, "handlers-bf16")
        out = tab("ui_open", str(clip))
        assert out.view["precision"] == "bf16 autocast on CPU (AVX-512 BF16)"
        assert tab.ui.session.precision == "bf16"
    finally:
        bf16.registry.close_all()


def test_precision_comes_from_the_command_line_and_bf16_where_slow_stops_with_a_message(monkeypatch):
    from model.loading import precision as prec

    assert parse_args([]).precision == "auto" and parse_args(["--precision", "bf16"]).precision == "bf16"
    with pytest.raises(SystemExit):
        parse_args(["--precision", "fp16"])
    monkeypatch.setattr(prec, "fast_bf16", lambda device: None)
    with pytest.raises(ModelLoadError, match="CPU has no fast bf16.*--precision"):
        choose_precision("bf16", predictor())
    monkeypatch.setenv(prec.PRECISION_ENV, "auto")
    assert choose_precision("auto", predictor()) == "fp32"
    monkeypatch.setattr(prec, "fast_bf16", lambda device: "AMX")
    assert choose_precision("auto", predictor()) == "bf16"


@pytest.mark.slow
def test_on_zero_gpu_handlers_run_here_and_only_model_calls_go_to_spaces_gpu(monkeypatch, tmp_path, clip):
    """A stand-in ``spaces`` package whose GPU forks a fresh worker per call, as ZeroGPU may: the tab's clicks
    and tracking must land in the session of the app's process, the durations must come from the calls."""
    import sys
    from types import ModuleType

    from sam2_ui.engine.forked_gpu import ForkedGPU
    from sam2_ui.engine.model_worker import serve

    decorated, durations, forked = [], [], ForkedGPU("fresh")

    def gpu(task=None, *, duration=60):
        def wrap(fn):
            decorated.append(fn)
            launch = forked(fn)

            def call(request):
                durations.append(duration(request))
                yield from launch(request)

            return call

        return wrap

    spaces = ModuleType("spaces")
    spaces.GPU = gpu
    monkeypatch.setitem(sys.modules, "spaces", spaces)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")  # what a ZeroGPU Space sets
    zero = App(predictor(), TEST_LIMITS, display_size=(WIDTH, HEIGHT), work_root=tmp_path)
    assert decorated == [serve]  # once, before the app serves: the one function workers run
    zero.build()
    tab = Tab(zero, "zero-gpu")
    tab("ui_open", str(clip))
    tab.click(*disc_centre(0))
    views = tab("ui_propagate_forward")
    tab("ui_go_to", 2)  # a redraw: no model call
    assert forked.forks == 2 and len(durations) == 2 and all(10 < d <= 120 for d in durations)
    assert tab.ui.session.tracked_frames() == list(range(6))  # what the workers computed reached the tab
    assert views[-1].view["objects"][0]["timeline"].replace("D", "M") == "PMMMMM"
    assert "forked GPU worker (ZeroGPU)" in header(zero)
    assert tab.ui.state_on_cpu and not tab.ui.session._executor.holds_state
    zero.registry.close_all()
    forked.shutdown()


def test_an_unexpected_error_in_a_handler_becomes_a_message_and_the_tab_keeps_working(
    app, clip, monkeypatch, toasts
):
    tab = Tab(app, "handlers-crash")
    tab("ui_open", str(clip))

    def crash(self, name=None):
        raise RuntimeError("disk on fire")

    with monkeypatch.context() as patch:
        patch.setattr(Interaction, "add_object", crash)
        assert tab("ui_add_object").empty
    assert toasts == [SOMETHING_WENT_WRONG]  # plain words: no exception class, no detail from the server
    assert tab("ui_add_object").view["objects"][0]["name"] == "object 1"
    assert tab.event("ui_object", kind="rename", id=1, name="ball").view["objects"][0]["name"] == "ball"


def test_a_click_lands_on_the_frame_that_was_shown(app, clip):
    tab = Tab(app, "handlers-shown")
    tab("ui_open", str(clip))
    tab("ui_go_to", 4)
    tab.ui.frame = 1  # the current frame moved (a tracking run) after the person saw frame 4 and clicked
    out = tab.click(*disc_centre(4), frame=4)
    assert out.view["frame"] == 4 and tab.ui.session.prompted_frames() == [4]


def test_a_tab_keeps_only_the_upload_its_session_reads(app, clip, tmp_path):
    tab = Tab(app, "handlers-uploads")
    tab("ui_open", str(clip))
    first = tab.ui.session.source_path
    other = write_clip(tmp_path / "other.mp4", num_frames=3)
    tab("ui_open", str(other))
    kept = list((app.registry.workdir("handlers-uploads") / "media").glob("*/*"))
    assert kept == [tab.ui.session.source_path] and not first.exists()
    assert str(tab.ui.session.source_path).startswith(str(app.registry.workdir("handlers-uploads")))


@pytest.mark.parametrize("case", ["random bytes", "truncated"])
def test_an_unreadable_video_upload_is_refused_in_plain_words(tmp_path, case):
    path = write_bad_media(tmp_path / "gradio" / "0123abcd", case)  # an upload lands in a hash folder
    with pytest.raises(SessionError) as error:
        check_upload(path, AppLimits())
    assert f"{path.name} is not a readable video" in str(error.value)
    assert_plain(str(error.value))


def test_the_status_line_says_where_the_user_is_and_only_what_just_happened(app, clip):
    tab = Tab(app, "status-line")
    opened = tab("ui_open", str(clip))
    assert "Frame 0 (frames 0–5)" in opened.status and "Opened" in opened.status
    added = tab("ui_add_object")
    assert "Frame 0 (frames 0–5)" in added.status and "Opened" not in added.status
    moved = tab("ui_next_frame")
    # The slider, the status line and the view all count frames from 0.
    assert moved.slider["value"] == moved.view["frame"] == 1 and "Frame 1 (frames 0–5)" in moved.status
    assert "Added" not in moved.status and "Opened" not in moved.status  # no note outlives its event
