"""Pose mAP: the MPII multi-person protocol with pose-box assignment (paper Sec. 4.2).

Defined exactly in docs/metrics.md.

The phases follow pycocotools (match, accumulate, summarise), each vectorised over the whole
split rather than looped per image:

1. :func:`joint_detections` assigns predictions to GT poses image by image as MPII's
   ``assignGTmulti`` does, with pose-box IoU as the affinity: each prediction keeps only its
   best GT (ties to the lowest GT index), then each GT takes the prediction with the highest
   remaining IoU (ties to the lowest prediction index) if that IoU exceeds ``min_iou``.
   Scores play no part, so a confident but misplaced pose cannot steal a GT.
   Every present joint (``s > 0``) of every prediction becomes one detection of its joint
   type, a true positive iff its pose is assigned, the GT joint is labelled and the distance
   is at most ``alpha`` times the GT head size (:func:`~.pose_boxes.head_sizes`, with its
   box-diagonal fallback when the GT lacks forehead or neck).
2. :func:`voc_ap` ranks the detections of a joint type by score and integrates the
   monotone precision envelope over recall (VOC all-point AP). Positives are all labelled GT
   joints of that type, so missed people lower recall.
3. :func:`pose_ap` reports percentages per joint and the paper's Table 1 columns.

The functions score exactly the images they are given: the caller leaves out images whose
``pose_annotated`` is false (their people carry no joints, so any prediction there would be
a false positive). ``gt[i]`` and ``pred[i]`` are the poses of the same image; "lowest index"
is the order of the annotations and of ``pose.json``.

Score ties are broken by a stable sort, i.e. in split order (image, prediction, joint): the
result is deterministic for a given submission file.
A joint type with no positives has an undefined AP: null in the result, and left out of every
column mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pascal_person_pose.metrics.pose_boxes import (best_in_groups, head_sizes, image_pairs,
                                                   paired_box_iou, pose_boxes, stack_poses)
from pascal_person_pose.metrics.summaries import mean_of_defined, nullable
from pascal_person_pose.schema import JOINT_NAMES, NUM_JOINTS, POSE_AP_COLUMNS, name2joint

ALPHA = 0.5  # a joint is correct within ALPHA x the GT head size (the paper's PCKh@0.5)
MIN_IOU = 0.0  # the pose-box IoU an assignment must exceed (MPII: any overlap)
JITTER = 1.0  # head sizes: the outer limit of a near miss in the error diagnosis


@dataclass(frozen=True)
class JointDetections:
    """What AP accumulates: one entry per present predicted joint, in split order."""

    pred_to_gt: np.ndarray  # (N,) GT index (into the stacked split) of each prediction, -1 if none
    distance: np.ndarray  # (N, 14) pixels to the assigned GT's joint; NaN if none is labelled
    hit: np.ndarray  # (N, 14) bool: assigned, GT joint labelled, within alpha x head size
    joint: np.ndarray  # (E,) joint index of each detection
    score: np.ndarray  # (E,) its joint score
    is_tp: np.ndarray  # (E,) bool
    positives: np.ndarray  # (14,) labelled GT joints per type


def _assign(gt_kp: np.ndarray, gt_counts: np.ndarray, pred_kp: np.ndarray,
            pred_counts: np.ndarray, min_iou: float) -> np.ndarray:
    """``assignGTmulti`` over the stacked split: each prediction's GT index, or -1."""
    pred, gt = image_pairs(pred_counts, gt_counts)
    iou = paired_box_iou(pose_boxes(pred_kp)[0][pred], pose_boxes(gt_kp)[0][gt])
    kept = best_in_groups(pred, iou, gt)  # each prediction keeps only its best GT
    taken = kept[best_in_groups(gt[kept], iou[kept], pred[kept])]  # each GT takes its best
    taken = taken[iou[taken] > min_iou]
    pred_to_gt = np.full(len(pred_kp), -1, dtype=np.intp)
    pred_to_gt[pred[taken]] = gt[taken]
    return pred_to_gt


