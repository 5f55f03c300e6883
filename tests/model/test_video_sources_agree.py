"""The same clip as a JPEG folder, a PNG folder, an mp4 file and an array: same frames, masks that agree.

The clip is 8 frames of 96x128 with moving shapes. The video predictor (random weights at image_size 256,
postprocessing off) tracks one object clicked on frame 0 through each source; every frame's mask must agree
with the PNG one (IoU >= 0.98; the array gives exactly the PNG's pixels, so its masks are identical).

Random weights make masks unusually sensitive to pixel values: their logits are about +-0.05 with a
transposed-convolution checkerboard, so a uniform one-level shift of the input already moves about 3 % of the
pixels. So the clip is drawn in grey levels that yuv420p represents exactly: the codec's chroma subsampling
then loses nothing, and what differs between sources is the real codec error (JPEG at the official tools'
quality 95, x264 at CRF 8), a few grey levels at the edges of the shapes.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from model import build_sam2_video_predictor
from model.video.video_frames import open_frames
from tests.support.official_ref import build_official, save_official_checkpoint

pytestmark = pytest.mark.parity

NUM_FRAMES, HEIGHT, WIDTH = 8, 96, 128
IMAGE_SIZE = 256
# Grey levels that survive PyAV's RGB -> yuv420p -> RGB round trip unchanged (checked below).
BACKGROUND_LEFT, BACKGROUND_RIGHT, DISC, BLOCK = 131, 93, 230, 30
CLICK = (30.0, 38.0)  # on the disc in frame 0
SOURCES = ("jpeg", "png", "mp4", "array")


def make_frames() -> np.ndarray:
    """T, H, W, 3 uint8: a bright disc moving right, a dark block moving left, on a two-tone background."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames = np.empty((NUM_FRAMES, HEIGHT, WIDTH, 3), np.uint8)
    for t in range(NUM_FRAMES):
        grey = np.full((HEIGHT, WIDTH), BACKGROUND_LEFT, np.uint8)
        grey[:, WIDTH // 2 :] = BACKGROUND_RIGHT
        grey[(xx - (30 + 6 * t)) ** 2 + (yy - 38) ** 2 < 16**2] = DISC
        grey[62:84, 78 - 4 * t : 106 - 4 * t] = BLOCK
        frames[t] = grey[..., None]
    return frames


def write_mp4(frames: np.ndarray, path: Path) -> Path:
    """H.264 yuv420p at CRF 8 (MPEG-4 Part 2 at qscale 1 where PyAV lacks libx264)."""
    with av.open(str(path), "w") as container:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "8"}
        else:
            stream.codec_context.qscale = 1
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return make_frames()


@pytest.fixture(scope="module")
def sources(frames, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("sources")
    for ext, options in (("jpg", dict(quality=95)), ("png", {})):
        folder = root / ext
        folder.mkdir()
        for t, frame in enumerate(frames):
            Image.fromarray(frame).save(folder / f"{t:05d}.{ext}", **options)
    return {
        "jpeg": str(root / "jpg"),
        "png": str(root / "png"),
        "mp4": str(write_mp4(frames, root / "clip.mp4")),
        "array": frames,
    }


@pytest.fixture(scope="module")
def masks(sources, tmp_path_factory) -> dict:
    """Source name -> the propagated masks: ``{frame_idx: H, W bool}`` and the frame order."""
    official = build_official("sam2.1_hiera_tiny", image_size=IMAGE_SIZE, video=True)
    checkpoint = save_official_checkpoint(official, tmp_path_factory.mktemp("weights") / "weights.pt")
    del official
    predictor = build_sam2_video_predictor(
        "sam2.1_hiera_tiny", checkpoint, device="cpu", image_size=IMAGE_SIZE, apply_postprocessing=False
    )
    results = {}
    for name, source in sources.items():
        state = predictor.init_state(source)
        assert state["num_frames"] == NUM_FRAMES
        assert (state["video_height"], state["video_width"]) == (HEIGHT, WIDTH)
        predictor.add_new_points_or_box(state, 0, 1, points=[list(CLICK)], labels=[1])
        order, by_frame = [], {}
        for frame_idx, obj_ids, logits in predictor.propagate_in_video(state):
            assert obj_ids == [1] and logits.shape == (1, 1, HEIGHT, WIDTH)
            order.append(frame_idx)
            by_frame[frame_idx] = logits[0, 0] > 0
        results[name] = (order, by_frame)
        state.close()
    return results


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    union = (a | b).sum().item()
    return 1.0 if union == 0 else (a & b).sum().item() / union


def test_grey_levels_survive_yuv420p():
    rgb = make_frames()[0]
    back = (
        av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray(format="rgb24")
    )
    assert np.array_equal(back, rgb)


@pytest.mark.parametrize("name", SOURCES)
def test_every_source_gives_the_same_frames_in_the_same_order(name, sources, frames):
    with open_frames(sources[name]) as source:
        assert len(source) == NUM_FRAMES
        assert (source.height, source.width) == (HEIGHT, WIDTH)
        decoded = np.stack([source.rgb(t) for t in range(NUM_FRAMES)]).astype(np.float32)
    if name in ("png", "array"):
        assert np.array_equal(decoded, frames)
        return
    # Lossy: each decoded frame is close to its own original and farther from every other frame.
    error = np.abs(decoded[:, None] - frames[None].astype(np.float32)).mean(
        axis=(2, 3, 4)
    )  # decoded x original
    assert (error.diagonal() < 2.0).all(), error.diagonal()
    assert (error.argmin(axis=1) == np.arange(NUM_FRAMES)).all(), error


def test_masks_are_not_trivial(masks):
    order, by_frame = masks["png"]
    assert order == list(range(NUM_FRAMES))  # forward from the clicked frame 0
    fractions = [by_frame[t].float().mean().item() for t in range(NUM_FRAMES)]
    print("foreground fraction per frame (PNG):", [round(f, 3) for f in fractions])
    # Neither empty nor the whole frame, nor the same on every frame: the comparison below means something.
    assert all(0.02 < f < 0.98 for f in fractions)
    assert iou(by_frame[0], by_frame[NUM_FRAMES - 1]) < 0.98


@pytest.mark.parametrize("name", ["jpeg", "mp4", "array"])
def test_masks_agree_across_sources(name, masks):
    ref_order, reference = masks["png"]
    order, got = masks[name]
    assert order == ref_order
    ious = [iou(got[t], reference[t]) for t in range(NUM_FRAMES)]
    print(f"{name} vs PNG, IoU per frame:", [round(v, 4) for v in ious])
    if name == "array":  # the PNG stores these exact pixels
        assert all(torch.equal(got[t], reference[t]) for t in range(NUM_FRAMES))
    assert min(ious) >= 0.98
