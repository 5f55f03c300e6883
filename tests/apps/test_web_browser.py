"""The web app as a Space visitor meets it, in Chromium (Playwright driving Debian's Chromium).

Each test holds one point of the page a visitor sees at 1280 x 800: the first screen (the empty frame pane is
the drop zone with the examples, buttons that need media are off), the layout without scrolling, the slider
that stays where it is released (also with 150 ms of network latency), one progress display during a run and
never over the frame, a refused upload that leaves the session's outputs as they were, clicks that land on
the right frame pixel at display scales 2, 1 and 0.5, a box by dragging with a rubber band, playback that
any edit stops, the next doubtful frame, the memory view, and the key sheet. Screenshots go to
``$SAM2_UI_SCREENSHOTS`` (or the test's folder) to look at.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from apps.web.uploads import AppLimits
from sam2_ui.output.render import DisplayMapping, marker_radius
from tests.support.app_helpers import running_app, write_clip
from tests.support.browser import FRAME_GEOMETRY_JS
from tests.support.session_helpers import make_frames

pytestmark = [pytest.mark.browser, pytest.mark.server]

VIEWPORT = {"width": 1280, "height": 800}
LATENCY_MS = 150


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """(app, url) of one launched app for the module (each page is its own tab and session)."""
    with running_app(tmp_path_factory.mktemp("web")) as launched:
        yield launched


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", num_frames=8, height=180, width=320)


def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SAM2_UI_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_page(browser, url: str, latency_ms: int = 0, viewport=VIEWPORT):
    page = browser.new_page(viewport=viewport)
    if latency_ms:
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": latency_ms, "downloadThroughput": -1, "uploadThroughput": -1},
        )
    page.goto(url)
    expect(page.locator("#sam2-frame .sam2-drop")).to_be_visible(timeout=30_000)
    return page


def upload(page, path: Path, frames: int) -> None:
    page.set_input_files("#sam2-upload input[type=file]", str(path))
    expect(page.locator("#sam2-status")).to_contain_text(f"(frames 0–{frames - 1})", timeout=60_000)
    expect(page.locator("#sam2-frame img.sam2-image")).to_be_visible()


def open_clip(page, clip: Path, folder: Path, name: str) -> Path:
    """Upload the module's clip under ``name`` (each test's session is then found by its file name)."""
    named = folder / name
    shutil.copy(clip, named)
    upload(page, named, 8)
    return named


def shown_frame(page) -> int:
    return int(page.locator("#sam2-frame .sam2-stage").get_attribute("data-frame"))


def image_geometry(page) -> dict:
    """Where the frame's pixels are on the page (see `FRAME_GEOMETRY_JS`)."""
    return page.evaluate(FRAME_GEOMETRY_JS)


def page_point(geometry: dict, frame_size: tuple[int, int], x: float, y: float) -> tuple[float, float]:
    """The page position of frame pixel (x, y)'s centre."""
    fx = geometry["w"] / frame_size[0]
    fy = geometry["h"] / frame_size[1]
    return (
        geometry["left"] + (x + 0.5) * fx * geometry["scale"],
        geometry["top"] + (y + 0.5) * fy * geometry["scale"],
    )


def session_of(app, name: str):
    """The interaction of the tab that opened the file called ``name`` (each test opens its own)."""
    for entry in list(app.registry._entries.values()):
        session = entry.interaction.session
        if session is not None and session.source_path is not None and session.source_path.name == name:
            return entry.interaction
    raise AssertionError(f"no session has {name} open")