def joint_detections(gt: Sequence[np.ndarray], pred: Sequence[np.ndarray], alpha: float = ALPHA,
                     min_iou: float = MIN_IOU) -> JointDetections:
    """Assign the poses of every image and label every present predicted joint tp or fp.

    ``gt[i]``: ``(G_i, 14, 3)`` keypoints with COCO visibility; ``pred[i]``: ``(P_i, 14, 3)``
    keypoints with joint scores, for the same image ``i``.
    """
    gt_kp, gt_counts = stack_poses(gt, "gt")
    pred_kp, pred_counts = stack_poses(pred, "pred")
    pred_to_gt = _assign(gt_kp, gt_counts, pred_kp, pred_counts, min_iou)

    hit = np.zeros(pred_kp.shape[:2], dtype=bool)
    distance = np.full(pred_kp.shape[:2], np.nan)
    rows = np.flatnonzero(pred_to_gt >= 0)
    matched = gt_kp[pred_to_gt[rows]]
    labelled = matched[:, :, 2] > 0
    distance[rows] = np.where(labelled, np.hypot(pred_kp[rows, :, 0] - matched[:, :, 0],
                                                 pred_kp[rows, :, 1] - matched[:, :, 1]), np.nan)
    reach = alpha * head_sizes(matched)[:, None]
    hit[rows] = labelled & (distance[rows] <= reach)

    pose, joint = np.nonzero(pred_kp[:, :, 2] > 0)
    return JointDetections(pred_to_gt=pred_to_gt, distance=distance, hit=hit, joint=joint,
                           score=pred_kp[pose, joint, 2], is_tp=hit[pose, joint],
                           positives=(gt_kp[:, :, 2] > 0).sum(axis=0))


def voc_ap(score: np.ndarray, is_tp: np.ndarray, num_positives: int) -> float:
    """VOC all-point interpolated AP (a fraction in [0, 1]); NaN when there are no positives.

    Detections are ranked by descending score with a stable sort (ties keep their order);
    precision is replaced by its monotone envelope (best precision at any higher recall) and
    summed over the recall steps.
    """
    if num_positives == 0:
        return float("nan")
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    tp = np.asarray(is_tp, dtype=bool)[order]
    true_pos = np.cumsum(tp)
    recall = np.concatenate([[0.0], true_pos / num_positives, [1.0]])
    precision = np.concatenate([[0.0], true_pos / np.arange(1, len(tp) + 1), [0.0]])
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    step = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[step + 1] - recall[step]) * envelope[step + 1]))


def pose_ap(gt: Sequence[np.ndarray], pred: Sequence[np.ndarray], alpha: float = ALPHA,
            min_iou: float = MIN_IOU) -> dict:
    """Pose AP in percent: ``{"per_joint": {joint: AP}, "table": {column: AP}, "params"}``.

    Table columns are schema.POSE_AP_COLUMNS: each is the mean of its joints' APs (Head =
    forehead and neck, Shoulder = left and right, ..., U-Body, Total).
    """
    det = joint_detections(gt, pred, alpha=alpha, min_iou=min_iou)
    return {**pose_ap_table(per_joint_ap(det.joint, det.score, det.is_tp, det.positives)),
            "params": {"alpha": alpha, "min_iou": min_iou}}


def per_joint_ap(joint: np.ndarray, score: np.ndarray, is_tp: np.ndarray,
                 positives: np.ndarray) -> np.ndarray:
    """AP (a fraction, NaN without positives) of each joint type from its detections."""
    return np.array([voc_ap(score[joint == j], is_tp[joint == j], int(positives[j]))
                     for j in range(NUM_JOINTS)])


def pose_ap_table(ap: np.ndarray) -> dict:
    """``{"per_joint", "table"}`` in percent from the 14 per-joint APs (fractions)."""
    ap = 100 * np.asarray(ap, dtype=np.float64)
    return {"per_joint": {name: nullable(v) for name, v in zip(JOINT_NAMES, ap)},
            "table": {column: nullable(mean_of_defined(ap[[name2joint[n].index for n in joints]]))
                      for column, joints in POSE_AP_COLUMNS.items()}}

