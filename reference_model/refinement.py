"""The second-stage Part FCN (paper Sec. 3.2) and the pose label maps it reads.

Input, on the first stage's stride-8 grid of a crop: the 7 part probabilities (softmax of
the Part FCN's logits) and two maps drawn from the box's poses,

- the joint label map: a disc of radius ``joint_radius`` (cells) around every present
  joint, holding the joint's label ``(j + 1) / 14``;
- the skeleton label map: a stick of width ``stick_width`` (cells: every cell within
  ``width / 2`` of the segment, so round-capped) between the two joints of every skeleton
  edge (``schema.SKELETON_INDEX``) whose joints are both present, holding the label of the
  part the bone lies in, ``part_id / 6`` (``schema.EDGE_PART_ID``).

"Label map" is read literally: a drawn cell holds its label scaled to (0, 1], 0 is
nothing; where drawings overlap, later people and later joints/edges win. The paper draws
at the Part FCN's working resolution; radius 3 and width 7 cells at stride 8 are 24 and 56
crop pixels, joint- and limb-sized for a person auto-zoomed to a 512-pixel crop.

Network: three 7x7 convolutions of 128 channels with ReLU, then a 1x1 classifier to the 7
classes. The paper's three layers are all 128-channel ReLU layers, so none of them can be
the score map its argmax reads; the classifier is DeepLab's fc8 of the second stage. The
"w/o pose input" ablation (``use_pose=False``) drops the two maps.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from pascal_person_pose import schema

from .config import RefineConfig
from .targets import pixels_to_grid

_SKELETON = np.array(schema.SKELETON_INDEX)
_EDGE_LABELS = np.array(schema.EDGE_PART_ID, np.float32) / (schema.NUM_PARTS - 1)
_JOINT_LABELS = (np.arange(schema.NUM_JOINTS, dtype=np.float32) + 1) / schema.NUM_JOINTS


def _paint(inside: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(N, h, w)`` masks painted in order (later over earlier) with ``labels`` ``(N,)``."""
    if not len(inside):
        return np.zeros(inside.shape[1:], np.float32)
    last = len(inside) - 1 - np.argmax(inside[::-1], axis=0)
    return np.where(inside.any(0), labels[last], 0).astype(np.float32)


def pose_label_maps(keypoints: np.ndarray, height: int, width: int, stride: int,
                    joint_radius: float, stick_width: float) -> np.ndarray:
    """``(2, height, width)`` joint and skeleton label maps of a stride-``stride`` grid.

    ``keypoints`` ``(P, 14, 3)`` in crop pixels; a joint is present when its third column
    (score or visibility) is > 0.
    """
    kp = np.asarray(keypoints, np.float32).reshape(-1, schema.NUM_JOINTS, 3)
    xy = pixels_to_grid(kp[..., :2], stride)  # (P, 14, 2) in cells
    present = kp[..., 2] > 0
    ys, xs = np.mgrid[:height, :width].astype(np.float32)
    grid = np.stack([xs, ys], axis=-1)  # (h, w, 2)

    points, joint_type = xy[present], np.nonzero(present)[1]  # people, then joints, in order
    d2 = ((grid[None] - points[:, None, None]) ** 2).sum(-1)
    joints = _paint(d2 <= joint_radius ** 2, _JOINT_LABELS[joint_type])

    both = present[:, _SKELETON[:, 0]] & present[:, _SKELETON[:, 1]]  # (P, 14 edges)
    a, b = xy[:, _SKELETON[:, 0]][both], xy[:, _SKELETON[:, 1]][both]  # (M, 2)
    edge = np.nonzero(both)[1]
    v = b - a
    length2 = (v ** 2).sum(-1)
    rel = grid[None] - a[:, None, None]  # (M, h, w, 2)
    along = (rel * v[:, None, None]).sum(-1) / np.where(length2 > 0, length2, 1)[:, None, None]
    t = np.clip(along, 0, 1)  # the nearest point of the segment, as a fraction of it
    dist2 = ((rel - t[..., None] * v[:, None, None]) ** 2).sum(-1)
    sticks = _paint(dist2 <= (stick_width / 2) ** 2, _EDGE_LABELS[edge])
    return np.stack([joints, sticks])


def second_stage_input(part_logits: torch.Tensor, poses: Sequence[np.ndarray],
                       config: RefineConfig, stride: int = 8) -> torch.Tensor:
    """The second stage's input ``(B, 7 [+ 2], h, w)``: part probabilities of a batch of
    crops and, unless ``config.use_pose`` is off, the label maps of each crop's poses."""
    probs = torch.softmax(part_logits, dim=1)
    if not config.use_pose:
        return probs
    if len(poses) != len(probs):
        raise ValueError(f"{len(poses)} pose sets for {len(probs)} crops")
    h, w = probs.shape[-2:]
    maps = np.stack([pose_label_maps(p, h, w, stride, config.joint_radius, config.stick_width)
                     for p in poses])
    return torch.cat([probs, torch.from_numpy(maps).to(probs)], dim=1)


class RefinementNet(nn.Module):
    """``forward(second_stage_input) -> refined part logits (B, 7, h, w)`` (same grid)."""

    def __init__(self, config: RefineConfig):
        super().__init__()
        in_channels = schema.NUM_PARTS + (2 if config.use_pose else 0)
        layers: list[nn.Module] = []
        for _ in range(config.layers):
            layers += [nn.Conv2d(in_channels, config.channels, config.kernel,
                                 padding=config.kernel // 2), nn.ReLU(inplace=True)]
            in_channels = config.channels
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(config.channels, schema.NUM_PARTS, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))
