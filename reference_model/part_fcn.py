"""The first-stage Part FCN (paper Sec. 3): DeepLab-LargeFOV, 7 part classes.

A VGG-16 LargeFOV body (atrous fc6, output stride 8) and DeepLab's ``fc8``: a 1x1
classifier to the 7 classes, initialised as DeepLab does (Gaussian, std 0.01). The logits
stay at stride 8, where the second stage works on them; :func:`upsample` is DeepLab's
bilinear x8 interpolation to the crop, used by the loss and by the final argmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pascal_person_pose import schema

from .backbones import build_backbone
from .config import PartConfig

STRIDE = 8


class PartFCN(nn.Module):
    """``forward(images (B, 3, H, W)) -> logits (B, 7, ceil(H/8), ceil(W/8))``."""

    stride = STRIDE

    def __init__(self, config: PartConfig):
        super().__init__()
        self.backbone = build_backbone(config.backbone)
        if self.backbone.out.stride != STRIDE:
            raise ValueError(f"the Part FCN needs an output-stride-{STRIDE} backbone, "
                             f"not {self.backbone.out.stride}")
        self.fc8 = nn.Conv2d(self.backbone.out.channels, schema.NUM_PARTS, 1)
        nn.init.normal_(self.fc8.weight, std=0.01)
        nn.init.zeros_(self.fc8.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc8(self.backbone(images)[self.backbone.out_name])


def upsample(logits: torch.Tensor, height: int, width: int, stride: int = STRIDE) -> torch.Tensor:
    """Bilinear x``stride`` interpolation of a grid map, cropped to ``height`` x ``width``.

    Scaling by exactly ``stride`` (then cropping the ceil-rounded border) keeps cell ``i``'s
    value at its centre pixel ``i*stride + (stride-1)/2``, the grid convention of
    ``targets.grid_to_pixels``.
    """
    up = F.interpolate(logits, scale_factor=stride, mode="bilinear", align_corners=False)
    return up[..., :height, :width]
