"""A click as a user of the web app sees it: from the mouse click on the frame to the changed frame drawn.

    python -m benchmarks.web_click [--image-size 1024] [--clicks 20] [--threads 2] [--latency-ms 0]

Launches the real web app (`apps.web.App` + `apps.web.launch`, fp32, on 127.0.0.1) with SAM 2.1 tiny at
``--image-size`` (random weights, the object score bias raised so masks appear) and drives it from Debian's
Chromium through Playwright at 1280 x 800. A 640x360 clip is opened, one click embeds frame 0 (not timed),
then ``--clicks`` clicks at distinct spots of that frame alternate positive points on the ball and on the
background, each well away from earlier markers (a click on a marker would remove it). Per click:

- in-page, drawn: ``performance.now()`` at the pointerup to the page's ``sam2-frame-drawn`` event with the
  new frame version (the frame script has set the new image);
- in-page, painted: the same start to the first animation frame after the new image is decoded;
- wall: Python's clock from just before ``page.mouse.click`` to the stage's ``data-version`` changing;
- server, in the browser run: the app's click handler (``ui_click``, event in, drawn page out) as the
  launched app ran it for those clicks (Chromium busy beside it);
- server only: the same handler called directly afterwards, on its own tab with the same clip and the
  same clicks, nothing else of this benchmark running; the rest of a click is queue, transport and browser.

``--latency-ms`` adds that much latency to every request of the page (CDP network emulation). Not a test:
the numbers depend on the machine and on whatever else runs on it (the load average is printed).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import socket
import tempfile
import time
import typing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from tests.support.browser import CHROMIUM_ARGS, FRAME_GEOMETRY_JS

CLIP_SIZE = (640, 360)  # width, height
CLIP_FRAMES = 8
VIEWPORT = {"width": 1280, "height": 800}
MARKER_GAP_PX = 22  # page pixels between clicks: more than the 20 that keeps a click off an earlier marker
PAUSE_S = 0.2  # between clicks, as a person would (and so no click waits on the page's follow-ups)
TIMEOUT_MS = 300_000

# Timestamps in the page: the pointerup that sends the click, then the draw and the paint of the new frame.
PROBE_JS = """() => {
  const stage = () => document.querySelector('#sam2-frame .sam2-stage');
  const probe = window.sam2Bench = {up: null, drawn: null, painted: null, version: null};
  window.addEventListener('pointerup', () => {
    const version = stage().dataset.version;
    Object.assign(probe, {up: performance.now(), drawn: null, painted: null, version});
  }, true);
  window.addEventListener('sam2-frame-drawn', (event) => {
    if (probe.up === null || probe.drawn !== null) return;
    if (String((event.detail && event.detail.version) || 0) === probe.version) return;
    probe.drawn = performance.now();
    const image = document.querySelector('#sam2-frame img.sam2-image');
    const painted = () => { probe.painted = performance.now(); };
    image.decode().catch(() => {}).then(() => requestAnimationFrame(painted));
  });
}"""


def build_predictor(image_size: int):
    from model import build_sam2_video_predictor

    torch.manual_seed(0)
    predictor = build_sam2_video_predictor("sam2.1_hiera_tiny", None, device="cpu", image_size=image_size)
    with torch.no_grad():  # random weights score objects near zero: raise the bias so masks appear
        predictor.model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias += 5.0
    return predictor


def write_clip(folder: Path) -> Path:
    from apps.examples import shapes_clip_frames
    from sam2_ui.output.export import export_overlay_video

    return export_overlay_video(iter(shapes_clip_frames(CLIP_FRAMES, CLIP_SIZE)), folder / "clip.mp4", 12)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def click_spots(geometry: dict, clicks: int) -> list[tuple[float, float]]:
    """Page positions of the embedding click then ``clicks`` clicks alternating ball and background, every
    two at least MARKER_GAP_PX apart. On frame 0 of `shapes_clip_frames` the ball is a disc at (40, 0.35 h)
    of radius 0.12 h and the box is 48 x 40 at (w - 70, 0.6 h) (frame pixels)."""
    width, height = CLIP_SIZE
    k = geometry["scale"] * geometry["w"] / width  # page pixels per frame pixel
    left, top = geometry["left"], geometry["top"]
    right, bottom = left + width * k, top + height * k
    cx, cy, radius = left + 40 * k, top + 0.35 * height * k, 0.12 * height * k
    box = (
        left + (width - 70) * k,
        top + 0.6 * height * k,
        left + (width - 22) * k,
        top + (0.6 * height + 40) * k,
    )

    def grid(gap: float) -> np.ndarray:  # a hexagonal grid over the frame, through the ball's centre
        rows = np.arange(-height * k, height * k, gap * np.sqrt(3) / 2)
        columns = np.arange(-width * k, width * k, gap)
        return np.asarray([(cx + (i % 2) * gap / 2 + x, cy + y) for i, y in enumerate(rows) for x in columns])

    def inside(p: np.ndarray, margin: float) -> np.ndarray:
        x, y = p[:, 0], p[:, 1]
        return (x > left + margin) & (x < right - margin) & (y > top + margin) & (y < bottom - margin)

    points = grid(MARKER_GAP_PX)
    from_centre = np.hypot(points[:, 0] - cx, points[:, 1] - cy)
    ball = points[(from_centre < radius - 4) & inside(points, 3)]
    ball = ball[np.argsort(np.hypot(ball[:, 0] - cx, ball[:, 1] - cy), kind="stable")]
    points = grid(2 * MARKER_GAP_PX)
    x, y = points[:, 0], points[:, 1]
    off_box = (x < box[0] - 12) | (x > box[2] + 12) | (y < box[1] - 12) | (y > box[3] + 12)
    background = points[(np.hypot(x - cx, y - cy) > radius + 12) & off_box & inside(points, 10)]
    background = background[np.random.default_rng(0).permutation(len(background))]  # spread over the frame
    need_ball, need_background = 1 + (clicks + 1) // 2, clicks // 2
    if len(ball) < need_ball or len(background) < need_background:
        raise SystemExit(
            f"{len(ball) - 1} ball and {len(background)} background spots fit: ask fewer --clicks"
        )
    spots = [tuple(ball[0])]
    for i in range(clicks):
        spots.append(tuple(ball[1 + i // 2]) if i % 2 == 0 else tuple(background[i // 2]))
    return spots


def to_display(geometry: dict, spot: tuple[float, float]) -> tuple[float, float]:
    """The rendered image's pixel index under a page position, as the frame script sends it."""
    x, y = spot
    return (x - geometry["left"]) / geometry["scale"] - 0.5, (y - geometry["top"]) / geometry["scale"] - 0.5


