"""Pose NMS (paper Sec. 4.1; docs/metrics.md): merge the poses that several detection boxes produced.

Whole-body boxes alone would merge two people standing close, and would keep a duplicate
that only found a different subset of joints; comparing the head, upper-body, lower-body and
whole-body boxes separately catches duplicates that agree on any one body region.

Each group box is the tight box (inclusive pixel convention) of the pose's present joints
(``s > 0``) in that group, grown by half the pose's head size (``head_sizes``, with its
box-diagonal fallback) on every side. A group with no present joint has no box and
overlaps nothing. Greedy by pose score (descending; ties keep input order): a pose is
removed when, against an already kept pose, any group IoU exceeds its threshold.
"""

from __future__ import annotations

import numpy as np

from pascal_person_pose.metrics.pose_boxes import box_iou, head_sizes, pose_boxes
from pascal_person_pose.schema import JOINT_NAMES, NUM_JOINTS, POSE_AP_COLUMNS, name2joint

NMS_GROUPS: dict[str, tuple[str, ...]] = {
    "head": POSE_AP_COLUMNS["Head"],
    "upper": POSE_AP_COLUMNS["U-Body"],
    "lower": POSE_AP_COLUMNS["Hip"] + POSE_AP_COLUMNS["Knee"] + POSE_AP_COLUMNS["Ankle"],
    "whole": JOINT_NAMES,
}
# The paper's limits: a group IoU above its limit makes a pose a duplicate.
NMS_LIMITS: dict[str, float] = {"head": 0.65, "upper": 0.5, "lower": 0.5, "whole": 0.4}


def group_boxes(keypoints: np.ndarray) -> dict[str, np.ndarray]:
    """The grown box ``(P, 4)`` of every NMS group of poses ``(P, 14, 3)``; NaN when absent."""
    kp = np.asarray(keypoints, dtype=np.float64)
    half = head_sizes(kp)[:, None] / 2
    grow = np.concatenate([-half, -half, half, half], axis=1)
    return {group: pose_boxes(kp[:, [name2joint[n].index for n in joints]])[0] + grow
            for group, joints in NMS_GROUPS.items()}


def pose_nms(keypoints: np.ndarray, scores: np.ndarray, head: float = NMS_LIMITS["head"],
             upper: float = NMS_LIMITS["upper"], lower: float = NMS_LIMITS["lower"],
             whole: float = NMS_LIMITS["whole"]) -> np.ndarray:
    """Indices of the poses kept, in the order they were kept (descending score).

    ``keypoints``: ``(P, 14, 3)`` with joint scores in column 2; ``scores``: ``(P,)`` pose
    scores. The thresholds are the IoUs above which a group makes a pose a duplicate.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if kp.size == 0:
        kp = kp.reshape(0, NUM_JOINTS, 3)
    if kp.ndim != 3 or kp.shape[1:] != (NUM_JOINTS, 3) or scores.shape != (len(kp),):
        raise ValueError(f"expected keypoints (P, {NUM_JOINTS}, 3) and scores (P,), got "
                         f"{kp.shape} and {scores.shape}")
    limits = {"head": head, "upper": upper, "lower": lower, "whole": whole}
    duplicate = np.zeros((len(kp), len(kp)), dtype=bool)
    for group, boxes in group_boxes(kp).items():
        duplicate |= box_iou(boxes, boxes) > limits[group]

    removed = np.zeros(len(kp), dtype=bool)
    kept = []
    for i in np.argsort(-scores, kind="stable"):
        if not removed[i]:
            kept.append(i)
            removed |= duplicate[i]
    return np.array(kept, dtype=np.intp)
