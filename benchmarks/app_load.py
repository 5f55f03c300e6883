"""Load on the web app: N simulated users at once, and the click handler alone.

    python -m benchmarks.app_load [--users 8] [--frames 8] [--image-size 1024] [--checkpoint PATH]

1. Starts ``python app.py`` on 127.0.0.1 in a subprocess (a random-weight SAM 2.1 tiny checkpoint in the
   official format unless ``--checkpoint`` is given), then N ``gradio_client`` users at once each upload a
   short clip, add an object, click three times at their own spots and track forward. Prints, per user,
   whether every mask equals a solo run of the same prompts on a `Session` in this process (no cross-talk),
   then p50/p95 click latency and tracking throughput (frames per second, all users together and each).
2. The click handler alone, in this process: the app's own page handler of a click on the frame pane
   (display pixels in, drawn page out) on a frame whose features are cached, SAM 2.1 tiny at
   ``--image-size``; p50/p95 over ``--clicks``.

Not a test: the numbers depend on the machine. Run it with nothing else running.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
CLIP_SIZE = (320, 192)


def write_checkpoint(folder: Path, image_size: int) -> Path:
    """Random weights in the official layout; the object score bias raised so masks are not empty."""
    from model import build_sam2

    torch.manual_seed(0)
    model = build_sam2("sam2.1_hiera_tiny", None, device="cpu", image_size=image_size)
    state = model.state_dict()
    state["sam_mask_decoder.pred_obj_score_head.layers.2.bias"] += 5.0
    path = folder / "sam2.1_hiera_tiny.pt"
    torch.save({"model": state}, path)
    return path


def write_clip(folder: Path, frames: int) -> Path:
    from apps.examples import shapes_clip_frames
    from sam2_ui.output.export import export_overlay_video

    path = folder / "load_clip.mp4"
    export_overlay_video(iter(shapes_clip_frames(frames, CLIP_SIZE)), path, 12)
    return path


def user_clicks(user: int) -> list[tuple[float, float]]:
    """Three spots of this user's own (different users click different places)."""
    w, h = CLIP_SIZE
    base = 20 + (user * 37) % (w - 60)
    return [(base + 5.0 * k, 25 + (user * 23) % (h - 60) + 7.0 * k) for k in range(3)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(checkpoint: Path, image_size: int, users: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [
        sys.executable,
        "app.py",
        "--checkpoint",
        str(checkpoint),
        "--device",
        "cpu",
        "--image-size",
        str(image_size),
        "--port",
        str(port),
        "--max-sessions",
        str(users + 2),
    ]
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the app exited:\n" + process.stdout.read().decode())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("the app did not start within 300 s")


def run_user(url: str, clip: Path, user: int, num_frames: int, out: dict) -> None:
    from gradio_client import Client, handle_file

    from model.images.rle import coco_rle_to_mask

    client = Client(url, verbose=False)
    client.predict(handle_file(str(clip)), api_name="/open")
    client.predict(f"user {user}", api_name="/add_object")
    latencies = []
    for x, y in user_clicks(user):
        began = time.perf_counter()
        client.predict(0, 0, x, y, True, api_name="/add_point")
        latencies.append(time.perf_counter() - began)
    began = time.perf_counter()
    list(client.submit("forward", 0, api_name="/propagate"))
    seconds = time.perf_counter() - began
    masks = {}
    for frame in range(num_frames):
        for obj, rle in client.predict(frame, api_name="/masks").items():
            masks[frame, int(obj)] = coco_rle_to_mask(rle)  # /masks answers in COCO RLE
    out[user] = {"latencies": latencies, "track_s": seconds, "masks": masks}


def solo_masks(predictor, clip: Path, user: int) -> dict:
    from sam2_ui import Session

    with Session.open(clip, predictor) as session:
        obj = session.add_object(f"user {user}")
        for x, y in user_clicks(user):
            session.add_point(0, obj, x, y)
        for _ in session.propagate("forward", start=0):
            pass
        return {(f, o): m for f in range(session.num_frames) for o, m in session.masks(f).items()}


def click_handler_alone(predictor, clip: Path, clicks: int) -> list[float]:
    """The app's handler of a click on the frame pane (the page script's event in, the drawn page's
    ``{component: update}`` out) on a frame whose features are cached."""
    import gradio as gr

    from apps.web import App

    app = App(predictor, work_root=tempfile.mkdtemp(prefix="app_load_"))
    demo = app.build()
    handlers = {f.api_name: f.fn for f in demo.fns.values()}
    request = SimpleNamespace(session_hash="bench")
    handlers["ui_open"](str(clip), request)
    handlers["ui_add_object"](request)
    w, h = app.registry.get("bench")[0].view().mapping.display_size  # the frame as the page draws it
    times = []
    for k in range(clicks + 1):
        x, y = 30 + (k * 13) % (w - 60), 30 + (k * 29) % (h - 60)  # distinct spots: never on a marker
        click = {"kind": "click", "x": x, "y": y, "w": w, "h": h, "frame": 0}
        began = time.perf_counter()
        handlers["ui_click"](gr.EventData(None, click), request)
        if k:  # the first click also encodes the frame
            times.append(time.perf_counter() - began)
    app.registry.close_all()
    return times


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--frames", type=int, default=8, help="frames of each user's clip")
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--clicks", type=int, default=20, help="clicks timed for the handler alone")
    parser.add_argument("--checkpoint", type=Path, help="an official checkpoint (default: random weights)")
    parser.add_argument("--json", type=Path, default=ROOT / "outputs" / "app_load.json")
    parser.add_argument("--skip-load", action="store_true", help="only time the click handler")
    args = parser.parse_args(argv)

    from model import build_sam2_video_predictor

    folder = Path(tempfile.mkdtemp(prefix="app_load_"))
    checkpoint = args.checkpoint or write_checkpoint(folder, args.image_size)
    clip = write_clip(folder, args.frames)
    predictor = build_sam2_video_predictor(
        "sam2.1_hiera_tiny", checkpoint, device="cpu", image_size=args.image_size
    )
    report: dict = {
        "users": args.users,
        "frames": args.frames,
        "image_size": args.image_size,
        "torch_threads": torch.get_num_threads(),
    }

    if not args.skip_load:
        process, url = start_app(checkpoint, args.image_size, args.users)
        try:
            results: dict = {}
            began = time.perf_counter()
            threads = [
                threading.Thread(target=run_user, args=(url, clip, u, args.frames, results))
                for u in range(args.users)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - began
        finally:
            process.terminate()
            process.wait(30)
        latencies = [s for r in results.values() for s in r["latencies"]]
        print(f"{args.users} users, {args.frames}-frame clips, SAM 2.1 tiny at {args.image_size} on the CPU")
        print("user  masks equal to a solo run  click p50 (s)  tracking (frames/s)")
        correct = {}
        for user in range(args.users):
            if user not in results:
                print(f"{user:>4}  FAILED (no result)")
                correct[user] = False
                continue
            expected = solo_masks(predictor, clip, user)
            got = results[user]["masks"]
            same = sorted(got) == sorted(expected) and all(np.array_equal(got[k], expected[k]) for k in got)
            correct[user] = same
            rate = args.frames / results[user]["track_s"]
            print(
                f"{user:>4}  {'yes' if same else 'NO':<26} "
                f"{statistics.median(results[user]['latencies']):>13.2f}"
                f"  {rate:>19.2f}"
            )
        report.update(
            {
                "all_correct": all(correct.values()),
                "click_p50_s": percentile(latencies, 50),
                "click_p95_s": percentile(latencies, 95),
                "tracking_frames_per_s_all_users": args.users * args.frames / wall,
                "tracking_frames_per_s_per_user_mean": statistics.mean(
                    args.frames / r["track_s"] for r in results.values()
                ),
                "wall_s": wall,
            }
        )
        print(
            f"click latency p50 {report['click_p50_s']:.2f} s, p95 {report['click_p95_s']:.2f} s "
            f"(model calls are serialised across users)"
        )
        print(
            f"all users together: {report['tracking_frames_per_s_all_users']:.2f} tracked frames/s "
            f"over {wall:.1f} s; no cross-talk: {report['all_correct']}"
        )

    times = click_handler_alone(predictor, clip, args.clicks)
    report["click_handler_p50_ms"] = 1000 * percentile(times, 50)
    report["click_handler_p95_ms"] = 1000 * percentile(times, 95)
    print(
        f"click handler alone (event in, rendered frame out), embedded frame: "
        f"p50 {report['click_handler_p50_ms']:.0f} ms, p95 {report['click_handler_p95_ms']:.0f} ms"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
