"""Memory encoder: fuses a frame's image features with its predicted mask into memory tokens.

Parameter names follow the official checkpoints (``memory_encoder.*``).
"""

from __future__ import annotations

import torch
from torch import nn

from model.network.blocks import LayerNorm2d
from model.network.position_encoding import SinePositionEncoding2d


class MaskDownSampler(nn.Module):
    """Reduces a ``B, 1, H, W`` mask to ``B, embed_dim, H / total_stride, W / total_stride``.

    Each stage is a strided conv that multiplies the channels by ``stride ** 2`` (1 -> 4 -> 16 -> 64 -> 256
    for the official stride 2 over 16), then LayerNorm2d and GELU; a 1x1 conv ends the stack. The layers sit
    in one ``nn.Sequential`` because the checkpoint keys index it (``encoder.0`` ... ``encoder.12``).
    """

    def __init__(
        self,
        embed_dim: int = 256,
        kernel_size: int = 3,
        stride: int = 2,
        padding: int = 1,
        total_stride: int = 16,
    ) -> None:
        super().__init__()
        num_stages = 0
        while stride**num_stages < total_stride:
            num_stages += 1
        if stride**num_stages != total_stride:
            raise ValueError(f"total_stride {total_stride} is not a power of stride {stride}")
        layers: list[nn.Module] = []
        channels = 1
        for _ in range(num_stages):
            wider = channels * stride**2
            layers += [
                nn.Conv2d(channels, wider, kernel_size, stride=stride, padding=padding),
                LayerNorm2d(wider),
                nn.GELU(),
            ]
            channels = wider
        layers.append(nn.Conv2d(channels, embed_dim, kernel_size=1))
        self.encoder = nn.Sequential(*layers)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(mask)


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise conv, channel LayerNorm, pointwise MLP (x4, GELU), layer-scale, residual."""

    def __init__(
        self,
        dim: int = 256,
        kernel_size: int = 7,
        padding: int = 3,
        layer_scale_init_value: float = 1e-6,
    ) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=padding, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        # The pointwise convs are Linear layers on channels-last tensors: the checkpoint stores them so.
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale_init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)  # B, H, W, C
        h = self.gamma * self.pwconv2(self.act(self.pwconv1(h)))
        return x + h.permute(0, 3, 1, 2)  # B, C, H, W


class Fuser(nn.Module):
    """A stack of ``CXBlock``s over the mask-augmented image features (no input projection)."""

    def __init__(self, dim: int = 256, num_layers: int = 2) -> None:
        super().__init__()
        self.proj = nn.Identity()  # kept for the module tree; the official configs never project here
        self.layers = nn.ModuleList(CXBlock(dim) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """Turns image features and a mask into one memory frame; defaults are the official configuration."""

    def __init__(self, out_dim: int = 64, in_dim: int = 256) -> None:
        super().__init__()
        self.mask_downsampler = MaskDownSampler(embed_dim=in_dim)
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = Fuser(in_dim)
        self.position_encoding = SinePositionEncoding2d(out_dim)
        self.out_proj = nn.Conv2d(in_dim, out_dim, kernel_size=1) if out_dim != in_dim else nn.Identity()

    def forward(
        self, pix_feat: torch.Tensor, masks: torch.Tensor, skip_mask_sigmoid: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode one memory frame.

        Arguments:
            pix_feat: B, in_dim, h, w raw backbone features of the frame (stride 16).
            masks: B, 1, 16h, 16w mask logits, or probabilities with ``skip_mask_sigmoid``.
            skip_mask_sigmoid: the masks are already in [0, 1] (or scaled by the caller).
        Returns:
            ``features`` B, out_dim, h, w and their sine position encoding ``pos`` B, out_dim, h, w.
        """
        if not skip_mask_sigmoid:
            # Probabilities look like the binary masks the encoder was trained on.
            masks = torch.sigmoid(masks)
        masks = self.mask_downsampler(masks)  # B, in_dim, h, w
        # Offloaded features may still be on the CPU.
        x = self.pix_feat_proj(pix_feat.to(masks.device)) + masks
        x = self.out_proj(self.fuser(x))  # B, out_dim, h, w
        return x, self.position_encoding(x)
