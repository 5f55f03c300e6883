"""Feature-pyramid neck: projects every trunk level to ``d_model`` channels and adds top-down context."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from model.network.position_encoding import SinePositionEncoding2d


class FpnNeck(nn.Module):
    """A light FPN without output convolutions.

    Arguments:
        d_model: output width of every level.
        backbone_channel_list: trunk widths, deepest level first; ``convs.i`` projects that level.
        position_encoding: sine encoding evaluated on every output map.
        fpn_top_down_levels: indices (0 = highest resolution) of the levels that receive the upsampled
            coarser level; the others keep only their lateral projection.

    ``forward`` takes the trunk outputs high-res first and returns ``(features, pos)``, high-res first.
    """

    def __init__(
        self,
        d_model: int,
        backbone_channel_list: tuple[int, ...],
        position_encoding: SinePositionEncoding2d,
        fpn_top_down_levels: tuple[int, ...] = (2, 3),
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.backbone_channel_list = tuple(backbone_channel_list)
        self.position_encoding = position_encoding
        self.fpn_top_down_levels = tuple(fpn_top_down_levels)
        # The checkpoints name each 1x1 projection "convs.i.conv".
        self.convs = nn.ModuleList(
            nn.Sequential(OrderedDict(conv=nn.Conv2d(c, d_model, kernel_size=1)))
            for c in self.backbone_channel_list
        )

    def forward(self, xs: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if len(xs) != len(self.convs):
            raise ValueError(f"expected {len(self.convs)} trunk levels, got {len(xs)}")
        last = len(xs) - 1
        features: list[torch.Tensor] = [torch.empty(0)] * len(xs)
        pos: list[torch.Tensor] = [torch.empty(0)] * len(xs)
        coarser = None
        for level in range(last, -1, -1):  # coarse to fine
            lateral = self.convs[last - level](xs[level])  # B, d_model, h, w
            if coarser is not None and level in self.fpn_top_down_levels:
                # Upsampled in fp32 even under autocast; the sum then stays fp32, as in the checkpoints' code.
                up = F.interpolate(coarser.float(), scale_factor=2.0, mode="nearest")
                coarser = lateral + up
            else:
                coarser = lateral
            features[level] = coarser
            pos[level] = self.position_encoding(coarser)
        return features, pos
