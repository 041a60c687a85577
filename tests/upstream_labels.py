"""The real PASCAL-Part samples (read from ../shared/upstream-samples, never copied) with
the joints we labelled on them by eye (tests/data/upstream_sample_joints.json)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pascal_person_pose import layout
from pascal_person_pose.label.accuracy import link_part_samples, read_labels
from pascal_person_pose.prepare import prepare
from pascal_person_pose.sources import pascal_part, pose_mat

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "upstream-samples" / "pascal-part"
LABELS = Path(__file__).resolve().parent / "data" / "upstream_sample_joints.json"


def labelled_samples(root: Path, with_poses: bool) -> Path:
    """The canonical dataset of the samples under ``root`` (all in val); with ``with_poses``
    our labels are its ground truth (written as the pose files the readers take)."""
    raw, out = root / "raw", root / "canonical"
    ids = link_part_samples(SAMPLES, raw)
    if with_poses:
        labels = read_labels(LABELS)
        for voc_id in ids:
            persons = pascal_part.read_persons(SAMPLES / f"{voc_id}.mat")
            if not persons:
                continue
            keypoints = np.stack([labels.get((voc_id, k), np.zeros((14, 3)))
                                  for k in range(1, len(persons) + 1)])
            boxes = []
            for person in persons:
                ys, xs = np.nonzero(person.mask)
                boxes.append([xs.min(), ys.min(), xs.max(), ys.max()])
            pose_mat.write_pose_mat(layout.RawLayout(raw).pose_mat(voc_id), keypoints,
                                    np.array(boxes, np.float64))
    prepare(raw, out, workers=1, progress=False)
    return out
