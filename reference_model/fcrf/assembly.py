"""Pose assembly: labelled proposals -> scored poses, one per box, in image coordinates.

Pose score (paper Sec. 4.1, "the sum of all unary joint scores in logarithm form", a
missing joint counting as 0.2): ``sum over the 14 joints of log(s_j)`` with ``s_j`` the
joint's Pj probability, or ``missing_score`` (0.2) when the pose has no such joint. It is
<= 0; a complete, confident pose scores highest, and every missing joint costs log(0.2)
as a weak detection would. In the output keypoints a joint's column 2 is its Pj
probability, and a missing joint is (0, 0, 0). Prediction then weighs a pose by its box's
detection score (``weighted_by_box``: every probability times it, as top-down pose methods
rank a pose by box score times keypoint score); ground-truth boxes score 1.

Boxes: the maps of a box cover the image region from (x1, y1) resized by ``scale`` (map
pixels per image pixel, one value or (sx, sy)), pixel centres aligned as cv2.resize does:
map pixel u is image ``x1 + (u + 0.5) / sx - 0.5``. Each box keeps the pose whose centre
(the centre of its joints' tight box) is nearest the box centre; the poses of all boxes
are merged by the pose NMS of ``pascal_person_pose.metrics.pose_nms``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pascal_person_pose.schema import NUM_JOINTS

from .proposals import Proposals

MISSING_SCORE = 0.2


@dataclass(frozen=True)
class Pose:
    keypoints: np.ndarray  # (14, 3) float32: x, y, joint score s (all 0 when missing)
    score: float  # pose score, see the module docstring


def pose_scores(keypoints: np.ndarray, missing_score: float = MISSING_SCORE) -> np.ndarray:
    """Pose scores of keypoints (..., 14, 3): sum of log joint scores, missing = 0.2."""
    s = keypoints[..., 2].astype(np.float64)
    return np.log(np.where(s > 0, s, missing_score)).sum(axis=-1)


def weighted_by_box(pose: Pose, box_score: float) -> Pose:
    """The pose as found in a box detected with ``box_score``: every joint probability
    (a missing joint's 0.2 too) times the box's, so that a pose in a doubtful box ranks
    below one in a sure box (the FCNs, trained on person crops, find a person in any box)."""
    keypoints = pose.keypoints.copy()
    keypoints[:, 2] *= box_score
    return Pose(keypoints, pose.score + NUM_JOINTS * float(np.log(max(box_score, 1e-12))))


def cluster_poses(proposals: Proposals, person: np.ndarray,
                  missing_score: float = MISSING_SCORE) -> list[Pose]:
    """One pose per person label of ``person`` (n,), in map coordinates, best first."""
    person = np.asarray(person)
    count = int(person.max(initial=-1)) + 1
    keypoints = np.zeros((count, NUM_JOINTS, 3), dtype=np.float32)
    chosen = person >= 0
    keypoints[person[chosen], proposals.types[chosen], :2] = proposals.xy[chosen]
    keypoints[person[chosen], proposals.types[chosen], 2] = proposals.scores[chosen]
    scores = pose_scores(keypoints, missing_score)
    return [Pose(keypoints[g], float(scores[g])) for g in np.argsort(-scores, kind="stable")]


def _scale_xy(scale: float | tuple[float, float]) -> np.ndarray:
    return np.broadcast_to(np.asarray(scale, dtype=np.float64), (2,))


def map_to_image(xy: np.ndarray, box: Sequence[float],
                 scale: float | tuple[float, float]) -> np.ndarray:
    """Image coordinates of map points ``xy`` (..., 2) of ``box`` resized by ``scale``."""
    return np.asarray(box[:2], np.float64) + (np.asarray(xy) + 0.5) / _scale_xy(scale) - 0.5


def image_to_map(xy: np.ndarray, box: Sequence[float],
                 scale: float | tuple[float, float]) -> np.ndarray:
    """Map coordinates of image points ``xy`` (..., 2): the inverse of ``map_to_image``."""
    return (np.asarray(xy) - np.asarray(box[:2], np.float64) + 0.5) * _scale_xy(scale) - 0.5


def to_image(pose: Pose, box: Sequence[float], scale: float | tuple[float, float]) -> Pose:
    """The pose in image coordinates, from the map of ``box`` resized by ``scale``."""
    keypoints = pose.keypoints.copy()
    present = keypoints[:, 2] > 0
    keypoints[present, :2] = map_to_image(keypoints[present, :2], box, scale)
    return Pose(keypoints, pose.score)


def pose_centre(keypoints: np.ndarray) -> np.ndarray:
    """Centre (2,) of the tight box of a pose's present joints (NaN for an empty pose)."""
    present = keypoints[keypoints[:, 2] > 0, :2]
    if not len(present):
        return np.full(2, np.nan)
    return 0.5 * (present.min(axis=0) + present.max(axis=0))


def box_person(poses: Sequence[Pose], box: Sequence[float]) -> Pose | None:
    """The person a box was found for: of the poses whose centre (of their joints' tight
    box) lies inside ``box`` (same coordinates), the best-scored; None if none is.

    The paper keeps the pose nearest the box centre. A weaker model's FCRF assembles
    several people per crop (4.8 per detected box on the demo's model), and in half the
    boxes the nearest is not the best-scored one centred inside, which scored 5 points of
    pose mAP higher (docs/reference-model.md).
    """
    box = np.asarray(box[:4], np.float64)
    best = None
    for pose in poses:
        centre = pose_centre(pose.keypoints)
        inside = bool(np.all(centre >= box[:2]) and np.all(centre <= box[2:]))
        if inside and (best is None or pose.score > best.score):
            best = pose
    return best


def assemble_image(poses: Sequence[Pose], head: float = 0.65, upper: float = 0.5,
                   lower: float = 0.5, whole: float = 0.4) -> list[Pose]:
    """Merge the poses of all boxes of an image by pose NMS (kept poses, best first)."""
    from pascal_person_pose.metrics.pose_nms import pose_nms

    if not poses:
        return []
    keypoints = np.stack([p.keypoints for p in poses])
    scores = np.array([p.score for p in poses])
    kept = pose_nms(keypoints, scores, head=head, upper=upper, lower=lower, whole=whole)
    return [poses[k] for k in kept]
