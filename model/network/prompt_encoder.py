"""Prompt encoder: points, boxes and low-res masks to the decoder's sparse and dense embeddings."""

from __future__ import annotations

import math

import torch
from torch import nn

from model.network.blocks import LayerNorm2d


class RandomFourierEncoding(nn.Module):
    """Encode 2-D positions with a fixed random Gaussian projection followed by sin and cos.

    Output has ``2 * num_feats`` channels: the sines of all projections, then their cosines.
    The projection matrix is the buffer ``positional_encoding_gaussian_matrix`` (2, num_feats).
    """

    def __init__(self, num_feats: int = 64) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, num_feats))

    def encode_unit(self, xy: torch.Tensor) -> torch.Tensor:
        """xy in [0, 1]: ..., 2  ->  ..., 2 * num_feats"""
        angles = (2 * xy - 1) @ self.positional_encoding_gaussian_matrix
        angles = 2 * math.pi * angles
        return torch.cat([angles.sin(), angles.cos()], dim=-1)

    def grid(self, height: int, width: int) -> torch.Tensor:
        """Encoding of the cell centres of a ``height x width`` grid: C, H, W."""
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
        xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
        xy = torch.stack(torch.broadcast_tensors(xs[None, :], ys[:, None]), dim=-1)  # H, W, 2
        return self.encode_unit(xy).permute(2, 0, 1)

    def encode_pixels(self, coords: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """coords in input-image pixels (x, y): B, N, 2 with image_size (H, W)  ->  B, N, C"""
        h, w = image_size
        scale = torch.tensor([w, h], device=coords.device, dtype=coords.dtype)
        return self.encode_unit((coords / scale).float())


class PromptEncoder(nn.Module):
    """Turns SAM prompts into tokens (points, box corners) and a dense map (mask prompt).

    Point labels: 1 positive click, 0 negative click, 2 / 3 box top-left / bottom-right corner,
    -1 padding (its position is ignored). Coordinates are pixels of the ``input_image_size`` frame.
    """

    def __init__(
        self,
        embed_dim: int = 256,
        image_embedding_size: tuple[int, int] = (64, 64),
        input_image_size: tuple[int, int] = (1024, 1024),
        mask_in_chans: int = 16,
        activation: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = tuple(image_embedding_size)
        self.input_image_size = tuple(input_image_size)
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.pe_layer = RandomFourierEncoding(embed_dim // 2)

        # One learned vector per label 0..3, plus one that replaces padding points entirely.
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)

        # Mask prompts come at 4x the embedding resolution; two stride-2 convs bring them down.
        quarter = mask_in_chans // 4
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, quarter, kernel_size=2, stride=2),
            LayerNorm2d(quarter),
            activation(),
            nn.Conv2d(quarter, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            activation(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """Position encoding of every image-embedding cell: 1, C, h, w."""
        return self.pe_layer.grid(*self.image_embedding_size).unsqueeze(0)

    def _label_table(self) -> torch.Tensor:
        # Rows: label -1, 0, 1, 2, 3, then a zero row for any other label (left as plain PE).
        rows = [self.not_a_point_embed.weight] + [e.weight for e in self.point_embeddings]
        rows.append(torch.zeros_like(rows[0]))
        return torch.cat(rows, dim=0)  # 6, C

    def _embed_points(self, coords: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        coords = coords + 0.5  # pixel centres
        if pad:
            # Without a box the decoder was trained to see one trailing padding token.
            b = coords.shape[0]
            coords = torch.cat([coords, coords.new_zeros(b, 1, 2)], dim=1)
            labels = torch.cat([labels, -labels.new_ones(b, 1)], dim=1)
        pe = self.pe_layer.encode_pixels(coords, self.input_image_size)  # B, N, C
        is_pad = (labels == -1).unsqueeze(-1)
        pe = torch.where(is_pad, torch.zeros_like(pe), pe)
        row = labels.long() + 1
        row = torch.where((row < 0) | (row > 4), torch.full_like(row, 5), row)
        return pe + self._label_table()[row]

    def _embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        corners = (boxes + 0.5).reshape(-1, 2, 2)  # B, 2 corners, xy
        pe = self.pe_layer.encode_pixels(corners, self.input_image_size)
        corner_embed = torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight], dim=0)
        return pe + corner_embed

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed any combination of prompts.

        Arguments:
            points: (coords B, N, 2 in pixels (x, y), labels B, N) or None.
            boxes: B, 4 as x0, y0, x1, y1 in pixels, or None.
            masks: B, 1, 4h, 4w mask logits, or None.
        Returns:
            sparse: B, N', C tokens (points, a padding token when there is no box, then box corners);
                B, 0, C without points or boxes (B = 1 when there is no prompt at all).
            dense: B, C, h, w.
        """
        if points is not None:
            batch = points[0].shape[0]
        elif boxes is not None:
            batch = boxes.shape[0]
        elif masks is not None:
            batch = masks.shape[0]
        else:
            batch = 1
        device = self.no_mask_embed.weight.device

        tokens = [torch.empty(batch, 0, self.embed_dim, device=device)]
        if points is not None:
            tokens.append(self._embed_points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            tokens.append(self._embed_boxes(boxes))
        sparse = torch.cat(tokens, dim=1)

        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            h, w = self.image_embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, h, w)
        return sparse, dense
