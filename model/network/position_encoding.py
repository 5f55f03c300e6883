"""Fixed sinusoidal position encodings (2-D for feature maps, 1-D for object-pointer offsets)."""

from __future__ import annotations

import math

import torch
from torch import nn


def _frequencies(num_feats: int, temperature: float, device: torch.device) -> torch.Tensor:
    # Channel pairs (2k, 2k+1) share one frequency: temperature ** (2k / num_feats).
    idx = torch.arange(num_feats, dtype=torch.float32, device=device)
    return temperature ** (2 * torch.div(idx, 2, rounding_mode="floor") / num_feats)


def _interleave_sin_cos(angles: torch.Tensor) -> torch.Tensor:
    # angles: ..., F  ->  ..., F  with even channels sin(a_even) and odd channels cos(a_odd)
    return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=-1).flatten(-2)


class SinePositionEncoding2d(nn.Module):
    """Normalised 2-D sine/cosine encoding of a feature map's grid, ``num_pos_feats`` channels.

    The first half of the channels encodes the row (y), the second half the column (x). Positions run
    1..H and 1..W, scaled to (0, 2*pi]. Results are cached per (H, W, device); the module has no weights.
    """

    def __init__(self, num_pos_feats: int, temperature: float = 10000.0) -> None:
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError("num_pos_feats must be even")
        self.half = num_pos_feats // 2
        self.temperature = temperature
        self._cache: dict[tuple[int, int, str], torch.Tensor] = {}

    @torch.no_grad()
    def grid(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """Encoding of an ``height x width`` grid: ``num_pos_feats, H, W`` (fp32)."""
        key = (height, width, str(device))
        if key not in self._cache:
            scale, eps = 2 * math.pi, 1e-6
            ys = torch.arange(1, height + 1, dtype=torch.float32, device=device)
            xs = torch.arange(1, width + 1, dtype=torch.float32, device=device)
            ys = ys / (ys[-1] + eps) * scale
            xs = xs / (xs[-1] + eps) * scale
            freqs = _frequencies(self.half, self.temperature, device)
            enc_y = _interleave_sin_cos(ys[:, None] / freqs)  # H, half
            enc_x = _interleave_sin_cos(xs[:, None] / freqs)  # W, half
            enc = torch.cat(
                (
                    enc_y[:, None, :].expand(height, width, self.half),
                    enc_x[None, :, :].expand(height, width, self.half),
                ),
                dim=-1,
            )  # H, W, C
            self._cache[key] = enc.permute(2, 0, 1).contiguous()
        return self._cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: B, *, H, W  ->  B, num_pos_feats, H, W in ``x``'s dtype."""
        batch, height, width = x.shape[0], x.shape[-2], x.shape[-1]
        enc = self.grid(height, width, x.device)
        return enc[None].expand(batch, -1, -1, -1).to(x.dtype)


def sine_encoding_1d(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """1-D sine encoding: ``positions`` (...,) -> (..., dim) laid out as [sin | cos], not interleaved."""
    half = dim // 2
    angles = positions.float().unsqueeze(-1) / _frequencies(half, temperature, positions.device)
    return torch.cat((angles.sin(), angles.cos()), dim=-1)
