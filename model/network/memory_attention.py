"""Memory attention: conditions the current frame's image tokens on the memory bank.

A stack of pre-norm layers (self-attention, cross-attention to memory, feed-forward), all attention with
axial RoPE. Parameter names follow the official checkpoints (``memory_attention.*``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.network.attention import Attention
from model.network.rope import AxialRoPE


class RoPEAttention(Attention):
    """``Attention`` whose per-head queries and keys are rotated by axial RoPE before the product.

    ``rope_k_repeat`` lets the keys cover several frames of the query grid (cross-attention to memory).
    Adds no parameters to ``Attention``.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: int | None = None,
        rope_theta: float = 10000.0,
        rope_k_repeat: bool = False,
    ) -> None:
        super().__init__(embedding_dim, num_heads, downsample_rate, dropout, kv_in_dim)
        self.rope = AxialRoPE(self.internal_dim // num_heads, rope_theta)
        self.rope_k_repeat = rope_k_repeat

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_k_exclude_rope: int = 0
    ) -> torch.Tensor:
        """q: B, Nq, C; k, v: B, Nk, C_kv  ->  B, Nq, C; the last ``num_k_exclude_rope`` keys skip RoPE."""
        num_q, num_rot = q.shape[-2], k.shape[-2] - num_k_exclude_rope
        if num_rot > 0 and num_rot != num_q and not self.rope_k_repeat:
            raise ValueError(f"{num_rot} rotated keys do not match {num_q} queries (key repetition is off)")
        k, v = self.project_memory(k, v, num_q, num_k_exclude_rope)
        return self.attend_to_projected(q, k, v)

    def project_memory(
        self, k: torch.Tensor, v: torch.Tensor, grid_tokens: int, num_k_exclude: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of memory tokens, projected and split into heads: B, heads, N, c each.

        The keys are rotated by RoPE as frames of ``grid_tokens`` tokens (the queries' grid), all but the
        last ``num_k_exclude`` (object pointers). ``forward`` goes through here too, so keys and values
        projected ahead of the call (tracking does) are the very ones it would compute.
        """
        k = self.split_heads(self.k_proj(k))
        v = self.split_heads(self.v_proj(v))
        return self.rope.rotate_keys(k, grid_tokens, num_k_exclude), v

    def rotated_key_offset(self, offset: torch.Tensor, num_tokens: int) -> torch.Tensor:
        """What adding ``offset`` (C_kv,) to every token of a memory frame adds to its rotated keys:
        1, heads, num_tokens, c. The key projection and the rotation are linear, so
        ``keys(x + offset) = keys(x) + rotated_key_offset(offset)``."""
        shifted = F.linear(offset, self.k_proj.weight)  # inner; no bias: keys(x) already has it
        grid = shifted.expand(1, num_tokens, shifted.shape[-1])
        return self.rope.rotate(self.split_heads(grid))

    def attend_to_projected(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q: B, Nq, C; k, v: B, heads, Nk, c already projected and rotated (`project_memory`) -> B, Nq, C."""
        q = self.rope.rotate(self.split_heads(self.q_proj(q)))
        return self.attend(q, k.to(q.dtype), v.to(q.dtype))


class MemoryAttentionLayer(nn.Module):
    """One pre-norm layer: RoPE self-attention, RoPE cross-attention to memory, ReLU feed-forward.

    Positions enter only as RoPE inside both attentions and as ``memory_pos`` added to the memory keys.
    """

    def __init__(
        self,
        d_model: int = 256,
        num_heads: int = 1,
        dim_feedforward: int = 2048,
        memory_dim: int = 64,
        dropout: float = 0.1,
        rope_theta: float = 10000.0,
    ) -> None:
        super().__init__()
        self.self_attn = RoPEAttention(d_model, num_heads, dropout=dropout, rope_theta=rope_theta)
        self.cross_attn_image = RoPEAttention(
            d_model,
            num_heads,
            dropout=dropout,
            kv_in_dim=memory_dim,
            rope_theta=rope_theta,
            rope_k_repeat=True,
        )
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        num_obj_ptr_tokens: int = 0,
        memory_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """x: B, HW, C; memory, memory_pos: B, M, C_mem  ->  B, HW, C

        ``memory_kv``: this layer's memory keys and values already projected and rotated (B, heads, M, c
        each; see `RoPEAttention.project_memory`); ``memory`` and ``memory_pos`` are then not read.
        """
        h = self.norm1(x)
        x = x + self.dropout1(self.self_attn(h, h, h))
        h = self.norm2(x)
        if memory_kv is not None:
            attn = self.cross_attn_image.attend_to_projected(h, *memory_kv)
        else:
            attn = self.cross_attn_image(
                h, memory + memory_pos, memory, num_k_exclude_rope=num_obj_ptr_tokens
            )
        x = x + self.dropout2(attn)
        h = self.linear2(self.dropout(F.relu(self.linear1(self.norm3(x)))))
        return x + self.dropout3(h)


class MemoryAttention(nn.Module):
    """The memory-attention stack of SAM 2; the defaults are the configuration of all eight checkpoints.

    Inputs and output are sequence-first, as the tracking step keeps them. The trailing
    ``num_obj_ptr_tokens`` memory tokens are object pointers (no spatial position, hence no RoPE).
    """

    def __init__(
        self,
        d_model: int = 256,
        num_layers: int = 4,
        num_heads: int = 1,
        dim_feedforward: int = 2048,
        memory_dim: int = 64,
        dropout: float = 0.1,
        rope_theta: float = 10000.0,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.layers = nn.ModuleList(
            MemoryAttentionLayer(d_model, num_heads, dim_feedforward, memory_dim, dropout, rope_theta)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self,
        curr: torch.Tensor,
        curr_pos: torch.Tensor,
        memory: torch.Tensor | None,
        memory_pos: torch.Tensor | None,
        num_obj_ptr_tokens: int = 0,
        memory_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """Attend the current frame to its memory.

        Arguments:
            curr: HW, B, d_model image tokens of the current frame.
            curr_pos: HW, B, d_model their sine position encoding.
            memory: M, B, memory_dim memory tokens (spatial frames first, object pointers last).
            memory_pos: M, B, memory_dim their position encodings.
            num_obj_ptr_tokens: how many trailing memory tokens are object pointers.
            memory_kv: instead of ``memory`` and ``memory_pos``, each layer's cross-attention keys and
                values already projected and rotated (B, heads, M, c each), e.g. assembled from parts
                projected once per memory frame (`model.video.memory_cache`).
        Returns:
            HW, B, d_model conditioned tokens.
        """
        x = (curr + 0.1 * curr_pos).transpose(0, 1)  # B, HW, C
        if memory_kv is not None:
            if len(memory_kv) != len(self.layers):
                raise ValueError(f"memory_kv has {len(memory_kv)} layers, the stack has {len(self.layers)}")
            if memory_kv[0][0].shape[0] != x.shape[0]:
                raise ValueError(
                    f"current tokens have batch {x.shape[0]}, memory has {memory_kv[0][0].shape[0]}"
                )
            for layer, kv in zip(self.layers, memory_kv):
                x = layer(x, None, None, memory_kv=kv)
            return self.norm(x).transpose(0, 1)  # HW, B, C
        if curr.shape[1] != memory.shape[1]:
            raise ValueError(f"current tokens have batch {curr.shape[1]}, memory has {memory.shape[1]}")
        # The memory bank is stored in bf16; without this cast an fp32 model fails with a dtype mismatch
        # (the official code does). bf16 -> fp32 is exact, so fp32 results are unchanged.
        memory = memory.to(curr.dtype)
        memory_pos = memory_pos.to(curr.dtype)
        memory = memory.transpose(0, 1)  # B, M, C_mem
        memory_pos = memory_pos.transpose(0, 1)
        for layer in self.layers:
            x = layer(x, memory, memory_pos, num_obj_ptr_tokens)
        return self.norm(x).transpose(0, 1)  # HW, B, C
