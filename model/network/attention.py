"""Multi-head scaled-dot-product attention with an optional down-projected inner width."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Attention whose queries, keys and values are projected to ``embedding_dim // downsample_rate``.

    Keys and values may come from a narrower space (``kv_in_dim``), as memory tokens do.
    Parameters: ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: int | None = None,
    ) -> None:
        super().__init__()
        inner = embedding_dim // downsample_rate
        if inner % num_heads:
            raise ValueError(f"{num_heads} heads do not divide the inner width {inner}")
        kv_dim = embedding_dim if kv_in_dim is None else kv_in_dim
        self.embedding_dim = embedding_dim
        self.internal_dim = inner
        self.num_heads = num_heads
        self.dropout_p = dropout
        self.q_proj = nn.Linear(embedding_dim, inner)
        self.k_proj = nn.Linear(kv_dim, inner)
        self.v_proj = nn.Linear(kv_dim, inner)
        self.out_proj = nn.Linear(inner, embedding_dim)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """B, N, C -> B, heads, N, C / heads"""
        b, n, c = x.shape
        return x.view(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    @staticmethod
    def merge_heads(x: torch.Tensor) -> torch.Tensor:
        """B, heads, N, c -> B, N, heads * c"""
        b, h, n, c = x.shape
        return x.transpose(1, 2).reshape(b, n, h * c)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention on already split heads, then the output projection: -> B, Nq, embedding_dim."""
        p = self.dropout_p if self.training else 0.0
        if p == 0.0 and q.dtype == torch.bfloat16 and q.device.type == "cpu" and _FAST_BF16_CPU.get():
            out = bf16_cpu_attention(q, k, v)
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        return self.out_proj(self.merge_heads(out))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q: B, Nq, C; k, v: B, Nk, C_kv  ->  B, Nq, C"""
        q = self.split_heads(self.q_proj(q))
        k = self.split_heads(self.k_proj(k))
        v = self.split_heads(self.v_proj(v))
        return self.attend(q, k, v)


BF16_CPU_QUERY_CHUNK = 512
_FAST_BF16_CPU: ContextVar[bool] = ContextVar("fast_bf16_cpu_attention", default=False)


@contextmanager
def fast_bf16_cpu_attention(enabled: bool = True) -> Iterator[None]:
    """Within this context (this thread), bf16 attention on the CPU uses `bf16_cpu_attention`.

    Off by default: plain ``torch.autocast`` then runs the same fused kernel as the official implementation
    (its bf16 outputs are matched within 1e-3); the engine's bf16 mode switches it on for speed, at the cost
    of bf16-rounded attention scores (masks stay within IoU 0.98 of fp32).
    """
    token = _FAST_BF16_CPU.set(enabled)
    try:
        yield
    finally:
        _FAST_BF16_CPU.reset(token)


def bf16_cpu_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Scaled dot-product attention for bf16 on the CPU: ..., Nq, c  ->  ..., Nq, c_v.

    PyTorch's fused CPU kernel runs bf16 no faster than fp32; two bf16 matrix products (the CPU's bf16
    units) around a softmax taken in fp32 run about twice as fast. Queries go in chunks, so the score
    matrix held at once is ``chunk x Nk``.
    """
    q = q * q.shape[-1] ** -0.5
    k_t = k.transpose(-2, -1)
    out = q.new_empty((*q.shape[:-1], v.shape[-1]))
    for start in range(0, q.shape[-2], BF16_CPU_QUERY_CHUNK):
        part = slice(start, start + BF16_CPU_QUERY_CHUNK)
        # The CPU's bf16 softmax accumulates in fp32; only its input and output are rounded to bf16.
        weights = torch.softmax(torch.matmul(q[..., part, :], k_t), dim=-1)
        out[..., part, :] = torch.matmul(weights, v)
    return out
