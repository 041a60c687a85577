"""Pose mAP: VOC AP by hand, assignment rules, edge cases, brute force and properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import brute_force_metrics as bf
from brute_force_metrics import per_joint_equal, person, table_equal
from pascal_person_pose.metrics.adk import adk
from pascal_person_pose.metrics.pose_ap import joint_detections, pose_ap, voc_ap
from pascal_person_pose.schema import JOINT_NAMES, POSE_AP_COLUMNS, name2joint


def corners(x1, y1, x2, y2):
    """A two-joint pose whose box is exactly (x1, y1, x2, y2)."""
    kp = np.zeros((14, 3))
    kp[1] = (x1, y1, 2)
    kp[7] = (x2, y2, 2)
    return kp


# --- VOC AP -------------------------------------------------------------------------------

def test_voc_ap_by_hand():
    # Ranked tp, fp, tp, fp, tp with 4 positives: precision 1, 1/2, 2/3, 1/2, 3/5 at recall
    # 1/4, 1/4, 1/2, 1/2, 3/4. Envelope at the recall steps: 1, 2/3, 3/5; the last quarter
    # of recall is never reached. AP = 1/4 * (1 + 2/3 + 3/5) = 17/30.
    score = np.array([0.5, 0.9, 0.6, 0.7, 0.8])
    is_tp = np.array([True, True, False, True, False])
    assert voc_ap(score, is_tp, 4) == pytest.approx(17 / 30)
    assert bf.voc_ap(list(zip(score, is_tp)), 4) == pytest.approx(17 / 30)


def test_voc_ap_score_ties_keep_input_order():
    # Same score: the stable sort ranks the first entry first.
    assert voc_ap(np.array([0.5, 0.5]), np.array([False, True]), 1) == pytest.approx(0.5)
    assert voc_ap(np.array([0.5, 0.5]), np.array([True, False]), 1) == pytest.approx(1.0)


def test_voc_ap_degenerate_cases():
    assert np.isnan(voc_ap(np.array([0.3]), np.array([False]), 0))
    assert voc_ap(np.zeros(0), np.zeros(0, bool), 3) == 0.0
    assert voc_ap(np.array([0.3]), np.array([False]), 3) == 0.0
    assert voc_ap(np.array([0.9, 0.1]), np.array([True, True]), 2) == pytest.approx(1.0)


# --- hand cases ---------------------------------------------------------------------------

def test_perfect_single_person_and_result_layout():
    result = pose_ap([person()[None]], [person(value=0.9)[None]])
    assert result["per_joint"] == {name: 100.0 for name in JOINT_NAMES}
    assert list(result["table"]) == list(POSE_AP_COLUMNS)
    assert all(v == 100.0 for v in result["table"].values())
    assert result["params"] == {"alpha": 0.5, "min_iou": 0.0}


@pytest.mark.parametrize("first_score, second_score, expected", [
    (0.9, 0.8, 100.0),   # the duplicate ranks below the match: precision stays 1
    (0.8, 0.9, 50.0),    # the duplicate ranks first: precision 1/2 at full recall
])
def test_duplicate_prediction_is_a_false_positive(first_score, second_score, expected):
    # The exact pose takes the GT (IoU 1); the shifted duplicate, though within the distance
    # threshold, is unassigned: its joints are false positives whatever their score.
    preds = np.stack([person(value=first_score), person(x=1, value=second_score)])
    result = pose_ap([person()[None]], [preds])
    assert set(result["per_joint"].values()) == {expected}


def test_score_ties_rank_in_prediction_order():
    # The unassigned duplicate comes first in pose.json and ties in score: it ranks first.
    preds = np.stack([person(x=1, value=0.9), person(value=0.9)])
    det = joint_detections([person()[None]], [preds])
    assert det.pred_to_gt.tolist() == [-1, 0]
    assert set(pose_ap([person()[None]], [preds])["per_joint"].values()) == {50.0}


def test_missed_people_count_as_positives():
    gts = np.stack([person(), person(x=200)])
    result = pose_ap([gts], [person(value=0.7)[None]])
    assert set(result["per_joint"].values()) == {50.0}  # recall 1/2 at precision 1


def test_empty_images_and_predictions_without_gt():
    gts = [np.zeros((0, 14, 3)), person()[None], np.zeros((0, 14, 3))]
    preds = [person(value=0.9)[None], person(value=0.5)[None], np.zeros((0, 14, 3))]
    # The stray pose of image 0 ranks first (fp), then the match: AP 1/2.
    assert set(pose_ap(gts, preds)["per_joint"].values()) == {50.0}
    det = joint_detections(gts, preds)
    assert det.pred_to_gt.tolist() == [-1, 0] and det.positives.tolist() == [1] * 14
    nothing = pose_ap([np.zeros((0, 14, 3))] * 2, [np.zeros((0, 14, 3))] * 2)
    assert set(nothing["per_joint"].values()) == {None}
    assert set(nothing["table"].values()) == {None}
    assert set(pose_ap([person()[None]], [[]])["per_joint"].values()) == {0.0}


def test_distance_threshold_is_half_the_head_size():
    # Head size 10: a joint 5 px off is correct, 5.01 px off is not.
    pred = person(value=0.9)
    pred[name2joint["r_wrist"].index, 0] += 5
    pred[name2joint["l_wrist"].index, 1] += 5.01
    result = pose_ap([person()[None]], [pred[None]])
    assert result["per_joint"]["r_wrist"] == 100.0
    assert result["per_joint"]["l_wrist"] == 0.0
    wider = pose_ap([person()[None]], [pred[None]], alpha=0.6)
    assert wider["per_joint"]["l_wrist"] == 100.0 and wider["params"]["alpha"] == 0.6


def test_gt_without_forehead_uses_the_box_diagonal_fallback():
    # GT: neck, r_hip, r_ankle spanning 24 x 32 pixels (inclusive), diagonal 40: head size
    # 5, distance threshold 2.5.
    gt = np.zeros((14, 3))
    gt[name2joint["neck"].index] = (0, 0, 2)
    gt[name2joint["r_hip"].index] = (23, 0, 1)
    gt[name2joint["r_ankle"].index] = (23, 31, 2)
    for offset, expected in [(2.4, 100.0), (2.6, 0.0)]:
        pred = gt.copy()
        pred[:, 2] = np.where(gt[:, 2] > 0, 0.8, 0)
        pred[name2joint["r_ankle"].index, 1] += offset
        result = pose_ap([gt[None]], [pred[None]])
        assert result["per_joint"]["neck"] == 100.0
        assert result["per_joint"]["r_ankle"] == expected


def test_one_joint_poses_match_through_their_unit_boxes():
    gt = np.zeros((2, 14, 3))
    gt[0, name2joint["l_knee"].index] = (10, 10, 2)
    gt[1, name2joint["l_knee"].index] = (40, 10, 2)
    pred = np.zeros((1, 14, 3))
    pred[0, name2joint["l_knee"].index] = (40, 10, 0.3)
    det = joint_detections([gt], [pred])
    # IoU 1 with GT 1; the fallback head size sqrt(2)/8 still accepts distance 0.
    assert det.pred_to_gt.tolist() == [1] and det.is_tp.tolist() == [True]
    assert pose_ap([gt], [pred])["per_joint"]["l_knee"] == 50.0


def test_joint_types_without_positives_are_null_and_left_out_of_means():
    gt = person()
    gt[name2joint["l_ankle"].index] = 0
    pred = person(value=0.6)
    pred[name2joint["r_ankle"].index, 0] += 30  # wrong: AP 0
    result = pose_ap([gt[None]], [pred[None]])
    assert result["per_joint"]["l_ankle"] is None
    assert result["per_joint"]["r_ankle"] == 0.0
    assert result["table"]["Ankle"] == 0.0  # mean over r_ankle only
    assert result["table"]["Total"] == pytest.approx(100 * 12 / 13)


def test_min_iou_must_be_exceeded():
    # Shifted by 4 px: IoU 37/45, every joint still within 5 px.
    pred = person(x=4, value=0.9)[None]
    assert pose_ap([person()[None]], [pred])["table"]["Total"] == 100.0
    assert pose_ap([person()[None]], [pred], min_iou=0.8)["table"]["Total"] == 100.0
    strict = pose_ap([person()[None]], [pred], min_iou=0.83)
    assert strict["table"]["Total"] == 0.0 and strict["params"]["min_iou"] == 0.83


def test_assignment_is_mpii_not_greedy():
    gts = np.stack([corners(0, 0, 9, 9), corners(4, 0, 13, 9)])
    # Prediction 0 overlaps GT 0 (IoU 7/13) but GT 1 more (9/11): it keeps only GT 1.
    # Prediction 1 is GT 1 exactly. GT 1 takes prediction 1, and GT 0 stays unassigned
    # (a greedy matcher would have given it prediction 0).
    preds = np.stack([corners(3, 0, 12, 9), corners(4, 0, 13, 9)])
    preds[..., 2] = np.where(preds[..., 2] > 0, 0.5, 0)
    assert joint_detections([gts], [preds]).pred_to_gt.tolist() == [-1, 1]


def test_assignment_ties_go_to_the_lowest_index():
    gts = np.stack([corners(0, 0, 9, 9), corners(10, 0, 19, 9)])
    # Equal IoU (1/3) with both GT poses: the prediction keeps GT 0.
    middle = corners(5, 0, 14, 9)
    assert joint_detections([gts], [middle[None]]).pred_to_gt.tolist() == [0]
    # Two identical predictions for one GT: the lower prediction index wins.
    assert joint_detections([gts[:1]], [np.stack([gts[0], gts[0]])]).pred_to_gt.tolist() == [
        0, -1]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="one entry per image"):
        pose_ap([person()[None]], [])
    with pytest.raises(ValueError, match=r"pred\[0\]"):
        pose_ap([person()[None]], [np.zeros((1, 17, 3))])


# --- brute force --------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(60))
def test_agrees_with_the_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    gts, preds = bf.random_split(rng, integer=seed % 2 == 0)
    alpha, min_iou = [(0.5, 0.0), (0.2, 0.0), (1.0, 0.3)][seed % 3]
    result = pose_ap(gts, preds, alpha=alpha, min_iou=min_iou)
    per_joint, table = bf.pose_ap(gts, preds, alpha=alpha, min_iou=min_iou)
    per_joint_equal(result["per_joint"], per_joint)
    table_equal(result["table"], table)
    det = joint_detections(gts, preds, min_iou=min_iou)
    expected, offset = [], 0
    for g, p in zip(gts, preds):
        expected += [-1 if m < 0 else m + offset for m in bf.assign(g, p, min_iou)]
        offset += len(g)
    assert det.pred_to_gt.tolist() == expected


# --- properties ---------------------------------------------------------------------------

splits = bf.splits()


@settings(max_examples=60, deadline=None)
@given(splits, st.integers(0, 2**32 - 1))
def test_perfect_submission_scores_100(split, seed):
    gts, _ = split
    scores = np.random.default_rng(seed)
    preds = []
    for g in gts:
        p = g.copy()
        p[..., 2] = np.where(g[..., 2] > 0, scores.uniform(0.01, 1, g.shape[:2]), 0)
        preds.append(p)
    result = pose_ap(gts, preds)
    positives = joint_detections(gts, preds).positives
    for j, name in enumerate(JOINT_NAMES):
        assert result["per_joint"][name] == (100.0 if positives[j] else None)


@settings(max_examples=60, deadline=None)
@given(splits, st.integers(0, 2**32 - 1))
def test_shuffling_predictions_within_an_image_changes_nothing(split, seed):
    gts, preds = split
    rng = np.random.default_rng(seed)
    shuffled = [p[rng.permutation(len(p))] for p in preds]
    assert pose_ap(gts, shuffled) == pose_ap(gts, preds)
    assert adk(gts, shuffled) == adk(gts, preds)


@settings(max_examples=60, deadline=None)
@given(splits, st.integers(0, 2**32 - 1))
def test_a_pose_overlapping_nothing_only_adds_false_positives(split, seed):
    gts, preds = split
    rng = np.random.default_rng(seed)
    image = int(rng.integers(len(gts)))
    stray = person(x=5000, y=5000, value=0)
    stray[:, 2] = rng.uniform(0, 1, 14) * (rng.uniform(size=14) < 0.8)
    stray[stray[:, 2] == 0, :2] = 0
    more = list(preds)
    more[image] = np.concatenate([preds[image], stray[None]])
    before, after = joint_detections(gts, preds), joint_detections(gts, more)
    np.testing.assert_array_equal(before.positives, after.positives)
    assert after.is_tp.sum() == before.is_tp.sum()
    assert len(after.score) == len(before.score) + int((stray[:, 2] > 0).sum())
    old, new = pose_ap(gts, preds)["per_joint"], pose_ap(gts, more)["per_joint"]
    for name in JOINT_NAMES:
        assert (old[name] is None) == (new[name] is None)
        if old[name] is not None:
            assert new[name] <= old[name] + 1e-9

