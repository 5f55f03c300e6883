"""Hiera trunk: a hierarchical vision transformer with windowed attention and query pooling.

Four stages at strides 4, 8, 16 and 32. The first block of stages 2-4 max-pools its queries (and its
residual), halving the grid while doubling the width and the number of heads. Most blocks attend inside
non-overlapping windows; a few chosen blocks attend globally.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from model.network.blocks import MLP


def window_partition(x: torch.Tensor, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Cut ``B, H, W, C`` into ``B * nW, size, size, C`` windows, zero-padding bottom/right first.

    Returns the windows and the padded grid ``(Hp, Wp)``. The padding is not masked in attention: the
    checkpoints were trained that way, so the zeros take part as keys.
    """
    b, h, w, c = x.shape
    pad_h, pad_w = -h % size, -w % size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // size, size, wp // size, size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, size, size, c), (hp, wp)


def window_merge(
    windows: torch.Tensor, size: int, padded_hw: tuple[int, int], hw: tuple[int, int]
) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``B * nW, size, size, C`` -> ``B, H, W, C`` without padding."""
    hp, wp = padded_hw
    h, w = hw
    rows, cols = hp // size, wp // size
    b = windows.shape[0] // (rows * cols)
    x = windows.reshape(b, rows, cols, size, size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, :h, :w, :] if (hp > h or wp > w) else x


def max_pool_hw(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Max-pool a channels-last ``B, H, W, C`` map by ``stride`` (floor mode)."""
    x = F.max_pool2d(x.permute(0, 3, 1, 2), kernel_size=stride, stride=stride)
    return x.permute(0, 2, 3, 1)


