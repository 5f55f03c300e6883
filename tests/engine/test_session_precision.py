"""A session in bf16: every network call the engine makes (prompts, tracking, segment everything) runs under
bf16 autocast, its masks stay bool and agree with the fp32 session's, and the session says which mode runs.

bf16 is made available by pretending the CPU has fast bf16 (bf16 autocast also runs, emulated, on CPUs
without it), so these tests pin the same behaviour on every machine.

The bf16-against-fp32 comparison uses the engine tests' random tiny model with one change: candidate 1's
IoU-head bias is raised by 1, as in the official bf16 parity test. Random weights predict nearly equal IoUs
for the three candidate masks, so without it bf16 rounding may pick another candidate than fp32 does on a
single click; with it the choice is decisive and the comparison measures bf16 noise only (IoU >= 0.989 on
every mask here, against 0.982 without).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
import torch

from model import build_sam2_video_predictor
from model.loading import precision as prec
from model.loading.precision import PRECISION_ENV
from sam2_ui import Session
from tests.support.session_helpers import NUM_FRAMES, block_box, disc_centre, make_frames, predictor

MIN_IOU = 0.98  # the bf16 target (masks against our fp32)


@pytest.fixture
def fast_bf16(monkeypatch):
    monkeypatch.setattr(prec, "fast_bf16", lambda device: "AVX-512 BF16")


def decisive_predictor(device: str = "cpu"):
    """The engine tests' predictor with a decisive best-candidate choice (see the module docstring)."""
    video_predictor = build_sam2_video_predictor(
        "sam2.1_hiera_tiny",
        None,
        device=device,
        image_size=256,
        apply_postprocessing=False,
        feature_cache_size=NUM_FRAMES + 2,
    )
    video_predictor.model.load_state_dict(predictor().model.state_dict())
    with torch.no_grad():
        video_predictor.model.sam_mask_decoder.iou_prediction_head.layers[-1].bias[1] += 1.0
    return video_predictor


@pytest.fixture(scope="module")
def decisive():
    return decisive_predictor()


@contextmanager
def autocast_spy(video_predictor=None, device_type: str = "cpu"):
    """Records, for each call of the image encoder, mask decoder and memory encoder, whether bf16 autocast
    was on for ``device_type``."""
    seen: list[tuple[str, bool]] = []
    model = (video_predictor or predictor()).model
    hooks = []
    for name in ("image_encoder", "sam_mask_decoder", "memory_encoder"):

        def hook(module, args, name=name):
            on = torch.is_autocast_enabled(device_type)
            seen.append((name, on and torch.get_autocast_dtype(device_type) == torch.bfloat16))

        hooks.append(getattr(model, name).register_forward_pre_hook(hook))
    try:
        yield seen
    finally:
        for h in hooks:
            h.remove()


