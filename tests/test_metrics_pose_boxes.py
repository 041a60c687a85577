"""Pose boxes in the PASCAL pixel convention, their IoU, head sizes and the split helpers."""

import math

import numpy as np
import pytest

from pascal_person_pose.metrics.pose_boxes import (best_in_groups, box_iou, head_sizes,
                                                   image_pairs, paired_box_iou, pose_boxes,
                                                   stack_poses)
from pascal_person_pose.schema import name2joint


def pose(**joints):
    """A (14, 3) pose from ``name=(x, y[, v])``; other joints are missing."""
    kp = np.zeros((14, 3))
    for name, value in joints.items():
        kp[name2joint[name].index] = (*value, 2) if len(value) == 2 else value
    return kp


def test_box_spans_labelled_joints_inclusively():
    boxes, valid = pose_boxes(np.stack([pose(neck=(10, 20), r_ankle=(14, 41)),
                                        pose(l_wrist=(7.5, 3))]))
    assert valid.tolist() == [True, True]
    np.testing.assert_array_equal(boxes, [[10, 20, 14, 41], [7.5, 3, 7.5, 3]])
    # Width and height are inclusive: 5 x 22 and 1 x 1.
    assert box_iou(boxes[:1], boxes[:1])[0, 0] == 1


def test_missing_joints_at_the_origin_do_not_stretch_the_box():
    kp = pose(neck=(10, 20), r_hip=(12, 30))
    kp[name2joint["l_knee"].index] = (0, 0, 0)  # unlabelled GT joint
    kp[name2joint["forehead"].index] = (0, 0, 0)
    assert pose_boxes(kp[None])[0].tolist() == [[10, 20, 12, 30]]


def test_one_joint_pose_has_a_unit_box_and_iou_one_with_itself():
    kp = pose(r_wrist=(5, 5))[None]
    boxes, _ = pose_boxes(kp)
    assert box_iou(boxes, boxes)[0, 0] == 1.0
    shifted, _ = pose_boxes(pose(r_wrist=(6, 5))[None])
    assert box_iou(boxes, shifted)[0, 0] == 0.0  # neighbouring pixels do not overlap


def test_pose_without_joints_has_no_box_and_overlaps_nothing():
    kp = np.stack([np.zeros((14, 3)), pose(neck=(0, 0), r_ankle=(50, 50))])
    boxes, valid = pose_boxes(kp)
    assert valid.tolist() == [False, True]
    assert np.isnan(boxes[0]).all()
    np.testing.assert_array_equal(box_iou(boxes, boxes), [[0, 0], [0, 1]])


def test_iou_by_hand():
    a = np.array([[0, 0, 9, 9]])
    # 10x10 boxes overlapping 5x5 pixels: 25 / (100 + 100 - 25).
    assert box_iou(a, [[5, 5, 14, 14]])[0, 0] == pytest.approx(25 / 175)
    # Sharing one column of pixels: 5 / (25 + 25 - 5).
    assert box_iou([[0, 0, 4, 4]], [[4, 0, 8, 4]])[0, 0] == pytest.approx(5 / 45)
    assert box_iou([[0, 0, 4, 4]], [[5, 0, 8, 4]])[0, 0] == 0
    # Contained box: 1 / 100.
    assert box_iou(a, [[3, 3, 3, 3]])[0, 0] == pytest.approx(0.01)
    np.testing.assert_allclose(paired_box_iou([[0, 0, 9, 9], [0, 0, 4, 4]],
                                              [[5, 5, 14, 14], [4, 0, 8, 4]]),
                               [25 / 175, 5 / 45])
    assert box_iou(np.zeros((0, 4)), a).shape == (0, 1)


def test_head_size_is_forehead_neck_distance():
    kp = pose(forehead=(10, 10), neck=(13, 14), r_ankle=(100, 200))
    assert head_sizes(kp[None])[0] == pytest.approx(5.0)


def test_head_size_falls_back_to_an_eighth_of_the_box_diagonal():
    # No forehead: the box is 3 x 4 pixels (inclusive), diagonal 5.
    no_forehead = pose(neck=(0, 0), r_hip=(2, 3))
    # Forehead present but not labelled (v = 0): same fallback.
    unlabelled = pose(forehead=(1, 1, 0), neck=(0, 0), r_hip=(2, 3))
    one_joint = pose(forehead=(4, 4))
    sizes = head_sizes(np.stack([no_forehead, unlabelled, one_joint, np.zeros((14, 3))]))
    np.testing.assert_allclose(sizes[:3], [5 / 8, 5 / 8, math.sqrt(2) / 8])
    assert np.isnan(sizes[3])


def test_stack_poses_checks_shapes_and_values():
    stacked, counts = stack_poses([np.zeros((2, 14, 3)), [], np.zeros((0, 14, 3))], "gt")
    assert stacked.shape == (2, 14, 3) and counts.tolist() == [2, 0, 0]
    with pytest.raises(ValueError, match=r"pred\[1\]: expected shape"):
        stack_poses([np.zeros((1, 14, 3)), np.zeros((1, 13, 3))], "pred")
    bad = np.zeros((1, 14, 3))
    bad[0, 3, 0] = np.nan
    with pytest.raises(ValueError, match=r"gt\[0\]: keypoints must be finite"):
        stack_poses([bad], "gt")


def test_image_pairs_cover_each_image_in_prediction_then_gt_order():
    pred, gt = image_pairs(np.array([2, 0, 1, 3]), np.array([2, 1, 0, 1]))
    # Image 0: predictions 0, 1 x GT 0, 1; image 1: no prediction; image 2: no GT;
    # image 3: predictions 3, 4, 5 x GT 3.
    assert list(zip(pred.tolist(), gt.tolist())) == [(0, 0), (0, 1), (1, 0), (1, 1),
                                                     (3, 3), (4, 3), (5, 3)]
    with pytest.raises(ValueError, match="one entry per image"):
        image_pairs(np.array([1]), np.array([1, 1]))


def test_best_in_groups_breaks_ties_by_the_smaller_tiebreak():
    group = np.array([1, 0, 1, 0, 1, 2])
    value = np.array([0.5, 0.2, 0.7, 0.2, 0.7, 0.0])
    tiebreak = np.array([0, 5, 9, 3, 4, 0])
    assert best_in_groups(group, value, tiebreak).tolist() == [3, 4, 5]