def wait_until(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def click_frame(page, app, frame_size, x, y, **kwargs) -> None:
    before = page.locator("#sam2-frame .sam2-stage").get_attribute("data-version")
    page.mouse.click(*page_point(image_geometry(page), frame_size, x, y), **kwargs)
    page.wait_for_function(
        "v => document.querySelector('#sam2-frame .sam2-stage').dataset.version !== v",
        arg=before,
        timeout=60_000,
    )


def in_view(page, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    return (
        box is not None
        and box["width"] > 0
        and box["height"] > 0
        and box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= VIEWPORT["width"]
        and box["y"] + box["height"] <= VIEWPORT["height"]
    )


# ============================================================================================== tests
def test_first_screen_is_a_drop_zone_with_examples_and_media_buttons_off(browser, web, tmp_path):
    app, url = web
    page = open_page(browser, url)
    drop = page.locator("#sam2-frame .sam2-drop")
    expect(drop).to_contain_text("Drop a video or an image here")
    thumbnails = page.locator("#sam2-frame .sam2-example img")
    assert thumbnails.count() == len(app.examples) == 2
    assert all(thumbnails.nth(i).evaluate("i => i.naturalWidth > 0") for i in range(2))
    for command in ("propagate_both", "propagate_forward", "propagate_backward", "stop", "undo", "redo",
                    "add_object", "clear_frame", "reset", "next_frame"):  # fmt: skip
        expect(page.locator(f"#cmd-{command}")).to_be_disabled()
    page.screenshot(path=str(shots(tmp_path) / "web_first_screen.png"))
    page.get_by_role("button", name="Download").click()  # a folded panel: shown on demand
    for kind in ("pngs", "davis", "coco", "video", "session"):
        expect(page.locator(f"#dl-{kind}")).to_be_disabled()
    expect(page.locator("#cmd-play")).to_be_disabled()

    # An example opens from its thumbnail.
    thumbnails.first.click()
    expect(page.locator("#sam2-status")).to_contain_text("(frames 0–35)", timeout=60_000)
    expect(page.locator("#cmd-next_frame")).to_be_enabled()
    page.close()


def test_a_file_dropped_on_the_empty_frame_pane_opens(browser, web, clip, tmp_path):
    app, url = web
    page = open_page(browser, url)
    named = tmp_path / "dropped.mp4"
    shutil.copy(clip, named)
    page.evaluate(
        """async ([name, data]) => {
          const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
          const files = new DataTransfer();
          files.items.add(new File([bytes], name, { type: 'video/mp4' }));
          const stage = document.querySelector('#sam2-frame .sam2-stage');
          for (const type of ['dragenter', 'dragover', 'drop']) {
            const init = { dataTransfer: files, bubbles: true, cancelable: true };
            stage.dispatchEvent(new DragEvent(type, init));
          }
        }""",
        [named.name, base64.b64encode(named.read_bytes()).decode()],
    )
    expect(page.locator("#sam2-status")).to_contain_text("(frames 0–7)", timeout=60_000)
    expect(page.locator("#sam2-frame img.sam2-image")).to_be_visible()
    assert session_of(app, named.name).session.num_frames == 8
    page.close()


def test_the_object_panel_selects_renames_in_place_and_removes(browser, web, clip, tmp_path):
    app, url = web
    page = open_page(browser, url)
    named = open_clip(page, clip, tmp_path, "panel.mp4")
    click_frame(page, app, (320, 180), 60, 50)
    page.locator("#cmd-add_object").click()
    rows = page.locator("#sam2-objects .sam2-object")
    expect(rows).to_have_count(2)
    ui = session_of(app, named.name)
    wait_until(lambda: ui.session.selected == 2)
    rows.nth(0).locator(".sam2-object-name").click()  # select
    wait_until(lambda: ui.session.selected == 1)
    expect(rows.nth(0)).to_have_class(re.compile("sam2-selected"))
    rows.nth(0).locator(".sam2-object-name").dblclick()  # rename in place
    name_box = page.locator("#sam2-objects .sam2-name-input")
    expect(name_box).to_be_visible()
    name_box.fill("ball")
    name_box.press("Enter")
    expect(rows.nth(0)).to_contain_text("1. ball")
    expect(page.locator("#sam2-timeline .sam2-track-name").first).to_have_text("ball")  # its row's label
    assert ui.session.object(1).name == "ball"
    rows.nth(1).locator(".sam2-remove").click()
    expect(rows).to_have_count(1)
    assert [o.id for o in ui.session.objects] == [1]
    page.close()


def test_at_1280x800_the_frame_controls_status_and_objects_are_in_view(browser, web, clip, tmp_path):
    app, url = web
    page = open_page(browser, url)
    open_clip(page, clip, tmp_path, "layout.mp4")
    click_frame(page, app, (320, 180), 60, 50)
    expect(page.locator("#sam2-objects")).to_contain_text("1. object 1")
    for selector in ("#sam2-frame img.sam2-image", "#sam2-slider", "#cmd-propagate_forward",
                     "#cmd-propagate_backward", "#cmd-propagate_both", "#cmd-stop", "#sam2-status",
                     "#sam2-objects .sam2-object", "#sam2-timeline .sam2-track"):  # fmt: skip
        assert in_view(page, selector), selector
    assert page.evaluate("() => window.scrollY") == 0
    # The timeline row carries the object's name.
    expect(page.locator("#sam2-timeline .sam2-track-name")).to_have_text("object 1")
    page.screenshot(path=str(shots(tmp_path) / "web_after_click.png"))
    page.close()


@pytest.mark.parametrize(
    ("latency_ms", "steps", "pause_s"), [(0, 20, 0.05), (LATENCY_MS, 20, 0.05), (0, 3, 0.0)]
)
def test_the_slider_stays_on_the_frame_released(browser, web, clip, tmp_path, latency_ms, steps, pause_s):
    # A drag from frame 0 to the last over about a second (with and without network latency), and a flick.
    app, url = web
    page = open_page(browser, url, latency_ms=latency_ms)
    named = open_clip(page, clip, tmp_path, f"slider{latency_ms}_{steps}.mp4")
    track = page.locator("#sam2-slider input[type=range]")
    box = track.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 2, y)
    page.mouse.down()
    for i in range(1, steps + 1):
        page.mouse.move(box["x"] + 2 + (box["width"] + 10) * i / steps, y)
        time.sleep(pause_s)
    page.mouse.up()
    deadline = time.monotonic() + 3 + latency_ms / 100  # every reply to the drag has arrived by then
    while time.monotonic() < deadline:
        assert track.input_value() == "7", "the thumb moved away from where it was released"
        time.sleep(0.1)
    wait_until(lambda: shown_frame(page) == 7, 10)
    time.sleep(1.0)
    assert track.input_value() == "7" and shown_frame(page) == 7
    assert session_of(app, named.name).frame == 7
    page.close()


def test_tracking_shows_one_progress_display_never_over_the_frame(browser, web, tmp_path):
    app, url = web
    page = open_page(browser, url)
    long_clip = write_clip(tmp_path / "progress.mp4", num_frames=40, height=90, width=160)
    upload(page, long_clip, 40)
    click_frame(page, app, (160, 90), 30, 25)
    page.locator("#cmd-propagate_forward").click()
    expect(page.locator("#sam2-status .sam2-progress")).to_be_visible(timeout=30_000)
    frame_box = page.locator("#sam2-frame").bounding_box()
    counts = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and page.locator("#cmd-stop").is_enabled() and len(counts) < 20:
        counts.append(
            page.evaluate(
                """(frame) => {
                  const shown = (el) => el.offsetParent !== null || el.getClientRects().length > 0;
                  const ours = [...document.querySelectorAll('.sam2-progress')].filter(shown);
                  // Gradio's own indicators: progress bars, timers and spinners on components.
                  const theirs = [...document.querySelectorAll(
                    '.progress-bar, .eta-bar, .progress-text, .meta-text, .meta-text-center, .progress-level'
                  )].filter(shown);
                  const over = [...ours, ...theirs].filter((el) => {
                    const r = el.getBoundingClientRect();
                    return r.bottom > frame.y && r.top < frame.y + frame.height &&
                           r.right > frame.x && r.left < frame.x + frame.width;
                  });
                  return [ours.length, theirs.length, over.length];
                }""",
                frame_box,
            )
        )
        if len(counts) == 5:
            page.screenshot(path=str(shots(tmp_path) / "web_during_tracking.png"))
        time.sleep(0.1)
    assert len(counts) >= 5, "the run ended before the page could be looked at"
    assert all(c == [1, 0, 0] for c in counts), counts
    if page.locator("#cmd-stop").is_enabled():
        page.keyboard.press("Escape")
    expect(page.locator("#sam2-status .sam2-progress")).to_be_hidden(timeout=60_000)  # the run is over
    page.close()


def test_a_refused_upload_leaves_every_output_of_the_open_session_as_it_was(browser, web, clip, tmp_path):
    app, url = web
    page = open_page(browser, url)
    named = open_clip(page, clip, tmp_path, "kept.mp4")
    click_frame(page, app, (320, 180), 60, 50)
    page.locator("#sam2-slider input[type=range]").focus()

    def outputs() -> dict:
        return {
            "frame": page.locator("#sam2-frame img.sam2-image").get_attribute("src"),
            "slider": page.locator("#sam2-slider input[type=range]").input_value(),
            "objects": page.locator("#sam2-objects").inner_text(),
            "timeline": page.locator("#sam2-timeline").inner_html(),
            "status": page.locator("#sam2-status").inner_text(),
            "track": page.locator("#cmd-propagate_both").is_enabled(),
        }

    before = outputs()
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video at all\n" * 50)
    page.set_input_files("#sam2-upload input[type=file]", str(bad))
    toast = page.get_by_text("bad.mp4 is not a readable video").first
    expect(toast).to_be_visible(timeout=30_000)
    time.sleep(0.5)  # the toast slides in
    page.screenshot(path=str(shots(tmp_path) / "web_refused_upload.png"))
    time.sleep(1.0)
    assert outputs() == before
    assert "Error" not in page.locator(".gradio-container").inner_text()
    expect(page.locator("#sam2-upload")).not_to_contain_text("bad.mp4")  # the box is ready for the next file
    assert session_of(app, named.name).session.num_frames == 8

    # A text file is not dropped without a word either.
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    page.set_input_files("#sam2-upload input[type=file]", str(notes))
    expect(page.get_by_text("notes.txt is not a video or image").first).to_be_visible(timeout=30_000)
    assert outputs() == before
    page.close()


@pytest.mark.parametrize("scale", [2.0, 1.0, 0.5])
def test_a_click_lands_on_the_frame_pixel_under_it_at_every_display_scale(tmp_path, browser, scale):
    # The stage is 100vh - 420 px high: at 870 px it is 450 px, so these frames show at exactly `scale`.
    viewport = {"width": 1280, "height": 870}
    width, height = round(800 / scale), round(450 / scale)
    frame = make_frames(1, height, width)[0]
    path = tmp_path / f"scale{scale:g}.png"
    Image.fromarray(frame).save(path)
    limits = AppLimits(max_upload_mb=20, max_side=2000, max_sessions=4)
    with running_app(tmp_path / "app", limits=limits) as (app, url):
        page = open_page(browser, url, viewport=viewport)
        page.set_input_files("#sam2-upload input[type=file]", str(path))
        expect(page.locator("#sam2-status")).to_contain_text("Click on an object", timeout=60_000)
        geometry = image_geometry(page)
        shown = geometry["scale"] * geometry["w"] / width  # page pixels per frame pixel
        assert shown == pytest.approx(scale, rel=0.03)
        ui = session_of(app, path.name)
        targets = [(0.31 * width, 0.42 * height), (0.77 * width, 0.18 * height)]
        for i, (x, y) in enumerate(targets):
            x, y = round(x), round(y)
            click_frame(page, app, (width, height), x, y)
            wait_until(
                lambda i=i: (
                    len(ui.session.prompts(0).get(1, None).points) == i + 1
                    if ui.session.prompts(0)
                    else False
                )
            )
            px, py, _ = ui.session.prompts(0)[1].points[i]
            assert abs(px - x) <= 1 and abs(py - y) <= 1, (scale, (x, y), (px, py))
        # A click on a marker removes its point, at every scale.
        x, y = (round(c) for c in targets[0])
        click_frame(page, app, (width, height), x, y)
        wait_until(lambda: len(ui.session.prompts(0)[1].points) == 1)
        ((left_x, left_y, _),) = ui.session.prompts(0)[1].points  # the other point is the one left
        assert abs(left_x - round(targets[1][0])) <= 1 and abs(left_y - round(targets[1][1])) <= 1
        # Markers are drawn at least 8 page pixels in radius at this scale.
        mapping = DisplayMapping.fit((width, height), app.display_size)
        radius = marker_radius(mapping) * geometry["scale"]
        assert radius >= 8, radius
        page.close()


def test_a_box_by_dragging_with_a_rubber_band_and_the_two_click_box(browser, web, clip, tmp_path):
    app, url = web
    page = open_page(browser, url)
    named = open_clip(page, clip, tmp_path, "drag.mp4")
    geometry = image_geometry(page)
    start = page_point(geometry, (320, 180), 40, 30)
    end = page_point(geometry, (320, 180), 150, 120)
    page.mouse.move(*start)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(start[0] + (end[0] - start[0]) * i / 10, start[1] + (end[1] - start[1]) * i / 10)
    band = page.locator("#sam2-frame .sam2-band")
    expect(band).to_be_visible()
    band_box = band.bounding_box()
    assert (
        abs(band_box["width"] - (end[0] - start[0])) <= 3
        and abs(band_box["height"] - (end[1] - start[1])) <= 3
    )
    before = page.locator("#sam2-frame .sam2-stage").get_attribute("data-version")
    page.mouse.up()
    expect(band).to_be_hidden()
    page.wait_for_function(
        "v => document.querySelector('#sam2-frame .sam2-stage').dataset.version !== v", arg=before
    )
    ui = session_of(app, named.name)
    ((obj, prompt),) = ui.session.prompts(0).items()
    assert np.allclose(prompt.box, (40, 30, 150, 120), atol=1), prompt.box

    # The two-click box of the box tool still works (on another frame).
    page.keyboard.press("ArrowRight")
    wait_until(lambda: shown_frame(page) == 1)
    page.locator("#sam2-tool").get_by_text("□ box").click()
    click_frame(page, app, (320, 180), 200, 40)
    click_frame(page, app, (320, 180), 300, 150)
    wait_until(lambda: bool(ui.session.prompts(1)))
    assert np.allclose(ui.session.prompts(1)[obj].box, (200, 40, 300, 150), atol=1)
    page.close()


def track_all(page, app, name: str, clicks=((60, 50),)) -> None:
    """Click the object on frame 0 and track it forward to the end, in the page."""
    for x, y in clicks:
        click_frame(page, app, (320, 180), x, y)
    page.locator("#cmd-propagate_forward").click()
    expect(page.locator("#sam2-status")).to_contain_text("Tracked forward", timeout=120_000)


def test_playback_plays_the_result_at_the_clips_rate_and_any_edit_stops_it(browser, web, tmp_path):
    app, url = web
    page = open_page(browser, url)
    clip = write_clip(tmp_path / "play.mp4", num_frames=16, height=180, width=320)  # 10 fps
    upload(page, clip, 16)
    track_all(page, app, clip.name)
    page.locator("#sam2-frame .sam2-stage").evaluate("() => {}")
    page.keyboard.press("Home")
    wait_until(lambda: shown_frame(page) == 0)
    seen: list[tuple[float, int]] = []
    page.locator("#cmd-play").click()
    expect(page.locator("#cmd-play")).to_have_text("⏸ Pause")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and shown_frame(page) < 15:
        seen.append((time.monotonic(), shown_frame(page)))
        time.sleep(0.02)
    frames = [f for _, f in seen]
    assert frames == sorted(frames) and shown_frame(page) == 15  # in order, to the end
    assert len(set(frames)) >= 8  # frame after frame, not a jump
    elapsed = seen[-1][0] - next(t for t, f in seen if f >= 1)
    assert elapsed >= 0.9 * (frames[-1] - 1) / 10  # never faster than the clip's 10 fps
    expect(page.locator("#cmd-play")).to_have_text("▶ Play", timeout=10_000)  # stops at the end

    # Playing again starts from the first frame; a click on the frame (an edit) stops it.
    page.locator("#cmd-play").click()
    wait_until(lambda: 2 <= shown_frame(page) < 12, 20)
    ui = session_of(app, clip.name)
    page.mouse.click(*page_point(image_geometry(page), (320, 180), 250, 150))
    expect(page.locator("#cmd-play")).to_have_text("▶ Play")
    wait_until(lambda: len(ui.session.prompted_frames()) == 2)  # the click's own answer has come
    clicked = [f for f in ui.session.prompted_frames() if f != 0][0]  # the frame shown when clicked
    time.sleep(1.0)
    stopped = shown_frame(page)
    time.sleep(1.0)
    assert shown_frame(page) == stopped == ui.frame == clicked
    page.close()


def test_next_doubtful_frame_jumps_to_an_amber_frame_and_says_why(browser, web, clip, tmp_path):
    app, url = web
    page = open_page(browser, url)
    named = open_clip(page, clip, tmp_path, "doubt.mp4")
    track_all(page, app, named.name)
    ui = session_of(app, named.name)
    doubtful = ui.session.doubtful_frames()
    assert doubtful, "random weights leave doubtful masks; the test needs one"
    page.keyboard.press("Home")
    wait_until(lambda: shown_frame(page) == 0)
    page.locator("#cmd-next_doubtful").click()
    wait_until(lambda: shown_frame(page) == doubtful[0])
    expect(page.locator("#sam2-status")).to_contain_text(f"Frame {doubtful[0]} is doubtful")
    page.screenshot(path=str(shots(tmp_path) / "web_doubtful_frame.png"))
    page.keyboard.press("]")  # the key does the same
    if len(doubtful) > 1:
        wait_until(lambda: shown_frame(page) == doubtful[1])
    page.close()


def test_the_memory_view_panel_shows_the_selected_objects_memory(browser, web, clip, tmp_path):
    app, url = web
    page = open_page(browser, url)
    named = open_clip(page, clip, tmp_path, "memory.mp4")
    track_all(page, app, named.name)
    page.get_by_role("button", name="Memory view").click()
    strip = page.locator("#sam2-memory img")
    expect(strip).to_be_visible(timeout=30_000)
    ui = session_of(app, named.name)
    expected = ui.session.memory_view(ui.frame, ui.session.selected).describe()
    expect(page.locator("#sam2-memory")).to_contain_text(expected[:60])
    assert strip.evaluate("i => i.naturalWidth") > 100
    # It follows the frame shown.
    page.keyboard.press("Home")
    wait_until(lambda: shown_frame(page) == 0)
    expect(page.locator("#sam2-memory")).to_contain_text("on frame 0")
    page.get_by_role("button", name="Memory view").scroll_into_view_if_needed()
    page.screenshot(path=str(shots(tmp_path) / "web_memory_view.png"))
    page.close()


def test_question_mark_shows_the_key_sheet(browser, web, clip, tmp_path):
    app, url = web
    page = open_page(browser, url)
    sheet = page.locator("#sam2-keys")
    expect(sheet).to_be_hidden()
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("?")
    expect(sheet).to_be_visible()
    expect(sheet).to_contain_text("next doubtful frame")
    page.keyboard.press("Escape")
    expect(sheet).to_be_hidden()
    page.close()