def track_two_objects(video_predictor, precision: str) -> tuple[Session, dict[tuple[int, int], np.ndarray]]:
    session = Session.open(make_frames(), video_predictor, precision=precision)
    disc, block = session.add_object("disc"), session.add_object("block")
    session.add_point(0, disc, *disc_centre(0))
    session.add_box(0, block, *block_box(0))
    for _ in session.propagate("forward"):
        pass
    session.add_point(3, disc, *disc_centre(3))  # a correction on a tracked frame
    masks = {(f, o): m for f in range(session.num_frames) for o, m in session.masks(f).items()}
    return session, masks


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@pytest.mark.slow
def test_a_bf16_session_runs_every_call_under_autocast_and_matches_fp32(fast_bf16, decisive):
    with autocast_spy(decisive) as fp32_calls:
        fp32, expected = track_two_objects(decisive, "fp32")
    with autocast_spy(decisive) as bf16_calls:
        bf16, masks = track_two_objects(decisive, "bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    assert bf16.precision_label == "bf16 autocast on CPU (AVX-512 BF16)"
    assert {name for name, _ in bf16_calls} == {"image_encoder", "sam_mask_decoder", "memory_encoder"}
    assert all(on for _, on in bf16_calls), [name for name, on in bf16_calls if not on]
    assert not any(on for _, on in fp32_calls)
    assert not torch.is_autocast_enabled("cpu")  # nothing leaks out of the session's calls
    assert sorted(masks) == sorted(expected) and len(masks) == 12
    for key, mask in masks.items():
        assert mask.dtype == np.bool_ and mask.shape == expected[key].shape
        assert expected[key].sum() > 100, f"{key}: the fp32 mask is nearly empty, the IoU would say little"
        assert iou(mask, expected[key]) >= MIN_IOU, f"{key}: IoU {iou(mask, expected[key]):.4f}"
    fp32.close()
    bf16.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_auto_runs_bf16_autocast_where_the_gpu_has_it_and_matches_fp32(monkeypatch):
    monkeypatch.delenv(PRECISION_ENV)
    cuda = decisive_predictor("cuda")
    expected_mode = "bf16" if prec.fast_bf16("cuda") else "fp32"  # compute capability 8.0 or newer
    fp32, expected = track_two_objects(cuda, "fp32")
    with autocast_spy(cuda, "cuda") as calls:
        auto, masks = track_two_objects(cuda, "auto")
    assert auto.precision == expected_mode and auto.precision_label.startswith(f"{expected_mode} ")
    assert calls and all(on == (expected_mode == "bf16") for _, on in calls)
    for key, mask in masks.items():
        assert mask.dtype == np.bool_ and iou(mask, expected[key]) >= MIN_IOU, key
    fp32.close()
    auto.close()


@pytest.mark.slow
def test_the_consumer_of_a_tracking_run_does_not_run_under_autocast(fast_bf16):
    with Session.open(make_frames(), predictor(), precision="bf16") as session:
        session.add_point(0, session.add_object(), *disc_centre(0))
        states = [torch.is_autocast_enabled("cpu") for _ in session.propagate("forward")]
    assert len(states) == 6 and not any(states)


@pytest.mark.slow
def test_segment_everything_runs_under_the_sessions_autocast(fast_bf16):
    with Session.open(make_frames(1)[0], predictor(), precision="bf16") as session, autocast_spy() as calls:
        ids = session.segment_everything(
            points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0
        )
        assert ids and all(session.mask(0, obj).dtype == np.bool_ for obj in ids)
    assert calls and all(on for _, on in calls)


@pytest.mark.slow
def test_auto_follows_the_environment_and_bf16_where_slow_is_refused(monkeypatch):
    monkeypatch.setattr(prec, "fast_bf16", lambda device: None)
    monkeypatch.delenv(PRECISION_ENV)
    with Session.open(make_frames(2), predictor()) as session:
        assert session.precision == "fp32" and session.precision_label == "fp32 on CPU (no fast bf16 here)"
    with pytest.raises(ValueError, match="CPU has no fast bf16"):
        Session.open(make_frames(2), predictor(), precision="bf16")
    monkeypatch.setattr(prec, "fast_bf16", lambda device: "AMX")
    with Session.open(make_frames(2), predictor()) as session:
        assert session.precision == "bf16"
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    with Session.open(make_frames(2), predictor()) as session:
        assert session.precision == "fp32"


@pytest.mark.slow
def test_a_loaded_session_runs_in_the_precision_it_is_loaded_with(fast_bf16, tmp_path):
    frames = make_frames()
    with Session.open(frames, predictor(), precision="fp32") as session:
        session.add_point(0, session.add_object(), *disc_centre(0))
        path = session.save(tmp_path / "s.json")
    with Session.load(path, predictor(), source=frames, precision="bf16") as loaded, autocast_spy() as calls:
        assert loaded.precision == "bf16"
        loaded.add_point(1, 1, *disc_centre(1))
    assert calls and all(on for _, on in calls)
