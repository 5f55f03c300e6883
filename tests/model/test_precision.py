"""Choosing the precision: which devices have fast bf16, "auto" and the environment override, the error for
bf16 where it is slow, the autocast each mode runs in, and the line shown to people."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
import torch

from model.loading import precision as prec
from model.loading.precision import (
    PRECISION_ENV,
    describe_precision,
    fast_bf16,
    inference_autocast,
    resolve_precision,
)


@pytest.fixture
def no_env(monkeypatch):
    """No override from the environment (the test suite sets one for everything else)."""
    monkeypatch.delenv(PRECISION_ENV, raising=False)


def pretend_fast_bf16(monkeypatch, reason: str | None) -> None:
    monkeypatch.setattr(prec, "fast_bf16", lambda device: reason)


@pytest.mark.parametrize(("reason", "expected"), [("AVX-512 BF16", "bf16"), (None, "fp32")])
def test_auto_picks_bf16_only_where_the_device_has_fast_bf16(monkeypatch, no_env, reason, expected):
    pretend_fast_bf16(monkeypatch, reason)
    assert resolve_precision("auto", "cpu") == expected
    assert resolve_precision("fp32", "cpu") == "fp32"


def test_the_environment_variable_replaces_auto_but_not_an_explicit_choice(monkeypatch):
    pretend_fast_bf16(monkeypatch, "AVX-512 BF16")
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    monkeypatch.setenv(PRECISION_ENV, " BF16 ")
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("fp32", "cpu") == "fp32"
    monkeypatch.setenv(PRECISION_ENV, "")
    assert resolve_precision("auto", "cpu") == "bf16"  # empty means unset


def test_bf16_on_a_device_without_fast_bf16_is_refused_naming_the_device(monkeypatch, no_env):
    pretend_fast_bf16(monkeypatch, None)
    with pytest.raises(ValueError, match=r"precision='bf16' was requested but CPU has no fast bf16.*'fp32'"):
        resolve_precision("bf16", "cpu")
    with pytest.raises(ValueError, match="but CUDA:1 has no fast bf16"):
        resolve_precision("bf16", "cuda:1")
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    with pytest.raises(ValueError, match=f"{PRECISION_ENV}='bf16' was requested but Apple MPS"):
        resolve_precision("auto", "mps")


def test_an_unknown_precision_names_the_choices(monkeypatch):
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    with pytest.raises(ValueError, match="precision='fp16' is not a precision: use one of auto, fp32, bf16"):
        resolve_precision("fp16", "cpu")
    monkeypatch.setenv(PRECISION_ENV, "half")
    with pytest.raises(ValueError, match=f"{PRECISION_ENV}='half' is not a precision"):
        resolve_precision("auto", "cpu")


def test_cpu_detection_reads_torch_cpu_checks_and_degrades_to_none_without_them(monkeypatch):
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    assert fast_bf16("cpu") is None  # an older torch without the checks
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert fast_bf16("cpu") == "AVX-512 BF16"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert fast_bf16("cpu") == "AMX"
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert fast_bf16("cpu") is None  # no oneDNN: bf16 matmuls would not be fast
    assert fast_bf16("mps") is None


def test_cuda_detection_needs_compute_capability_8(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert fast_bf16("cuda") is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"GPU {index}")
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index: (7, 5))
    assert fast_bf16("cuda:1") is None  # a T4: bf16 only emulated
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index: (9, 0))
    assert fast_bf16("cuda:1") == "GPU 1"
    assert fast_bf16("cuda") == "GPU 0"


@pytest.mark.skipif(platform.system() != "Linux", reason="reads the CPU flags from /proc/cpuinfo")
def test_cpu_detection_agrees_with_the_flags_the_kernel_reports():
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    expected = "AMX" if "amx_tile" in flags else "AVX-512 BF16" if "avx512_bf16" in flags else None
    if not torch.backends.mkldnn.is_available():
        expected = None
    assert fast_bf16("cpu") == expected


def test_inference_autocast_runs_bf16_matmuls_only_for_bf16():
    a = torch.randn(4, 8)
    with inference_autocast("cpu", "fp32"):
        assert not torch.is_autocast_enabled("cpu")
        assert (a @ a.T).dtype == torch.float32
    with inference_autocast(torch.device("cpu"), "bf16"):
        assert torch.is_autocast_enabled("cpu")
        assert (a @ a.T).dtype == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        inference_autocast("cpu", "auto")


def test_the_description_says_mode_device_and_why(monkeypatch):
    pretend_fast_bf16(monkeypatch, "AVX-512 BF16")
    assert describe_precision("cpu", "bf16") == "bf16 autocast on CPU (AVX-512 BF16)"
    assert describe_precision("cpu", "fp32") == "fp32 on CPU"
    pretend_fast_bf16(monkeypatch, None)
    assert describe_precision("mps", "fp32") == "fp32 on Apple MPS (no fast bf16 here)"
    pretend_fast_bf16(monkeypatch, "NVIDIA H100")
    assert describe_precision("cuda:0", "bf16") == "bf16 autocast on CUDA:0 (NVIDIA H100)"


def test_fast_bf16_cpu_attention_runs_only_when_switched_on_and_stays_close_to_fp32():
    import torch.nn.functional as F

    from model.network.attention import Attention, bf16_cpu_attention, fast_bf16_cpu_attention

    torch.manual_seed(0)
    attention = Attention(64, num_heads=2).eval()
    q, k, v = (torch.randn(1, 2, n, 32) for n in (1100, 700, 700))  # two query chunks and a remainder
    q16, k16, v16 = q.bfloat16(), k.bfloat16(), v.bfloat16()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        plain = attention.out_proj(attention.merge_heads(F.scaled_dot_product_attention(q16, k16, v16)))
        assert torch.equal(attention.attend(q16, k16, v16), plain)  # off: the fused kernel, as official
        with fast_bf16_cpu_attention():
            fast = attention.attend(q16, k16, v16)
        expected = attention.out_proj(attention.merge_heads(bf16_cpu_attention(q16, k16, v16)))
        assert torch.equal(fast, expected)
        assert not torch.equal(fast, plain)
    exact = F.scaled_dot_product_attention(q, k, v)
    assert (bf16_cpu_attention(q16, k16, v16).float() - exact).abs().max() < 2e-2


def test_the_engine_bf16_context_switches_the_fast_cpu_attention_on():
    from model.network import attention

    with prec.inference_autocast("cpu", "bf16"):
        assert attention._FAST_BF16_CPU.get() and torch.is_autocast_enabled("cpu")
    assert not attention._FAST_BF16_CPU.get()
    with prec.inference_autocast("cpu", "fp32"):
        assert not attention._FAST_BF16_CPU.get()
