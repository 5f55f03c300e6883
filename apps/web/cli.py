"""``python app.py``: the web app's command line, and the launch every caller (tests, benchmarks) shares.

python app.py [--model facebook/sam2.1-hiera-tiny | --checkpoint PATH [--config NAME]] [--device auto]
              [--precision auto|fp32|bf16] [--zero-gpu-emulation reuse|fresh|random]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import gradio as gr

from model.loading.precision import PRECISION_CHOICES, PRECISION_ENV
from sam2_ui.engine.forked_gpu import WORKER_MODES, ForkedGPU
from sam2_ui.engine.model_worker import serve
from sam2_ui.engine.worker_executor import WorkerExecutors

from ..model_loading import DEFAULT_MODEL, choose_precision, load_predictor
from .app import App, css
from .uploads import AppLimits
from .zero_gpu import on_zero_gpu

DESCRIPTION = "The SAM 2 web app: segment and track objects in a video or an image, in the browser."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = AppLimits()
    parser = argparse.ArgumentParser(prog="python app.py", description=DESCRIPTION)
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help="Hugging Face model id (cached after the first run)"
    )
    parser.add_argument("--checkpoint", type=Path, help="a local official .pt checkpoint instead of --model")
    parser.add_argument(
        "--config",
        help="config of --checkpoint, e.g. sam2.1_hiera_tiny (default: read from the weights' shapes)",
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
        css=css(),
        **kwargs,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    on_zero_gpu()  # on ZeroGPU this imports spaces first, as it must come before anything uses CUDA
    predictor = load_predictor(args.model, args.checkpoint, args.config, args.device, args.image_size)
    precision = choose_precision(args.precision, predictor)
    label = args.checkpoint.name if args.checkpoint else args.model
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
