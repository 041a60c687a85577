"""Person detection: the :class:`Detector` protocol, a CenterNet-style detector, an oracle,
and box NMS.

The paper uses Faster R-CNN; any detector that implements :class:`Detector` plugs in.
Ours is CenterNet ("Objects as Points") made compact: a backbone, a top-down neck (1x1
laterals of every tap at stride >= 4, upsampled and summed, FPN-style) to stride 4, and
three heads: a centre heatmap (focal loss on Gaussian targets), a 2-channel sub-cell offset
and a 2-channel log box size in cells (L1). CenterNet regresses raw sizes; a box's IoU
depends on its relative size error, and people span 4 to 80 cells here, so the log keeps
the largest from ruling the loss. Decoding keeps the 3x3 max-pool peaks of
the heatmap and takes the top k; the paper's box NMS (score > 0.6, IoU > 0.6 suppressed)
follows. :class:`OracleDetector` returns the ground-truth boxes (the ``--gt-boxes``
ablation).

Boxes are x1, y1, x2, y2 in pixel-edge coordinates (COCO ``[x, y, w, h]`` is
``[x, y, x + w, y + h]``); IoU here is the continuous one of that convention.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .autozoom import BoxTransform, crop_image
from .backbones import build_backbone, images_to_tensor
from .config import DetectorConfig
from .targets import grid_to_pixels

STRIDE = 4
# Heatmap bias at start: CenterNet's prior probability 0.1 of a peak.
_HEATMAP_PRIOR = -2.19


@runtime_checkable
class Detector(Protocol):
    """Anything that finds people: ``detect(image) -> (boxes, scores)``."""

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``image`` (H, W, 3) uint8 RGB -> boxes ``(N, 4)`` float32 x1, y1, x2, y2 (pixel
        edges) and scores ``(N,)`` float32, highest score first."""
        ...


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` IoU of edge-coordinate boxes (a zero-area pair has IoU 0)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    wh = np.clip(np.minimum(a[:, None, 2:], b[None, :, 2:])
                 - np.maximum(a[:, None, :2], b[None, :, :2]), 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.6,
            score_threshold: float = 0.6) -> np.ndarray:
    """Greedy NMS (paper Sec. 4.1): drop scores <= ``score_threshold``, then every box whose
    IoU with a higher-scored kept box exceeds ``iou_threshold``. Kept indices, best first."""
    scores = np.asarray(scores, np.float64)
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] > score_threshold]
    iou = box_iou(boxes[order], boxes[order])
    keep = np.ones(len(order), bool)
    for i in range(len(order)):
        if keep[i]:
            keep[i + 1:] &= iou[i, i + 1:] <= iou_threshold
    return order[keep]


def matched_truth(boxes: np.ndarray, truth: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
    """(N,) bool: which ``truth`` boxes (N, 4) the ``boxes`` (M, 4, best first) find. Each
    box, in order, takes the unmatched truth it overlaps most if that IoU is at least
    ``iou_threshold`` (PASCAL VOC's greedy matching)."""
    found = np.zeros(len(truth), bool)
    if not len(boxes) or not len(truth):
        return found
    for row in box_iou(boxes, truth):
        candidates = np.where(found, -1.0, row)
        best = int(np.argmax(candidates))
        if candidates[best] >= iou_threshold:
            found[best] = True
    return found


class OracleDetector:
    """The ground-truth boxes of one image, each with score 1 (for ``--gt-boxes``)."""

    def __init__(self, boxes: np.ndarray):
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self.boxes = boxes[(boxes[:, 2:] > boxes[:, :2]).all(1)]

    @classmethod
    def from_coco(cls, bboxes: np.ndarray) -> OracleDetector:
        """From COCO ``[x, y, w, h]`` boxes (``Sample.boxes``); empty boxes are left out."""
        b = np.asarray(bboxes, np.float32).reshape(-1, 4)
        return cls(np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1))

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.boxes.copy(), np.ones(len(self.boxes), np.float32)


def size_to_head(size: torch.Tensor) -> torch.Tensor:
    """Box sizes in cells -> what the size head regresses (their log; 0 stays finite)."""
    return size.clamp(min=1e-6).log()


class DetectorOutput(NamedTuple):
    heatmap: torch.Tensor  # (B, 1, h, w) logits
    offset: torch.Tensor  # (B, 2, h, w) centre offset in cells
    size: torch.Tensor  # (B, 2, h, w) log width, log height in cells


def _head(in_channels: int, hidden: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(hidden, out_channels, 1))


class CenterNet(nn.Module):
    """``forward(images (B, 3, H, W)) -> DetectorOutput`` on the stride-4 grid.

    H and W should be multiples of the backbone's output stride so that every tap is
    exactly ``H / stride`` (``CenterNetDetector`` pads its input to one).
    """

    stride = STRIDE

    def __init__(self, config: DetectorConfig):
        super().__init__()
        self.backbone = build_backbone(config.backbone)
        self.tap_names = [n for n, t in self.backbone.taps.items() if t.stride >= STRIDE]
        if self.backbone.taps[self.tap_names[0]].stride != STRIDE:
            raise ValueError("the detector needs a backbone with a stride-4 output")
        self.laterals = nn.ModuleDict({
            n: nn.Conv2d(self.backbone.taps[n].channels, config.neck_channels, 1)
            for n in self.tap_names})
        self.smooth = nn.Sequential(
            nn.Conv2d(config.neck_channels, config.neck_channels, 3, padding=1),
            nn.ReLU(inplace=True))
        self.heatmap = _head(config.neck_channels, config.head_channels, 1)
        self.offset = _head(config.neck_channels, config.head_channels, 2)
        self.size = _head(config.neck_channels, config.head_channels, 2)
        nn.init.constant_(self.heatmap[-1].bias, _HEATMAP_PRIOR)

    def forward(self, images: torch.Tensor) -> DetectorOutput:
        features = self.backbone(images)
        x = None
        for name in reversed(self.tap_names):  # deep to shallow
            lateral = self.laterals[name](features[name])
            x = lateral if x is None else lateral + F.interpolate(
                x, size=lateral.shape[-2:], mode="nearest")
        x = self.smooth(x)
        return DetectorOutput(self.heatmap(x), self.offset(x), self.size(x))


@torch.no_grad()
def decode_detections(output: DetectorOutput, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per image: the top-``k`` heatmap peaks (3x3 max-pool maxima) as boxes in input pixel
    edges, with their sigmoid scores, best first."""
    heat = torch.sigmoid(output.heatmap)
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
    b, _, h, w = heat.shape
    scores, index = peaks.view(b, -1).topk(min(k, h * w))
    cy, cx = (index // w).float(), (index % w).float()
    offset = output.offset.view(b, 2, -1).gather(2, index[:, None].expand(-1, 2, -1))
    size = output.size.view(b, 2, -1).gather(2, index[:, None].expand(-1, 2, -1))
    # Centre: grid coordinate -> pixel centre -> pixel edge (+0.5).
    x = grid_to_pixels(cx + offset[:, 0], STRIDE) + 0.5
    y = grid_to_pixels(cy + offset[:, 1], STRIDE) + 0.5
    size = size.clamp(max=math.log(4 * max(h, w))).exp()  # no box beyond 4 inputs (no inf)
    half_w, half_h = size[:, 0] * STRIDE / 2, size[:, 1] * STRIDE / 2
    boxes = torch.stack([x - half_w, y - half_h, x + half_w, y + half_h], dim=-1)
    return [(boxes[i].cpu().numpy(), scores[i].cpu().numpy()) for i in range(b)]


class CenterNetDetector:
    """A trained :class:`CenterNet` as a :class:`Detector`: resize the image so its longer
    side is ``config.input_size``, decode, map back, clip to the image, box NMS."""

    def __init__(self, model: CenterNet, config: DetectorConfig):
        self.model = model
        self.config = config

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        height, width = image.shape[:2]
        multiple = self.model.backbone.out.stride
        t = BoxTransform.fit_image(width, height, self.config.input_size, multiple)
        device = next(self.model.parameters()).device
        self.model.eval()
        with torch.no_grad():
            output = self.model(images_to_tensor(crop_image(image, t)).to(device))
        boxes, scores = decode_detections(output, self.config.max_detections)[0]
        boxes = np.clip(t.boxes_to_image(boxes), 0, [width, height, width, height])
        keep = box_nms(boxes, scores, self.config.nms_iou, self.config.score_threshold)
        return boxes[keep].astype(np.float32), scores[keep].astype(np.float32)
