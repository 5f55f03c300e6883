"""Axial 2-D rotary position encoding (RoPE) over a square grid of image tokens.

Each head's channels are read as complex numbers made of adjacent pairs ``(2i, 2i+1)``. The first half of
those pairs is rotated by the token's column (x), the second half by its row (y); pair ``j`` of either half
turns at the rate ``theta ** -(4j / head_dim)``. Tokens are laid out row-major (index = y * width + x).
"""

from __future__ import annotations

import math

import torch


def axial_rope_angles(head_dim: int, width: int, height: int, theta: float = 10000.0) -> torch.Tensor:
    """Rotation angles of a ``width x height`` grid: ``width * height, head_dim // 2`` (fp32, CPU).

    Column ``j < head_dim // 4`` is the x angle of pair ``j``; the rest are the y angles.
    """
    if head_dim % 4:
        raise ValueError(f"axial RoPE needs a head width divisible by 4, got {head_dim}")
    rates = 1.0 / theta ** (torch.arange(0, head_dim, 4, dtype=torch.float32) / head_dim)  # head_dim/4
    token = torch.arange(width * height, dtype=torch.float32)
    col = token % width
    row = torch.div(token, width, rounding_mode="floor")
    return torch.cat((torch.outer(col, rates), torch.outer(row, rates)), dim=-1)  # N, head_dim/2


def rotate_pairs(x: torch.Tensor, rotation: torch.Tensor, use_complex: bool = True) -> torch.Tensor:
    """Rotate adjacent channel pairs of ``x`` (..., F * N, D) by ``rotation`` (N, D/2, 2) = (cos, sin).

    The token axis may hold ``F`` consecutive grids (memory frames); each is rotated alike, by broadcasting
    rather than repeating the table. The product is formed in fp32 (bf16 angles drift visibly across a
    64-wide grid) and returned in ``x``'s dtype. ``use_complex=False`` does the same product with real
    arithmetic, for backends whose complex kernels are incomplete (MPS).
    """
    n, half, _ = rotation.shape
    pairs = x.float().unflatten(-1, (half, 2)).unflatten(-3, (-1, n))  # ..., F, N, D/2, 2
    if use_complex:
        out = torch.view_as_real(torch.view_as_complex(pairs) * torch.view_as_complex(rotation))
    else:
        re, im = pairs.unbind(-1)
        cos, sin = rotation.unbind(-1)
        out = torch.stack((re * cos - im * sin, re * sin + im * cos), dim=-1)
    return out.flatten(-4, -3).flatten(-2).to(x.dtype)


class AxialRoPE:
    """Applies axial RoPE to per-head queries and keys, caching the rotation table per grid and device.

    Not an ``nn.Module`` on purpose: it holds no weights and must add nothing to the state dict. The grid
    side is recomputed from the number of query tokens, so any square feature map works (64x64 at 1024
    input, 16x16 at 256).
    """

    def __init__(self, head_dim: int, theta: float = 10000.0) -> None:
        self.head_dim = head_dim
        self.theta = theta
        self._tables: dict[tuple[int, str], torch.Tensor] = {}

    def table(self, num_tokens: int, device: torch.device) -> torch.Tensor:
        """Rotations ``num_tokens, head_dim // 2, 2`` as (cos, sin) pairs in fp32 for a square grid.

        Kept real so every backend can hold it; the complex path views it as complex64 for free.
        """
        key = (num_tokens, str(device))
        if key not in self._tables:
            side = math.isqrt(num_tokens)
            if side * side != num_tokens:
                raise ValueError(f"axial RoPE expects a square token grid, got {num_tokens} tokens")
            angles = axial_rope_angles(self.head_dim, side, side, self.theta)
            # Built on the CPU with torch.polar, as the official table is, so every device rotates by the
            # official bits. Tensor.cos/sin (vectorised, within 1 ulp) differ from polar's per-element cos/sin
            # in about 4% of the entries: harmless in fp32, but under bf16 autocast the rotated queries and
            # keys are rounded to bf16, where a 1-ulp fp32 difference flips a rounding to a whole bf16 ulp,
            # and tracking amplifies that (measured: 0.007 off after memory attention, 0.48 logit later).
            rotation = torch.polar(torch.ones_like(angles), angles)
            self._tables[key] = torch.view_as_real(rotation).to(device)
        return self._tables[key]

    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate ``x`` (..., N, c) whose N tokens are one square grid (queries, or one memory frame)."""
        return rotate_pairs(x, self.table(x.shape[-2], x.device), x.device.type != "mps")

    def rotate_keys(self, k: torch.Tensor, grid_tokens: int, num_exclude: int = 0) -> torch.Tensor:
        """Rotate all but the last ``num_exclude`` keys of ``k`` (..., Nk, c): frames of ``grid_tokens``
        tokens (one square grid each, frame-major), each rotated like a grid of queries. The excluded keys
        (object pointers) have no grid position and stay as they are."""
        num_rot = k.shape[-2] - num_exclude
        if num_rot < 0:
            raise ValueError(f"cannot exclude {num_exclude} of {k.shape[-2]} keys from RoPE")
        if num_rot == 0:
            return k
        if num_rot % grid_tokens:  # not divmod: torch.compile traces these as symbols
            raise ValueError(f"{num_rot} rotated keys are not frames of {grid_tokens} tokens")
        k_rot = rotate_pairs(k[..., :num_rot, :], self.table(grid_tokens, k.device), k.device.type != "mps")
        if num_exclude:
            k_rot = torch.cat((k_rot, k[..., num_rot:, :]), dim=-2)
        return k_rot

    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        repeat_k: bool = False,
        num_k_exclude: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotate ``q`` (B, heads, Nq, c) and all but the last ``num_k_exclude`` keys (B, heads, Nk, c).

        With ``repeat_k`` the rotated keys may span several grids (one per memory frame, frame-major), each
        rotated like the queries (`rotate_keys`); without it they must be one grid like the queries.
        """
        num_q = q.shape[-2]
        num_rot = k.shape[-2] - num_k_exclude
        if num_rot > 0 and num_rot != num_q and not repeat_k:
            raise ValueError(f"{num_rot} rotated keys do not match {num_q} queries (key repetition is off)")
        return self.rotate(q), self.rotate_keys(k, num_q, num_k_exclude)
