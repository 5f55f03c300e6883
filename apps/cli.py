"""Command-line demo: segment an image from clicks or a box and write the mask as a PNG.

python -m apps.cli --image photo.jpg --point 320,240 --out mask.png
python -m apps.cli --image photo.jpg --box 10,20,300,400 --model facebook/sam2.1-hiera-large
python -m apps.cli --image photo.jpg --point 320,240 --checkpoint my.pt --config sam2.1_hiera_tiny
python -m apps.cli --image photo.jpg --point 320,240 --precision fp32
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from apps.model_loading import checkpoint_config
from model import SAM2ImagePredictor, build_sam2
from model.errors import CheckpointError, ModelNotAvailableError
from model.loading.precision import (
    PRECISION_CHOICES,
    PRECISION_ENV,
    describe_precision,
    inference_autocast,
    resolve_precision,
)


def _numbers(text: str, count: int, what: str) -> list[float]:
    parts = text.replace(" ", "").split(",")
    if len(parts) != count:
        raise argparse.ArgumentTypeError(f"{what} needs {count} comma-separated numbers, got {text!r}")
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} needs numbers, got {text!r}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m apps.cli", description=__doc__.split("\n")[0])
    parser.add_argument("--image", required=True, type=Path, help="RGB image to segment")
    parser.add_argument("--point", action="append", default=[], help="foreground click x,y (repeatable)")
    parser.add_argument("--negative", action="append", default=[], help="background click x,y (repeatable)")
    parser.add_argument("--box", help="box x0,y0,x1,y1")
    parser.add_argument("--out", type=Path, default=Path("mask.png"), help="output PNG (white = object)")
    parser.add_argument("--overlay", type=Path, help="also write the image with the mask overlaid")
    parser.add_argument("--model", default="facebook/sam2.1-hiera-tiny", help="Hugging Face model id")
    parser.add_argument("--checkpoint", type=Path, help="local official .pt checkpoint (instead of --model)")
    parser.add_argument(
        "--config",
        default=None,
        help="model of --checkpoint, e.g. sam2.1_hiera_tiny (default: from its file name or its weights)",
    )
    parser.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, mps")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISION_CHOICES,
        help=f"auto: bf16 where the device runs it fast, else fp32 (${PRECISION_ENV} replaces auto)",
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> Path:
    """Segment ``args.image`` and write ``args.out``; returns the output path."""
    points = [_numbers(p, 2, "--point") for p in args.point]
    negatives = [_numbers(p, 2, "--negative") for p in args.negative]
    box = np.array(_numbers(args.box, 4, "--box")) if args.box else None
    if not points and not negatives and box is None:
        raise SystemExit("give at least one --point x,y or a --box x0,y0,x1,y1")
    try:
        image = np.array(Image.open(args.image).convert("RGB"))
    except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
        raise SystemExit(f"cannot read image {args.image}: {exc}") from None
    h, w = image.shape[:2]
    for x, y in points + negatives:
        if not (0 <= x < w and 0 <= y < h):
            raise SystemExit(f"click ({x:g}, {y:g}) is outside the {w}x{h} image")

    if args.checkpoint is not None:
        config = args.config or checkpoint_config(args.checkpoint)
        model = build_sam2(config, args.checkpoint, device=args.device)
        predictor = SAM2ImagePredictor(model)
    else:
        predictor = SAM2ImagePredictor.from_pretrained(args.model, device=args.device)
    try:
        precision = resolve_precision(args.precision, predictor.device)
    except ValueError as exc:
        raise SystemExit(f"{exc} (from --precision or ${PRECISION_ENV})") from None
    coords = np.array(points + negatives, dtype=np.float32) if points or negatives else None
    labels = np.array([1] * len(points) + [0] * len(negatives)) if coords is not None else None
    single_click = coords is not None and len(coords) == 1 and box is None
    with inference_autocast(predictor.device, precision):
        predictor.set_image(image)
        masks, scores, _ = predictor.predict(coords, labels, box=box, multimask_output=single_click)
    mask = masks[int(np.argmax(scores))] > 0

    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((mask * 255).astype(np.uint8)).save(args.out)
    if args.overlay is not None:
        tinted = image.astype(np.float32)
        tinted[mask] = 0.5 * tinted[mask] + 0.5 * np.array([30, 144, 255])
        args.overlay.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(tinted.astype(np.uint8)).save(args.overlay)
    print(
        f"wrote {args.out} ({int(mask.sum())} of {h * w} pixels, predicted IoU {float(scores.max()):.3f}; "
        f"{describe_precision(predictor.device, precision)})"
    )
    return args.out


def main(argv: list[str] | None = None) -> int:
    try:
        run(parse_args(argv))
    except (CheckpointError, ModelNotAvailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
