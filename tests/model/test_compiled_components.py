"""``vos_optimized=True``: the five components are compiled, compiled results agree with eager ones, outputs
survive the next call where CUDA graphs reuse their buffers, and machines that cannot compile run eager."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from model import build_sam2, build_sam2_video_predictor
from model.loading import compile as compile_module
from model.loading.compile import COMPONENTS, compile_components, is_compiled, with_cloned_outputs
from tests.support import session_helpers

IMAGE_SIZE = 256
TOKENS = (IMAGE_SIZE // 16) ** 2  # image tokens of one frame at stride 16


def test_vos_optimized_compiles_the_five_components(monkeypatch):
    monkeypatch.setattr(compile_module, "cpp_compiler", lambda: "/usr/bin/c++")
    predictor = build_sam2_video_predictor(
        "sam2.1_hiera_tiny", None, device="cpu", image_size=IMAGE_SIZE, vos_optimized=True
    )
    model = predictor.model
    names = ["image_encoder", "memory_encoder", "memory_attention", "sam_prompt_encoder", "sam_mask_decoder"]
    assert sorted(COMPONENTS) == sorted(names)
    assert all(is_compiled(getattr(model, name)) for name in names)
    assert compile_components(model) == []  # compiling again changes nothing
    assert "memory_attention.layers.0.self_attn.q_proj.weight" in model.state_dict()  # keys unchanged


@pytest.mark.slow
def test_memory_attention_compiled_on_cpu_matches_eager_for_growing_memories():
    torch.manual_seed(0)
    model = build_sam2("sam2.1_hiera_tiny", None, device="cpu", image_size=IMAGE_SIZE)
    attention = model.memory_attention
    generator = torch.Generator().manual_seed(1)
    curr, curr_pos = torch.randn(2, TOKENS, 1, 256, generator=generator)
    calls = []
    for frames, pointers in ((1, 4), (3, 16)):  # the memory of an early and of a later frame
        count = frames * TOKENS + pointers
        memory, memory_pos = torch.randn(2, count, 1, 64, generator=generator)
        calls.append((curr, curr_pos, memory, memory_pos, pointers))
    with torch.inference_mode():
        eager = [attention(*call) for call in calls]
        assert compile_components(model, ["memory_attention"]) == ["memory_attention"]
        compiled = [attention(*call) for call in calls]
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)


def test_cloned_outputs_survive_the_next_call_that_reuses_the_buffers():
    buffer = torch.zeros(3)

    def graph_like(value: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
        buffer.fill_(value)  # a CUDA graph writes every call's outputs into the same memory
        return buffer, [buffer[:1]]

    call = with_cloned_outputs(graph_like)
    first, (first_head,) = call(1.0)
    call(2.0)
    assert first.tolist() == [1.0, 1.0, 1.0] and first_head.tolist() == [1.0]


def test_without_a_cpp_compiler_the_cpu_model_runs_uncompiled_with_a_warning(monkeypatch):
    monkeypatch.setattr(compile_module, "cpp_compiler", lambda: None)
    model = nn.Module()
    model.memory_encoder = nn.Linear(2, 2)
    with pytest.warns(RuntimeWarning, match="needs a C\\+\\+ compiler"):
        assert compile_components(model, ["memory_encoder"]) == []
    assert not is_compiled(model.memory_encoder)


def test_unknown_components_are_refused():
    with pytest.raises(ValueError, match="the components are"):
        compile_components(nn.Linear(2, 2), ["decoder"])


def track(predictor, frames: np.ndarray) -> list[torch.Tensor]:
    state = predictor.init_state(frames)
    predictor.add_new_points_or_box(state, 0, 1, points=[session_helpers.disc_centre(0)], labels=[1])
    x0, y0, x1, y1 = session_helpers.block_box(0)
    predictor.add_new_points_or_box(state, 0, 2, box=[x0, y0, x1, y1])
    masks = [m.float().cpu() for _, _, m in predictor.propagate_in_video(state)]
    state.close()
    return masks


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs and max-autotune need a CUDA device")
def test_vos_optimized_tracking_on_cuda_matches_eager():
    frames = session_helpers.make_frames(num_frames=8)
    results = []
    for vos_optimized in (False, True):
        torch.manual_seed(0)
        predictor = build_sam2_video_predictor(
            "sam2.1_hiera_tiny",
            None,
            device="cuda",
            image_size=IMAGE_SIZE,
            apply_postprocessing=False,
            vos_optimized=vos_optimized,
        )
        with torch.no_grad():
            predictor.model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias += 5.0
        with torch.autocast("cuda", dtype=torch.bfloat16):
            results.append(track(predictor, frames))
    eager, compiled = results
    assert len(eager) == len(compiled) == 8
    for frame, (a, b) in enumerate(zip(eager, compiled, strict=True)):
        union = ((a > 0) | (b > 0)).sum().item()
        iou = ((a > 0) & (b > 0)).sum().item() / max(union, 1)
        assert iou >= 0.98, f"frame {frame}: IoU {iou:.4f} between compiled and eager masks"