def time_handler(app, api_name: str, times: list[float]) -> None:
    """Append the ms of each call of the launched app's ``api_name`` handler to ``times`` (the wrapper keeps
    the handler's signature and resolved hints, which Gradio reads to pass the event and the request)."""
    block_fn = next(f for f in app.demo.fns.values() if f.api_name == api_name)
    fn = block_fn.fn

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            times.append(1000 * (time.perf_counter() - began))

    timed.__annotations__ = typing.get_type_hints(fn)
    block_fn.fn = timed


def points_on_frame0(app, session_hash: str | None) -> int | None:
    """Points the tab has on frame 0 (None: no such tab): each click must add one, none remove one."""
    ui = app.registry.peek(session_hash) if session_hash else None
    if ui is None or ui.session is None:
        return None
    return sum(len(prompts.points) for prompts in ui.session.prompts(0).values())


def browser_clicks(app, url: str, clip: Path, clicks: int, latency_ms: int) -> tuple[dict, list, dict]:
    """({"drawn", "painted", "wall"}: ms per timed click, the page spots clicked, the frame's geometry)."""
    from playwright.sync_api import expect, sync_playwright

    executable = shutil.which("chromium")
    if not executable:
        raise SystemExit("Debian's chromium is not installed: apt-get install -y chromium")
    times: dict[str, list[float]] = {"drawn": [], "painted": [], "wall": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        tab: dict = {}  # the page's Gradio session hash, from its queue requests

        def on_request(request) -> None:
            if "/queue/join" in request.url and request.post_data:
                tab.setdefault("hash", json.loads(request.post_data).get("session_hash"))

        page.on("request", on_request)
        if latency_ms:
            cdp = page.context.new_cdp_session(page)
            cdp.send("Network.enable")
            conditions = {
                "offline": False,
                "latency": latency_ms,
                "downloadThroughput": -1,
                "uploadThroughput": -1,
            }
            cdp.send("Network.emulateNetworkConditions", conditions)
        page.goto(url)
        expect(page.locator("#sam2-frame .sam2-drop")).to_be_visible(timeout=60_000)
        page.set_input_files("#sam2-upload input[type=file]", str(clip))
        expect(page.locator("#sam2-status")).to_contain_text("(frames 0–", timeout=TIMEOUT_MS)
        expect(page.locator("#sam2-frame img.sam2-image")).to_be_visible()
        page.evaluate(PROBE_JS)
        geometry = page.evaluate(FRAME_GEOMETRY_JS)
        spots = click_spots(geometry, clicks)
        stage = page.locator("#sam2-frame .sam2-stage")
        for i, spot in enumerate(spots):
            before = stage.get_attribute("data-version")
            began = time.perf_counter()
            page.mouse.click(*spot)
            page.wait_for_function(
                "v => document.querySelector('#sam2-frame .sam2-stage').dataset.version !== v",
                arg=before,
                timeout=TIMEOUT_MS,
            )
            wall = time.perf_counter() - began
            page.wait_for_function("() => window.sam2Bench.painted !== null", timeout=TIMEOUT_MS)
            probe = page.evaluate("() => window.sam2Bench")
            if i:  # the first click also embeds the frame
                times["drawn"].append(probe["drawn"] - probe["up"])
                times["painted"].append(probe["painted"] - probe["up"])
                times["wall"].append(1000 * wall)
            time.sleep(PAUSE_S)
        points = points_on_frame0(app, tab.get("hash"))
        browser.close()
    print(f"browser tab: {points} points on frame 0 after {len(spots)} clicks")
    return times, spots, geometry


def server_clicks(app, clip: Path, spots: list, geometry: dict) -> list[float]:
    """ms of the app's click handler alone (``ui_click``), its own tab, the same clip and display clicks."""
    import gradio as gr

    handlers = {f.api_name: f.fn for f in app.demo.fns.values()}
    request = SimpleNamespace(session_hash="web-click-server")
    handlers["ui_open"](str(clip), request)
    w, h = geometry["w"], geometry["h"]
    times = []
    for i, spot in enumerate(spots):
        x, y = to_display(geometry, spot)
        click = {"kind": "click", "x": x, "y": y, "negative": False, "w": w, "h": h, "frame": 0}
        began = time.perf_counter()
        handlers["ui_click"](gr.EventData(None, click), request)
        if i:
            times.append(1000 * (time.perf_counter() - began))
    points = points_on_frame0(app, request.session_hash)
    print(f"server-only tab: {points} points on frame 0 after {len(spots)} clicks")
    return times


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.web_click", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--clicks", type=int, default=20, help="timed clicks (after the one that embeds)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--latency-ms", type=int, default=0, help="network latency added to the page")
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    torch.set_num_threads(args.threads)
    load_before, started = os.getloadavg(), time.perf_counter()

    from apps.web import App, launch

    folder = Path(tempfile.mkdtemp(prefix="web_click_"))
    clip = write_clip(folder)
    app = App(
        build_predictor(args.image_size), work_root=folder / "app", precision="fp32", model_label="bench"
    )
    demo = app.build()
    in_app: list[float] = []
    time_handler(app, "ui_click", in_app)
    _, url, _ = launch(demo, "127.0.0.1", free_port(), prevent_thread_lock=True, quiet=True)
    try:
        times, spots, geometry = browser_clicks(app, url, clip, args.clicks, args.latency_ms)
        times["in_app"] = in_app[1 : 1 + args.clicks]  # the first click embeds
        times["server"] = server_clicks(app, clip, spots, geometry)  # also appends to in_app: sliced above
    finally:
        demo.close()
        app.registry.close_all()
    load_after = os.getloadavg()

    print(
        f"SAM 2.1 tiny at {args.image_size}, fp32, CPU, torch threads {torch.get_num_threads()}, "
        f"{os.cpu_count()} cores; {CLIP_SIZE[0]}x{CLIP_SIZE[1]} clip shown at "
        f"{geometry['scale'] * geometry['w'] / CLIP_SIZE[0]:.2f} page px per frame px; "
        f"network latency {args.latency_ms} ms; {args.clicks} clicks after the embedding one"
    )
    loads = [", ".join(f"{v:.2f}" for v in load) for load in (load_before, load_after)]
    print(f"load average (1, 5, 15 min): before {loads[0]}; after {loads[1]}")
    rows = (
        ("in-page: pointerup to frame drawn", "drawn"),
        ("in-page: pointerup to frame painted", "painted"),
        ("wall: mouse.click to version changed", "wall"),
        ("server, in the browser run: ui_click", "in_app"),
        ("server only: ui_click handler", "server"),
    )
    print(f"{'ms':<38}{'p50':>8}{'p90':>8}{'max':>8}")
    report: dict = {"image_size": args.image_size, "threads": args.threads, "cores": os.cpu_count()}
    for label, key in rows:
        values = np.asarray(times[key])
        p50, p90, top = np.percentile(values, 50), np.percentile(values, 90), values.max()
        report[key] = {"p50_ms": p50, "p90_ms": p90, "max_ms": top}
        print(f"{label:<38}{p50:>8.0f}{p90:>8.0f}{top:>8.0f}")
    drawn = np.median(times["drawn"])
    rest_in_run, rest_alone = drawn - np.median(times["in_app"]), drawn - np.median(times["server"])
    print(
        f"p50 in-page drawn less p50 server (queue + transport + page): {rest_in_run:.0f} ms against the "
        f"handler in the browser run, {rest_alone:.0f} ms against it alone; "
        f"run took {time.perf_counter() - started:.0f} s"
    )
    return report


if __name__ == "__main__":
    main()
