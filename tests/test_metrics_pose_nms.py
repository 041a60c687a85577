"""Pose NMS: group boxes, thresholds, ties, absent groups, brute force."""

import numpy as np
import pytest

import brute_force_metrics as bf
from brute_force_metrics import person
from pascal_person_pose.metrics.pose_nms import NMS_GROUPS, group_boxes, pose_nms
from pascal_person_pose.schema import JOINT_NAMES, name2joint

OFF = {"head": 1.0, "upper": 1.0, "lower": 1.0, "whole": 1.0}  # IoU never exceeds 1


def only(pose, groups):
    """The pose with every joint outside ``groups`` removed."""
    keep = [name2joint[n].index for g in groups for n in NMS_GROUPS[g]]
    out = np.zeros_like(pose)
    out[keep] = pose[keep]
    return out


def test_groups_come_from_the_schema():
    assert NMS_GROUPS["head"] == ("forehead", "neck")
    assert set(NMS_GROUPS["upper"]) == {"forehead", "neck", "r_shoulder", "l_shoulder",
                                        "r_elbow", "l_elbow", "r_wrist", "l_wrist"}
    assert set(NMS_GROUPS["lower"]) == {"r_hip", "l_hip", "r_knee", "l_knee", "r_ankle",
                                        "l_ankle"}
    assert NMS_GROUPS["whole"] == JOINT_NAMES


def test_group_boxes_grow_by_half_the_head_size():
    boxes = group_boxes(person(value=0.5)[None])
    # Forehead (20, 0) and neck (20, 10): head size 10, grown by 5 on every side.
    np.testing.assert_array_equal(boxes["head"], [[15, -5, 25, 15]])
    np.testing.assert_array_equal(boxes["lower"], [[9, 45, 31, 105]])
    np.testing.assert_array_equal(boxes["whole"], [[-5, -5, 45, 105]])
    assert np.isnan(group_boxes(only(person(), ["lower"])[None])["head"]).all()


def test_duplicates_are_removed_greedily_by_score():
    poses = np.stack([person(value=0.5), person(x=1, value=0.5), person(x=300, value=0.5)])
    assert pose_nms(poses, np.array([0.8, 0.9, 0.1])).tolist() == [1, 2]
    # Equal scores: input order decides.
    assert pose_nms(poses, np.array([0.5, 0.5, 0.5])).tolist() == [0, 2]
    assert pose_nms(poses, np.array([0.5, 0.5, 0.5])).dtype == np.intp


def test_each_group_suppresses_on_its_own():
    a = person(value=0.5)
    shared_head = person(x=200, value=0.5)  # everything far away but the head joints
    shared_head[:2] = a[:2]
    assert pose_nms(np.stack([a, shared_head]), np.array([1.0, 0.9])).tolist() == [0]
    assert pose_nms(np.stack([a, shared_head]), np.array([1.0, 0.9]), head=1.0).tolist() == [
        0, 1]
    legs = only(person(value=0.5), ["lower"])
    for thresholds, kept in [({}, [0]), (dict(OFF, lower=0.5), [0]), (OFF, [0, 1])]:
        assert pose_nms(np.stack([legs, legs]), np.array([2.0, 1.0]),
                        **thresholds).tolist() == kept


def test_absent_group_overlaps_nothing():
    with_head = only(person(value=0.5), ["head"])
    # The second pose has no head joint; its arms cover the first pose's head box.
    arms = only(person(value=0.5), ["upper"])
    arms[:2] = 0
    arms[2:5, 0] = 20
    arms[8:11, 0] = 20
    arms[2:5, 1] = [0, 5, 10]
    arms[8:11, 1] = [0, 5, 10]
    assert pose_nms(np.stack([with_head, arms]), np.array([1.0, 0.5]),
                    **dict(OFF, head=0.0)).tolist() == [0, 1]


@pytest.mark.parametrize("x, kept", [(30, [0]), (31, [0, 1])])
def test_growth_is_half_the_head_size(x, kept):
    # Head boxes are 1 px wide before growing; grown by 5 px they touch at x = 30.
    a, b = only(person(value=0.5), ["head"]), only(person(x=x - 20, value=0.5), ["head"])
    assert pose_nms(np.stack([a, b]), np.array([1.0, 0.5]), **dict(OFF, head=0.0)).tolist() == kept


def test_empty_input_and_poses_without_joints():
    assert pose_nms(np.zeros((0, 14, 3)), np.zeros(0)).tolist() == []
    poses = np.stack([np.zeros((14, 3)), person(value=0.3), np.zeros((14, 3))])
    assert pose_nms(poses, np.array([0.1, 0.2, 0.3])).tolist() == [2, 1, 0]


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="scores"):
        pose_nms(np.zeros((2, 14, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="keypoints"):
        pose_nms(np.zeros((2, 13, 3)), np.zeros(2))


@pytest.mark.parametrize("seed", range(30))
def test_agrees_with_the_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    _, preds = bf.random_split(rng, n_images=1, max_gt=4, max_pred=12, integer=seed % 2 == 0)
    poses = preds[0]
    scores = (rng.choice([0.5, 1.0, 1.5], len(poses)) if seed % 2 == 0
              else rng.uniform(0, 2, len(poses)))
    thresholds = [dict(head=0.65, upper=0.5, lower=0.5, whole=0.4),
                  dict(head=0.3, upper=0.2, lower=0.2, whole=0.1),
                  dict(head=0.9, upper=0.8, lower=0.3, whole=0.7)][seed % 3]
    assert pose_nms(poses, scores, **thresholds).tolist() == bf.pose_nms(poses, scores,
                                                                         **thresholds)
