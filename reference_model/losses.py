"""Training losses of the reference model's networks.

- Pose FCN (DeeperCut): sigmoid cross-entropy on the 14 score maps, averaged over all
  cells; Huber (delta 1) on the location refinement and on the pairwise offsets, averaged
  over the regressed entries only (TensorFlow's "sum by non-zero weights") and weighted.
- Part FCN and second stage (DeepLab): softmax cross-entropy over the labelled pixels of the
  crop (255 ignored), on logits upsampled bilinearly from stride 8.
- Detector (CenterNet): penalty-reduced focal loss (alpha 2, beta 4) normalised by the
  number of centres, plus L1 on offsets and log sizes at the centres.

Every loss returns its parts too, so training logs show which term moves.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pascal_person_pose import schema

from .detector import DetectorOutput, size_to_head
from .part_fcn import upsample
from .pose_fcn import PoseOutput
from .targets import DetectorTargets, PoseTargets


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` is 1; 0 (with a gradient path) when nothing is."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


def pose_loss(output: PoseOutput, targets: PoseTargets, locref_weight: float,
              offset_weight: float) -> dict[str, torch.Tensor]:
    """``{"total", "scores", "locref", "offsets"}`` for a batch of Pose FCN outputs."""
    scores = F.binary_cross_entropy_with_logits(output.scores, targets.scores)
    offsets = masked_mean(F.huber_loss(output.offsets, targets.offsets, reduction="none"),
                          targets.offsets_mask)
    if output.locref is None:
        locref = torch.zeros((), device=scores.device)
    else:
        locref = masked_mean(F.huber_loss(output.locref, targets.locref, reduction="none"),
                             targets.locref_mask)
    total = scores + locref_weight * locref + offset_weight * offsets
    return {"total": total, "scores": scores, "locref": locref, "offsets": offsets}


def part_loss(logits: torch.Tensor, labels: torch.Tensor, stride: int = 8) -> torch.Tensor:
    """Cross-entropy of stride-``stride`` logits ``(B, 7, h, w)`` against labels ``(B, H, W)``
    (part ids, ``schema.IGNORE_LABEL`` ignored), averaged over labelled pixels."""
    labels = labels.long()
    up = upsample(logits, labels.shape[-2], labels.shape[-1], stride)
    losses = F.cross_entropy(up, labels, ignore_index=schema.IGNORE_LABEL, reduction="none")
    return masked_mean(losses, (labels != schema.IGNORE_LABEL).float())


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0,
               beta: float = 4.0) -> torch.Tensor:
    """CenterNet's focal loss on heatmap logits against Gaussian targets (peaks exactly 1)."""
    p = torch.sigmoid(logits)
    positive = (target == 1).float()
    pos = -F.logsigmoid(logits) * (1 - p) ** alpha * positive
    neg = -F.logsigmoid(-logits) * p ** alpha * (1 - target) ** beta * (1 - positive)
    return (pos.sum() + neg.sum()) / positive.sum().clamp(min=1)


def detector_loss(output: DetectorOutput, targets: DetectorTargets, offset_weight: float,
                  size_weight: float) -> dict[str, torch.Tensor]:
    """``{"total", "heatmap", "offset", "size"}`` for a batch of CenterNet outputs."""
    heatmap = focal_loss(output.heatmap, targets.heatmap)
    at_centres = targets.mask.expand_as(output.offset)
    offset = masked_mean((output.offset - targets.offset).abs(), at_centres)
    size = masked_mean((output.size - size_to_head(targets.size)).abs(), at_centres)
    total = heatmap + offset_weight * offset + size_weight * size
    return {"total": total, "heatmap": heatmap, "offset": offset, "size": size}
