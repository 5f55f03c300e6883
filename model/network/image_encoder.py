"""Image encoder: Hiera trunk followed by the FPN neck, minus the coarsest level(s)."""

from __future__ import annotations

import torch
from torch import nn

from model.network.hiera import Hiera
from model.network.neck import FpnNeck


class ImageEncoder(nn.Module):
    """Compose ``trunk`` and ``neck``; ``scalp`` coarsest levels are dropped from the outputs.

    ``forward(x: B, 3, H, W)`` returns ``(features, pos)``, both ordered high-res first. With the default
    ``scalp=1`` these are the stride 4, 8 and 16 maps (``B, d_model, H/s, W/s``); ``features[-1]`` is the
    image embedding and the two finer maps feed the mask decoder's high-resolution path.
    """

    def __init__(self, trunk: Hiera, neck: FpnNeck, scalp: int = 1) -> None:
        super().__init__()
        if tuple(trunk.channel_list) != tuple(neck.backbone_channel_list):
            raise ValueError(
                f"trunk widths {tuple(trunk.channel_list)} do not match the neck's "
                f"{tuple(neck.backbone_channel_list)}"
            )
        self.trunk = trunk
        self.neck = neck
        self.scalp = scalp

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        features, pos = self.neck(self.trunk(x))
        if self.scalp > 0:
            features, pos = features[: -self.scalp], pos[: -self.scalp]
        return features, pos
