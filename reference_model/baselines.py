"""Trivial baselines: the floor a benchmark number has to clear to mean anything.

- Mean pose at each box: the training people's average pose, as fractions of their GT box,
  placed in every person box of a test image (the trained detector's, or the GT boxes for
  an oracle floor). A joint's score is the share of training people with that joint
  labelled; a pose's score is its box's score. It measures what boxes alone give the pose
  metrics.
- All-background parts: every pixel background, the part mIOU of predicting nothing
  (background IoU / 7).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from pascal_person_pose import progress as progress_bar
from pascal_person_pose import schema
from pascal_person_pose.dataset import Dataset, Sample
from pascal_person_pose.submission import write_submission

from .detector import OracleDetector

# boxes (N, 4) x1, y1, x2, y2 pixel edges and their scores (N,) for one image
BoxSource = Callable[[Sample], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class MeanPose:
    """The average pose in box coordinates (0 = left/top box edge, 1 = right/bottom)."""

    xy: np.ndarray  # (14, 2) mean position of each joint in its person's box
    frequency: np.ndarray  # (14,) share of people with the joint labelled

    @classmethod
    def fit(cls, dataset: Dataset) -> MeanPose:
        """From every person of ``dataset`` with a box of positive size."""
        samples = list(dataset)
        keypoints = np.concatenate([s.keypoints for s in samples])
        boxes = np.concatenate([s.boxes for s in samples])
        ok = (boxes[:, 2:] > 0).all(1)
        keypoints, boxes = keypoints[ok], boxes[ok]
        if not len(keypoints):
            raise ValueError(f"no person with a box in {dataset.annotation_file}")
        labelled = keypoints[..., 2] > 0
        unit = (keypoints[..., :2] + 0.5 - boxes[:, None, :2]) / boxes[:, None, 2:]
        count = labelled.sum(0)
        xy = (unit * labelled[..., None]).sum(0) / np.maximum(count, 1)[:, None]
        return cls(xy.astype(np.float32), (count / len(keypoints)).astype(np.float32))

    def at_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """``(N, 14, 3)`` poses in ``boxes`` (x1, y1, x2, y2 edges); never-labelled joints
        are missing (0, 0, 0)."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        out = np.zeros((len(boxes), schema.NUM_JOINTS, 3), np.float32)
        size = boxes[:, None, 2:] - boxes[:, None, :2]
        out[..., :2] = boxes[:, None, :2] + self.xy[None] * size - 0.5
        out[..., 2] = self.frequency
        out[:, self.frequency <= 0] = 0
        return out


def gt_boxes(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """The ground-truth person boxes of a sample, score 1 (the oracle detector)."""
    return OracleDetector.from_coco(sample.boxes).detect(np.zeros((0, 0, 3), np.uint8))


def trivial_submission(dataset: Dataset, mean_pose: MeanPose, boxes_of: BoxSource,
                       out: str | os.PathLike, meta: dict | None = None,
                       progress: bool = True) -> Path:
    """Mean pose at each box and all-background part maps for every image of ``dataset``."""
    records, part_maps = [], {}
    for sample in progress_bar.bar(dataset, desc="mean pose", total=len(dataset),
                                   unit="image", enabled=progress):
        boxes, scores = boxes_of(sample)
        for pose, score in zip(mean_pose.at_boxes(boxes), scores):
            records.append({"image_id": sample.image_id, "keypoints": pose.ravel().tolist(),
                            "score": float(score)})
        part_maps[sample.voc_id] = np.zeros((sample.height, sample.width), np.uint8)
    return write_submission(out, records or None, part_maps, meta)  # no box: parts only
