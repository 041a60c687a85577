"""The Pose FCN (paper Sec. 3; DeeperCut's network): joint scores and neighbour offsets.

On a ResNet (DeeperCut: ResNet-101 with res5 dilated, stride 16) each output is a head of
its own: a 3x3 stride-2 deconvolution of the deepest features plus a 1x1 convolution of the
stride-8 skip (res3b3, torchvision's ``layer2``), summed, so every map has stride 8:

- ``scores``: 14 joint logits (sigmoid -> the paper's Pj);
- ``locref``: 28 location-refinement channels (dx, dy per type, DeeperCut), normalised by
  ``locref_scale``, which place a joint inside its 8-pixel cell;
- ``offsets``: 364 channels, for joint type a and each other type b the (dx, dy) from a
  type-a cell to the same person's type-b joint (the paper's Pn), in the
  channel order of ``reference_model.fcrf.maps``, normalised by the per-pair
  statistics stored in the model's ``offset_mean`` / ``offset_std`` buffers.

:meth:`PoseFCN.decode` undoes the normalisations and returns :class:`PoseMaps` in crop
pixels, the input of joint proposals and of the FCRF.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from pascal_person_pose import schema

from .backbones import build_backbone
from .config import PoseConfig
from .fcrf.maps import NUM_OFFSET_CHANNELS
from .targets import OffsetStats, cell_centres

J = schema.NUM_JOINTS
STRIDE = 8
# Initial score bias: a joint covers ~1% of the cells, so start the sigmoid there.
_SCORE_PRIOR = 0.01


class PoseOutput(NamedTuple):
    scores: torch.Tensor  # (B, 14, h, w) logits
    locref: torch.Tensor | None  # (B, 28, h, w) normalised, None when disabled
    offsets: torch.Tensor  # (B, 364, h, w) normalised


@dataclass
class PoseMaps:
    """The Pose FCN's output for one crop, in crop pixel-centre coordinates.

    ``joints[a, y, x]`` is where cell (y, x) puts a type-a joint (its centre plus the
    location refinement); ``offsets[a, k, y, x]`` is the (dx, dy) from that cell's centre to
    the same person's joint of type ``OTHER_TYPES[a, k]`` (the paper's Pn).
    """

    scores: np.ndarray  # (14, h, w) joint probabilities (Pj)
    joints: np.ndarray  # (14, h, w, 2) x, y
    offsets: np.ndarray  # (14, 13, h, w, 2) dx, dy
    stride: int


class SkipHead(nn.Module):
    """Upsample the deep features to the skip's stride and add a 1x1 projection of the skip.

    Upsampling by ``factor`` is a (2f-1)x(2f-1) transposed convolution (3x3 stride 2 for
    DeeperCut); with ``factor`` 1 (an output-stride-8 backbone) it is a 3x3 convolution.
    """

    def __init__(self, deep_channels: int, skip_channels: int, out_channels: int, factor: int):
        super().__init__()
        if factor == 1:
            self.deep = nn.Conv2d(deep_channels, out_channels, 3, padding=1)
        else:
            self.deep = nn.ConvTranspose2d(deep_channels, out_channels, 2 * factor - 1, factor,
                                           padding=factor - 1, output_padding=factor - 1)
        self.skip = nn.Conv2d(skip_channels, out_channels, 1)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # An odd input size leaves the upsampled map one cell larger than the skip.
        up = self.deep(deep)[..., :skip.shape[-2], :skip.shape[-1]]
        return up + self.skip(skip)


class PoseFCN(nn.Module):
    """Backbone + three stride-8 heads; ``forward(images) -> PoseOutput``."""

    stride = STRIDE

    def __init__(self, config: PoseConfig):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone)
        deep = self.backbone.out
        self.skip_name = self.backbone.first_tap(STRIDE)
        skip = self.backbone.taps[self.skip_name]
        factor = deep.stride // STRIDE

        def head(channels: int) -> SkipHead:
            return SkipHead(deep.channels, skip.channels, channels, factor)

        self.score_head = head(J)
        self.locref_head = head(2 * J) if config.locref else None
        self.offset_head = head(NUM_OFFSET_CHANNELS)
        prior = float(np.log(_SCORE_PRIOR / (1 - _SCORE_PRIOR)))
        for layer in (self.score_head.deep, self.score_head.skip):
            nn.init.constant_(layer.bias, prior / 2)
        # Set from the training data (targets.fit_offset_stats) and saved with the weights.
        self.register_buffer("offset_mean", torch.zeros(NUM_OFFSET_CHANNELS))
        self.register_buffer("offset_std", torch.ones(NUM_OFFSET_CHANNELS))

    def set_offset_stats(self, stats: OffsetStats) -> None:
        self.offset_mean.copy_(torch.from_numpy(stats.mean))
        self.offset_std.copy_(torch.from_numpy(stats.std))

    @property
    def offset_stats(self) -> OffsetStats:
        return OffsetStats(self.offset_mean.cpu().numpy().copy(),
                           self.offset_std.cpu().numpy().copy())

    def forward(self, images: torch.Tensor) -> PoseOutput:
        features = self.backbone(images)
        deep, skip = features[self.backbone.out_name], features[self.skip_name]
        return PoseOutput(
            scores=self.score_head(deep, skip),
            locref=None if self.locref_head is None else self.locref_head(deep, skip),
            offsets=self.offset_head(deep, skip))

    @torch.no_grad()
    def decode(self, output: PoseOutput) -> list[PoseMaps]:
        """Per-crop maps in crop pixels (probabilities, refined joints, pixel offsets)."""
        b, _, h, w = output.scores.shape
        scores = torch.sigmoid(output.scores).cpu().numpy()
        centres = cell_centres(h, w, STRIDE)  # (h, w, 2)
        if output.locref is None:
            joints = np.broadcast_to(centres, (b, J, h, w, 2)).copy()
        else:
            locref = output.locref.cpu().numpy().reshape(b, J, 2, h, w)
            joints = centres + np.moveaxis(locref, 2, -1) * self.config.locref_scale
        raw = output.offsets.cpu().numpy().reshape(b, J, J - 1, 2, h, w)
        mean = self.offset_mean.cpu().numpy().reshape(1, J, J - 1, 2, 1, 1)
        std = self.offset_std.cpu().numpy().reshape(1, J, J - 1, 2, 1, 1)
        offsets = np.moveaxis(raw * std + mean, 3, -1)  # (b, 14, 13, h, w, 2)
        return [PoseMaps(scores[i], joints[i].astype(np.float32),
                         offsets[i].astype(np.float32), STRIDE) for i in range(b)]
