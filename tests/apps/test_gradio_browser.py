"""The web app in a real browser: Playwright driving Debian's Chromium against the launched app.

Upload a clip, click on the frame and see the overlay appear under the click, add an object with the
keyboard, track, and download the COCO JSON. Chromium must be installed (``.ci/run`` installs it with
apt-get); a missing browser fails the test.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import expect

from sam2_ui import Session
from tests.support.app_helpers import running_app, write_clip
from tests.support.session_helpers import disc_centre

pytestmark = [pytest.mark.browser, pytest.mark.server]

SCALE = 2  # the clip is 192 x 128: session_helpers' shapes at twice the size

PIXEL_JS = """
async ([src, x, y]) => {
  const image = new Image();
  image.src = src;
  await image.decode();
  const canvas = document.createElement('canvas');
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext('2d');
  context.drawImage(image, 0, 0);
  return Array.from(context.getImageData(x, y, 1, 1).data.slice(0, 3));
}
"""


def test_upload_click_track_and_download_in_chromium(browser, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", num_frames=6, height=64 * SCALE, width=96 * SCALE)
    with running_app(tmp_path / "app") as (app, url):
        page = browser.new_page(viewport={"width": 1500, "height": 1100}, accept_downloads=True)
        page.goto(url)
        page.set_input_files("#sam2-upload input[type=file]", str(clip))
        frame = page.locator("#sam2-frame img.sam2-image")
        expect(frame).to_be_visible(timeout=60_000)
        expect(page.locator("#sam2-status")).to_contain_text("Frame 0 (frames 0–5)", timeout=30_000)

        # Click on the disc, where the image shows it: the frame pane shows the image scaled to fill its box,
        # centred (CSS object-fit: contain), and maps clicks back the same way.
        before = frame.get_attribute("src")
        natural = frame.evaluate("el => [el.naturalWidth, el.naturalHeight]")
        assert natural == [96 * SCALE, 64 * SCALE]
        box = frame.bounding_box()
        scale = min(box["width"] / natural[0], box["height"] / natural[1])
        left = (box["width"] - natural[0] * scale) / 2
        top = (box["height"] - natural[1] * scale) / 2
        cx, cy = (round(c * SCALE) for c in disc_centre(0))
        pixel_before = page.evaluate(PIXEL_JS, [before, cx, cy])
        frame.click(position={"x": left + (cx + 0.5) * scale, "y": top + (cy + 0.5) * scale})
        page.wait_for_function(
            "old => { const img = document.querySelector('#sam2-frame img'); "
            "return img && img.src !== old; }",
            arg=before,
            timeout=60_000,
        )
        after = frame.get_attribute("src")
        pixel_after = page.evaluate(PIXEL_JS, [after, cx, cy])
        assert max(abs(a - b) for a, b in zip(pixel_before, pixel_after)) > 40, (pixel_before, pixel_after)

        # The server session got exactly that click, in frame pixels.
        (interaction,) = [e.interaction for e in app.registry._entries.values()]
        ((x, y, positive),) = interaction.session.prompts(0)[1].points
        assert positive and abs(x - cx) <= 1 and abs(y - cy) <= 1

        # A right click is a negative point, mapped the same way.
        nx, ny = 30 * SCALE, 8 * SCALE
        frame.click(button="right", position={"x": left + (nx + 0.5) * scale, "y": top + (ny + 0.5) * scale})
        expect(page.locator("#sam2-status")).to_contain_text("Frame 0 (frames 0–5)", timeout=30_000)
        deadline = time.monotonic() + 30
        while len(interaction.session.prompts(0)[1].points) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        (_, (x, y, positive)) = interaction.session.prompts(0)[1].points
        assert not positive and abs(x - nx) <= 1 and abs(y - ny) <= 1

        # The keyboard map: "a" adds an object.
        page.locator("body").click(position={"x": 5, "y": 5})
        page.keyboard.press("a")
        expect(page.locator("#sam2-objects")).to_contain_text("2. object 2", timeout=30_000)

        # Track both ways, then download the COCO JSON.
        page.locator("#cmd-propagate_both").click()
        expect(page.locator("#sam2-status")).to_contain_text(re.compile("Tracked both"), timeout=120_000)
        page.get_by_role("button", name="Download").click()  # a folded panel
        page.locator("#dl-coco").click()
        link = page.locator("#sam2-download a").first
        expect(link).to_be_visible(timeout=30_000)
        with page.expect_download() as download_info:
            link.click()
        path = download_info.value.path()
        document = json.loads(open(path).read())
        session: Session = interaction.session
        expected = sum(1 for f in range(session.num_frames) for m in session.masks(f).values() if m.any())
        assert len(document["annotations"]) == expected > 0
        page.close()


def test_a_bad_upload_shows_a_message_and_the_tab_keeps_working_in_chromium(browser, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4")
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video at all\n" * 50)
    with running_app(tmp_path / "app") as (app, url):
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(url)
        frame = page.locator("#sam2-frame img.sam2-image")
        page.set_input_files("#sam2-upload input[type=file]", str(notes))
        expect(page.get_by_text(re.compile("is not a readable video")).first).to_be_visible(timeout=30_000)
        page.set_input_files("#sam2-upload input[type=file]", str(clip))
        expect(page.locator("#sam2-status")).to_contain_text("Frame 0 (frames 0–5)", timeout=30_000)
        expect(frame).to_be_visible()
        page.close()


def test_keys_track_with_streamed_previews_and_escape_stops_in_chromium(browser, tmp_path):
    clip = write_clip(tmp_path / "long.mp4", num_frames=60)
    with running_app(tmp_path / "app") as (app, url):
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(url)
        page.set_input_files("#sam2-upload input[type=file]", str(clip))
        expect(page.locator("#sam2-status")).to_contain_text("Frame 0 (frames 0–59)", timeout=30_000)
        frame = page.locator("#sam2-frame img.sam2-image")
        box = frame.bounding_box()
        frame.click(position={"x": box["width"] / 2, "y": box["height"] / 2})
        expect(page.locator("#sam2-objects")).to_contain_text("1. object 1", timeout=30_000)
        page.locator("body").click(position={"x": 5, "y": 5})
        page.keyboard.press("f")  # the key map: track forward (through the button: streamed, cancellable)
        status = page.locator("#sam2-status")
        expect(status).to_contain_text("Tracking forward", timeout=30_000)
        previews = {frame.get_attribute("src")}
        deadline = time.monotonic() + 30
        while len(previews) < 3 and time.monotonic() < deadline:  # frames stream in while tracking runs
            previews.add(frame.get_attribute("src"))
            time.sleep(0.05)
        assert len(previews) >= 3
        page.keyboard.press("Escape")  # the key map: stop
        expect(status).to_contain_text("Stopped forward", timeout=30_000)
        (entry,) = app.registry._entries.values()
        summary = entry.interaction.session.last_propagation
        assert summary.cancelled and summary.done < 60
        expect(page.locator("#cmd-propagate_forward")).to_be_enabled()
        page.close()
