"""Pose boxes, their overlap and head sizes: the geometry every pose metric shares (docs/metrics.md).

Boxes follow the PASCAL pixel convention: a box spans the pixels ``xmin..xmax`` inclusive,
so its width is ``xmax - xmin + 1``. A pose with a single joint therefore has a 1x1 box, and
a perfect prediction always overlaps its ground truth with IoU 1, which the continuous
convention (width ``xmax - xmin``) would not give for one-joint or collinear poses.

A joint counts when its third column is positive: the COCO visibility ``v > 0`` (labelled)
for ground truth, the joint score ``s > 0`` (present) for a prediction, so one function
serves both. A pose with no such joint has no box: its row is NaN and it overlaps nothing.

The split-level helpers (:func:`stack_poses`, :func:`image_pairs`, :func:`best_in_groups`)
let the metrics treat a whole split as flat arrays, so their cost is a few numpy calls
rather than a Python loop over images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pascal_person_pose.schema import NUM_JOINTS, name2joint

FOREHEAD = name2joint["forehead"].index
NECK = name2joint["neck"].index


def pose_boxes(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tight inclusive boxes ``x1, y1, x2, y2`` of poses ``(P, J, 3)`` and whether each exists.

    Returns ``(boxes (P, 4) float64, valid (P,) bool)``; rows of poses without a counted joint
    are NaN (and ``valid`` False). Any joint subset ``J`` works (pose NMS uses groups).
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    counted = kp[..., 2] > 0
    valid = counted.any(axis=-1)
    x, y = kp[..., 0], kp[..., 1]
    boxes = np.stack([np.where(counted, x, np.inf).min(axis=-1),
                      np.where(counted, y, np.inf).min(axis=-1),
                      np.where(counted, x, -np.inf).max(axis=-1),
                      np.where(counted, y, -np.inf).max(axis=-1)], axis=-1)
    boxes[~valid] = np.nan
    return boxes, valid


def _overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes broadcast against each other along the leading axes (pixel convention)."""
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    # Every real box has area >= 1, so the union is positive; NaN only comes from a missing
    # box, whose overlap with anything is 0 by definition.
    iou = inter / (area_a + area_b - inter)
    return np.where(np.isnan(iou), 0.0, iou)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``(N, M)`` between boxes ``a (N, 4)`` and ``b (M, 4)``; NaN boxes give 0."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return _overlap(a[:, None, :], b[None, :, :])


def paired_box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of row ``k`` of ``a (K, 4)`` with row ``k`` of ``b (K, 4)``; NaN boxes give 0."""
    return _overlap(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


def head_sizes(keypoints: np.ndarray) -> np.ndarray:
    """Head size of each pose ``(P, 14, 3)``: ``||forehead - neck||``.

    When forehead or neck is missing, the fallback is the pose-box diagonal
    ``hypot(width, height) / 8`` (pixel convention), a scale that grows with the person like
    the head does; NaN for a pose without any counted joint.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    boxes, _ = pose_boxes(kp)
    both = (kp[:, FOREHEAD, 2] > 0) & (kp[:, NECK, 2] > 0)
    direct = np.hypot(kp[:, FOREHEAD, 0] - kp[:, NECK, 0], kp[:, FOREHEAD, 1] - kp[:, NECK, 1])
    fallback = np.hypot(boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1) / 8
    return np.where(both, direct, fallback)


def stack_poses(poses: Sequence[np.ndarray], what: str) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate per-image poses ``(n_i, 14, 3)`` into ``(sum n_i, 14, 3)`` plus the counts.

    ``what`` names the argument in the error raised for a wrong shape or a non-finite value.
    """
    arrays = []
    for i, image_poses in enumerate(poses):
        arr = np.asarray(image_poses, dtype=np.float64)
        if arr.size == 0:
            arr = arr.reshape(0, NUM_JOINTS, 3)
        if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 3):
            raise ValueError(f"{what}[{i}]: expected shape (n, {NUM_JOINTS}, 3), got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{what}[{i}]: keypoints must be finite")
        arrays.append(arr)
    counts = np.array([len(a) for a in arrays], dtype=np.intp)
    stacked = np.concatenate(arrays) if arrays else np.zeros((0, NUM_JOINTS, 3))
    return stacked, counts


def image_pairs(pred_counts: np.ndarray, gt_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (prediction, GT) pair of the same image, as indices into the stacked split.

    Pairs come ordered by prediction, then by GT, so "lowest index" is a stable order.
    """
    pred_counts = np.asarray(pred_counts, dtype=np.intp)
    gt_counts = np.asarray(gt_counts, dtype=np.intp)
    if pred_counts.shape != gt_counts.shape:
        raise ValueError(f"ground truth has {len(gt_counts)} images, predictions "
                         f"{len(pred_counts)}: one entry per image is needed in both")
    gt_start = np.cumsum(gt_counts) - gt_counts
    # Each prediction pairs with every GT of its image.
    pred_image = np.repeat(np.arange(len(pred_counts)), pred_counts)
    per_pred = gt_counts[pred_image]
    pred = np.repeat(np.arange(len(pred_image)), per_pred)
    offset = np.arange(per_pred.sum()) - np.repeat(np.cumsum(per_pred) - per_pred, per_pred)
    gt = gt_start[pred_image][pred] + offset
    return pred, gt


def best_in_groups(group: np.ndarray, value: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """For each distinct ``group``, the index of its element with the largest ``value``.

    Ties go to the smallest ``tiebreak``; the result is in ascending group order.
    """
    order = np.lexsort((tiebreak, -value, group))
    sorted_group = group[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = sorted_group[1:] != sorted_group[:-1]
    return order[first]
