"""Scoring is float64 from the submitted and labelled values to every metric."""

from __future__ import annotations

import math

import numpy as np
import pytest

import brute_force_metrics as bf
from canonical_fixture import write_pose_split
from pascal_person_pose.schema import JOINT_NAMES
from pascal_person_pose.scoring import score
from pascal_person_pose.submission import write_submission


def _records(image_ids, preds) -> list[dict]:
    return [{"image_id": int(image_id), "category_id": 1, "score": float(p[:, 2].mean()),
             "keypoints": [float(v) for v in p.ravel()]}
            for image_id, poses in zip(image_ids, preds) for p in poses]


def test_scores_differing_below_float32_resolution_rank_by_value(canonical, oracle, tmp_path):
    """In an image with 3 labelled foreheads, a stray pose (overlapping no person) scored
    0.99999999 comes first in pose.json, a correct one scored 0.999999999 second: in
    float32 both are 1.0 and the file order would rank the stray first (forehead AP
    1/2 x 1/3); by value the correct one ranks first (AP 1/3)."""
    assert np.float32(0.99999999) == np.float32(0.999999999)
    first = oracle["poses"][0]  # a person of 2009_000012, which holds 3 labelled foreheads
    correct = np.array(first["keypoints"]).reshape(14, 3)
    correct[correct[:, 2] > 0, 2] = 0.999999999
    stray = np.zeros((14, 3))
    stray[:, :2], stray[:, 2] = (93.0, 68.0), 0.99999999  # a corner no person's box reaches
    poses = [{"image_id": first["image_id"], "category_id": 1, "score": 1.0,
              "keypoints": stray.ravel().tolist()},
             dict(first, keypoints=correct.ravel().tolist())]
    result = score(canonical["root"], write_submission(tmp_path / "s", poses, None))
    assert result["pose_ap"]["per_joint"]["forehead"] == pytest.approx(100 / 3, rel=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_ap_and_adk_agree_with_a_float64_reference_to_1e9(tmp_path, seed):
    """Sub-pixel GT and predictions, scores with digits below float32's: the end-to-end
    score (JSON in, JSON out) equals the loop-by-loop float64 reference to 1e-9 relative."""
    rng = np.random.default_rng(seed)
    gts, preds = bf.random_split(rng, n_images=12, max_gt=4, max_pred=7, integer=False)
    for pose in (*gts, *preds):
        pose[..., :2] += rng.uniform(-0.5, 0.5, pose[..., :2].shape) * 1e-3 + 40
    for pred in preds:  # scores crowded near 1, 1e-9 apart: float32 would tie them all
        present = pred[..., 2] > 0
        pred[..., 2] = np.where(present, 1 - rng.integers(1, 40, pred.shape[:2]) * 1e-9, 0)
    for gt in gts:
        gt[gt[..., 2] == 0, :2] = 0
    for pred in preds:
        pred[pred[..., 2] == 0, :2] = 0
    image_ids = write_pose_split(tmp_path / "data", gts)
    result = score(tmp_path / "data", write_submission(tmp_path / "s", _records(image_ids,
                                                                             preds), None))
    ap, ap_table = bf.pose_ap(gts, preds)
    distances, adk_table, unmatched, skipped = bf.adk(gts, preds)
    for name, fast, slow in [*zip(JOINT_NAMES, result["pose_ap"]["per_joint"].values(), ap),
                             *zip(JOINT_NAMES, result["adk"]["per_joint"].values(), distances),
                             *zip(ap_table, result["pose_ap"]["table"].values(),
                                  ap_table.values()),
                             *zip(adk_table, result["adk"]["table"].values(),
                                  adk_table.values())]:
        if math.isnan(slow):
            assert fast is None, name
        else:
            assert fast == pytest.approx(slow, rel=1e-9, abs=1e-12), name
    assert (result["adk"]["unmatched_gt"], result["adk"]["skipped_gt"]) == (unmatched, skipped)
