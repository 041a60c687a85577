"""ADK: hand cases (pooling, skipped and unmatched GT, ties), brute force, properties."""

import numpy as np
import pytest
from hypothesis import given, settings

import brute_force_metrics as bf
from brute_force_metrics import per_joint_equal, person, table_equal
from pascal_person_pose.metrics.adk import adk
from pascal_person_pose.schema import ADK_COLUMNS, JOINT_NAMES, name2joint

FOREHEAD, NECK = name2joint["forehead"].index, name2joint["neck"].index
R_SHOULDER, L_SHOULDER = name2joint["r_shoulder"].index, name2joint["l_shoulder"].index


def test_distances_in_half_head_sizes_with_sides_pooled():
    # Head size 10, so distances are in units of 5 px.
    gts = np.stack([person(), person(x=200)])
    gts[1, L_SHOULDER] = 0  # not labelled: the second person adds no left-shoulder distance
    preds = np.stack([person(value=0.9), person(x=200, value=0.4)])
    preds[0, FOREHEAD, :2] += (3, 4)  # 5 px: 1.0
    preds[0, R_SHOULDER, 1] += 2.5  # 0.5
    preds[1, R_SHOULDER, 0] += 5  # 1.0
    result = adk([gts], [preds])
    assert result["per_joint"]["forehead"] == pytest.approx(50.0)  # mean of 1 and 0
    assert result["per_joint"]["r_shoulder"] == pytest.approx(75.0)  # mean of 0.5 and 1
    assert result["per_joint"]["l_shoulder"] == 0.0
    # Shoulder pools the three distances 0.5, 1, 0 (not the mean 37.5 of the side means).
    assert result["table"]["Shoulder"] == pytest.approx(50.0)
    assert result["table"]["Forehead"] == pytest.approx(50.0) and result["table"]["Neck"] == 0
    assert result["table"]["Ave."] == pytest.approx((50 + 50) / 8)
    assert list(result["table"]) == [*ADK_COLUMNS, "Ave."]
    assert (result["unmatched_gt"], result["skipped_gt"], result["params"]) == (0, 0, {})


def test_gt_without_forehead_or_neck_is_skipped_and_counted():
    no_neck = person()
    no_neck[NECK] = 0
    no_forehead = person(x=100)
    no_forehead[FOREHEAD] = 0
    same_point = person(x=200)
    same_point[FOREHEAD] = same_point[NECK]  # no reference scale either
    gts = np.stack([no_neck, no_forehead, same_point])
    preds = np.stack([person(value=1), person(x=100, value=1), person(x=200, value=1)])
    preds[:, :, 0] += 3
    result = adk([gts], [preds])
    assert result["skipped_gt"] == 3 and result["unmatched_gt"] == 0
    assert set(result["per_joint"].values()) == {None}
    assert set(result["table"].values()) == {None}


def test_gt_overlapping_no_prediction_is_unmatched():
    gts = [np.stack([person(), person(x=500)]), person()[None]]
    preds = [person(x=1, value=0.2)[None], np.zeros((0, 14, 3))]
    result = adk(gts, preds)
    assert result["unmatched_gt"] == 2 and result["skipped_gt"] == 0
    assert result["per_joint"]["neck"] == pytest.approx(20.0)  # 1 px / 5 px


def test_joint_missing_in_the_prediction_adds_nothing():
    pred = person(value=0.5)
    pred[L_SHOULDER] = 0
    pred[R_SHOULDER, 0] += 10  # 2.0
    result = adk([person()[None]], [pred[None]])
    assert result["per_joint"]["l_shoulder"] is None
    assert result["table"]["Shoulder"] == pytest.approx(200.0)


def test_best_overlap_ties_go_to_the_lowest_prediction_index():
    # Shifted 2 px right and 2 px left: equal IoU; only the second also moves the forehead.
    preds = np.stack([person(x=2, value=0.1), person(x=-2, value=0.9)])
    preds[1, FOREHEAD, 1] += 3
    result = adk([person()[None]], [preds])
    assert result["per_joint"]["forehead"] == pytest.approx(40.0)


def test_one_prediction_may_serve_several_gt_poses():
    gts = np.stack([person(), person(x=10)])
    result = adk([gts], [person(x=5, value=0.5)[None]])
    assert result["unmatched_gt"] == 0
    assert result["per_joint"]["neck"] == pytest.approx(100.0)  # 5 px from both


def test_empty_split():
    result = adk([], [])
    assert set(result["per_joint"].values()) == {None}
    assert (result["unmatched_gt"], result["skipped_gt"]) == (0, 0)
    with pytest.raises(ValueError, match="one entry per image"):
        adk([person()[None]], [])


@pytest.mark.parametrize("seed", range(40))
def test_agrees_with_the_brute_force_reference(seed):
    gts, preds = bf.random_split(np.random.default_rng(1000 + seed), integer=seed % 2 == 0)
    result = adk(gts, preds)
    per_joint, table, unmatched, skipped = bf.adk(gts, preds)
    per_joint_equal(result["per_joint"], per_joint)
    table_equal(result["table"], table)
    assert (result["unmatched_gt"], result["skipped_gt"]) == (unmatched, skipped)


@settings(max_examples=60, deadline=None)
@given(bf.splits())
def test_perfect_submission_scores_0(split):
    gts, _ = split
    preds = [np.concatenate([g[..., :2], (g[..., 2:] > 0) * 0.5], axis=-1) for g in gts]
    result = adk(gts, preds)
    assert result["unmatched_gt"] == 0
    assert set(result["per_joint"].values()) <= {0.0, None}
    assert set(result["table"].values()) <= {0.0, None}
    usable = sum(int(((g[:, [FOREHEAD, NECK], 2] > 0).all(axis=1)).sum()) for g in gts)
    assert result["skipped_gt"] == sum(map(len, gts)) - usable
    assert JOINT_NAMES == tuple(result["per_joint"])