class PatchEmbed(nn.Module):
    """Strided 7x7 convolution from RGB to the first stage's width; output is channels-last."""

    def __init__(self, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # B, H/4, W/4, C


class PooledAttention(nn.Module):
    """Multi-head self-attention on a ``B, H, W, C`` map whose queries may be max-pooled by ``q_stride``.

    Pooling only the queries is what makes the output grid smaller than the input grid at a stage change.
    """

    def __init__(self, dim: int, dim_out: int, num_heads: int, q_stride: int | None = None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_stride = q_stride
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        # The fused projection is laid out as (q|k|v, head, head_dim).
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1)
        q, k, v = qkv.unbind(2)  # B, HW, heads, d
        if self.q_stride:
            q = max_pool_hw(q.reshape(b, h, w, -1), self.q_stride)  # B, H', W', heads*d
            h, w = q.shape[1:3]
            q = q.reshape(b, h * w, self.num_heads, -1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        out = out.transpose(1, 2).reshape(b, h, w, -1)  # B, H', W', dim_out
        return self.proj(out)


class HieraBlock(nn.Module):
    """Pre-norm transformer block on a channels-last map: (windowed) attention, then a GELU MLP.

    ``window_size`` 0 means global attention. With ``q_stride`` the block halves the grid; with
    ``dim != dim_out`` the residual goes through ``proj`` (applied to the normalised input) and the pool.
    """

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        window_size: int = 0,
        q_stride: int | None = None,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.q_stride = q_stride
        self.changes_dim = dim != dim_out
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = PooledAttention(dim, dim_out, num_heads, q_stride)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, num_layers=2, activation=nn.GELU)
        if self.changes_dim:
            self.proj = nn.Linear(dim, dim_out)
        self.drop_path = 0.0  # stochastic depth in training (`Hiera.set_drop_path`); 0 at inference

    def _dropped(self, branch: torch.Tensor) -> torch.Tensor:
        """Stochastic depth: in training, the residual branch of each image is dropped with probability
        ``drop_path`` and the kept ones scaled up, so the expected output is unchanged."""
        if not self.training or self.drop_path == 0.0:
            return branch
        keep = 1.0 - self.drop_path
        mask = branch.new_empty((branch.shape[0],) + (1,) * (branch.ndim - 1)).bernoulli_(keep)
        return branch * mask.div_(keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: B, H, W, C
        normed = self.norm1(x)
        shortcut = x
        if self.changes_dim:
            shortcut = self.proj(normed)
            if self.q_stride:
                shortcut = max_pool_hw(shortcut, self.q_stride)
        out_hw = shortcut.shape[1:3]  # H', W' after any pooling

        size = self.window_size
        if size:
            normed, _ = window_partition(normed, size)  # B*nW, size, size, C
        y = self.attn(normed)
        if size:
            # Pooled queries shrink each window; the padded grid is recomputed for the smaller window.
            out_size = size // self.q_stride if self.q_stride else size
            padded = (out_hw[0] + (-out_hw[0] % out_size), out_hw[1] + (-out_hw[1] % out_size))
            y = window_merge(y, out_size, padded, out_hw)  # B, H', W', C'

        x = shortcut + self._dropped(y)
        return x + self._dropped(self.mlp(self.norm2(x)))


class Hiera(nn.Module):
    """The Hiera image trunk used by SAM 2.

    Arguments:
        embed_dim: width of the first stage (doubles at each stage change).
        num_heads: heads of the first stage (doubles at each stage change).
        stages: blocks per stage (four stages).
        global_att_blocks: indices of blocks that attend over the whole map.
        window_spec: window size per stage.
        window_pos_embed_bkg_spatial_size: grid of the learnt background position embedding.

    ``forward`` maps ``B, 3, H, W`` to four channels-first maps at strides 4, 8, 16, 32 with widths
    ``C, 2C, 4C, 8C`` (high resolution first). ``channel_list`` lists those widths deepest first.
    `set_activation_checkpointing` trades compute for memory in training (off by default); `set_drop_path`
    turns on stochastic depth for training.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        stages: tuple[int, ...],
        global_att_blocks: tuple[int, ...],
        window_spec: tuple[int, ...] = (8, 4, 14, 7),
        window_pos_embed_bkg_spatial_size: tuple[int, int] = (14, 14),
        q_pool: int = 3,
        q_stride: tuple[int, int] = (2, 2),
        dim_mul: float = 2.0,
        head_mul: float = 2.0,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if len(stages) != len(window_spec):
            raise ValueError("stages and window_spec need one entry per stage")
        if q_stride[0] != q_stride[1]:
            raise ValueError("only square query strides are supported")
        self.patch_embed = PatchEmbed(embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *window_pos_embed_bkg_spatial_size))
        self.pos_embed_window = nn.Parameter(torch.zeros(1, embed_dim, window_spec[0], window_spec[0]))

        stage_of = [s for s, n in enumerate(stages) for _ in range(n)]
        self.stage_ends = [sum(stages[: s + 1]) - 1 for s in range(len(stages))]
        dim, heads = embed_dim, num_heads
        self.blocks = nn.ModuleList()
        for i, stage in enumerate(stage_of):
            starts_stage = i > 0 and stage != stage_of[i - 1]
            dim_out = int(dim * dim_mul) if starts_stage else dim
            if starts_stage:
                heads = int(heads * head_mul)
            # A stage's first block still uses the previous stage's window (it pools inside it).
            window = 0 if i in global_att_blocks else window_spec[stage_of[max(i - 1, 0)]]
            pools = starts_stage and stage <= q_pool
            self.blocks.append(
                HieraBlock(dim, dim_out, heads, window, q_stride[0] if pools else None, mlp_ratio)
            )
            dim = dim_out
        widths = [self.blocks[end].attn.proj.out_features for end in self.stage_ends]
        self.channel_list = tuple(reversed(widths))  # deepest first, as the neck lists them
        self.activation_checkpointing = False

    def set_activation_checkpointing(self, enabled: bool = True) -> None:
        """Run each block under ``torch.utils.checkpoint`` while gradients are recorded.

        The block's inner activations are then recomputed in the backward pass instead of being kept, which
        is most of the encoder's training memory. Outputs and gradients are the same either way.
        """
        self.activation_checkpointing = enabled

    def set_drop_path(self, rate: float) -> None:
        """Stochastic depth for training: block ``i`` of ``n`` drops its residual branches with probability
        ``rate * i / (n - 1)`` (0 for the first block), as the official trunk's ``drop_path_rate``."""
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"the drop-path rate must be in [0, 1), got {rate}")
        count = len(self.blocks)
        for i, block in enumerate(self.blocks):
            block.drop_path = rate * i / (count - 1) if count > 1 else rate

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """Background embedding resized (bicubic) to ``h x w`` plus the window embedding tiled over it."""
        bkg = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")  # 1, C, h, w
        win = self.pos_embed_window
        reps = (1, 1, h // win.shape[-2], w // win.shape[-1])
        return (bkg + win.tile(reps)).permute(0, 2, 3, 1)  # 1, h, w, C

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)  # B, H/4, W/4, C
        x = x + self.position_embedding(x.shape[1], x.shape[2])
        recompute = self.activation_checkpointing and torch.is_grad_enabled()
        outputs = []
        for i, block in enumerate(self.blocks):
            x = checkpoint(block, x, use_reentrant=False) if recompute else block(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))  # B, C_s, H_s, W_s
        return outputs
