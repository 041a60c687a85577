"""Average Distance of Keypoints, ADK (paper Sec. 4.2, Table 2; docs/metrics.md).

AP counts any joint within a radius as correct; ADK rewards joints for being close, in units
of half the GT head size. The protocol:

- GT poses without both forehead and neck labelled have no reference scale and are skipped
  first (``skipped_gt``); so are poses whose forehead and neck coincide (a zero scale would
  make every distance infinite).
- Each remaining GT pose is compared with the one prediction of its image whose pose box
  overlaps it most (ties to the lowest prediction index). Predictions are not exclusive: one
  prediction may serve several GT poses. A GT that overlaps no prediction (all IoU 0) adds
  nothing and is counted in ``unmatched_gt``.
- For each joint labelled in the GT (``v > 0``) and present in the prediction (``s > 0``) the
  distance is divided by half the GT's forehead-neck distance.
- Per joint type, the mean over the split, in percent. The table's left/right columns pool
  the distances of both sides (the mean over the pooled distances, not the mean of the two
  per-side means): the paper averages "for each joint type", and its types (Table 2) do not
  split sides. Ave. is the mean of the 8 columns.
  A joint type without any distance is null and left out of Ave.

Like :mod:`.pose_ap`, it scores exactly the images it is given (the caller leaves out images
whose ``pose_annotated`` is false).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pascal_person_pose.metrics.summaries import mean_of_defined, nullable
from pascal_person_pose.metrics.pose_boxes import (FOREHEAD, NECK, best_in_groups, image_pairs,
                                                   paired_box_iou, pose_boxes, stack_poses)
from pascal_person_pose.schema import ADK_COLUMNS, JOINT_NAMES, name2joint


@dataclass(frozen=True)
class AdkMatches:
    """Per GT pose of the stacked split: its prediction and its per-joint ADK terms."""

    usable: np.ndarray  # (G,) bool: forehead and neck labelled, apart
    gt_to_pred: np.ndarray  # (G,) stacked prediction index; -1 unmatched or not usable
    term: np.ndarray  # (G, 14) distance / (head size / 2); NaN where not counted


def adk_matches(gt: Sequence[np.ndarray], pred: Sequence[np.ndarray]) -> AdkMatches:
    """Match every usable GT pose to its best-overlapping prediction; its ADK terms.

    ``gt[i]``: ``(G_i, 14, 3)`` keypoints with COCO visibility; ``pred[i]``: ``(P_i, 14, 3)``
    keypoints with joint scores, for the same image ``i``.
    """
    gt_kp, gt_counts = stack_poses(gt, "gt")
    pred_kp, pred_counts = stack_poses(pred, "pred")
    scale = np.hypot(gt_kp[:, FOREHEAD, 0] - gt_kp[:, NECK, 0],
                     gt_kp[:, FOREHEAD, 1] - gt_kp[:, NECK, 1]) / 2
    usable = (gt_kp[:, FOREHEAD, 2] > 0) & (gt_kp[:, NECK, 2] > 0) & (scale > 0)

    pred, gt_index = image_pairs(pred_counts, gt_counts)
    keep = usable[gt_index]
    pred, gt_index = pred[keep], gt_index[keep]
    iou = paired_box_iou(pose_boxes(pred_kp)[0][pred], pose_boxes(gt_kp)[0][gt_index])
    best = best_in_groups(gt_index, iou, pred)
    best = best[iou[best] > 0]
    g, p = gt_index[best], pred[best]

    gt_to_pred = np.full(len(gt_kp), -1, dtype=np.intp)
    gt_to_pred[g] = p
    term = np.full(gt_kp.shape[:2], np.nan)
    counted = (gt_kp[g, :, 2] > 0) & (pred_kp[p, :, 2] > 0)
    distance = np.hypot(pred_kp[p, :, 0] - gt_kp[g, :, 0],
                        pred_kp[p, :, 1] - gt_kp[g, :, 1]) / scale[g, None]
    term[g] = np.where(counted, distance, np.nan)
    return AdkMatches(usable=usable, gt_to_pred=gt_to_pred, term=term)


def adk_table(total: np.ndarray, count: np.ndarray) -> dict:
    """``{"per_joint", "table"}`` in percent from per-joint sums and counts of ADK terms."""
    def pooled(joints: Sequence[str]) -> float:
        idx = [name2joint[n].index for n in joints]
        n = count[idx].sum()
        return 100 * total[idx].sum() / n if n else float("nan")

    table = {column: pooled(joints) for column, joints in ADK_COLUMNS.items()}
    table["Ave."] = mean_of_defined(np.array(list(table.values())))
    return {"per_joint": {name: nullable(pooled((name,))) for name in JOINT_NAMES},
            "table": {column: nullable(v) for column, v in table.items()}}


def adk(gt: Sequence[np.ndarray], pred: Sequence[np.ndarray]) -> dict:
    """ADK in percent: ``{"per_joint", "table", "unmatched_gt", "skipped_gt", "params"}``.

    ``gt[i]``: ``(G_i, 14, 3)`` keypoints with COCO visibility; ``pred[i]``: ``(P_i, 14, 3)``
    keypoints with joint scores, for the same image ``i``.
    """
    matches = adk_matches(gt, pred)
    counted = ~np.isnan(matches.term)
    return {**adk_table(np.where(counted, matches.term, 0).sum(axis=0), counted.sum(axis=0)),
            "unmatched_gt": int((matches.usable & (matches.gt_to_pred < 0)).sum()),
            "skipped_gt": int((~matches.usable).sum()),
            "params": {}}
