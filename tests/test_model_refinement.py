"""Second-stage Part FCN: the pose label maps pixel by pixel, its input and its network."""

import dataclasses

import numpy as np
import pytest
import torch

from pascal_person_pose import schema
from reference_model.config import PAPER, TINY
from reference_model.refinement import RefinementNet, pose_label_maps, second_stage_input


def drawn(rows: str, values: dict) -> np.ndarray:
    """A hand-drawn map: one character per pixel, '.' for 0."""
    lines = rows.strip().split()
    return np.array([[values.get(c, 0.0) for c in line] for line in lines], np.float32)


def test_label_maps_exact_pixels():
    kp = np.zeros((1, 14, 3), np.float32)
    kp[0, 0] = (2, 3, 0.9)  # forehead
    kp[0, 1] = (6, 3, 0.8)  # neck
    kp[0, 2] = (6, 6, 0.0)  # r_shoulder absent: no disc, no neck-shoulder stick
    maps = pose_label_maps(kp, 7, 10, stride=1, joint_radius=1, stick_width=3)
    joints = drawn("""
        ..........
        ..........
        ..f...n...
        .fff.nnn..
        ..f...n...
        ..........
        ..........""", {"f": 1 / 14, "n": 2 / 14})
    # Forehead-neck is a head bone: label 1 / 6. Width 3 = every pixel within 1.5 of the
    # segment, so the ends are rounded: (1, 2) is sqrt(2) away, (0, 3) is 2 away.
    sticks = drawn("""
        ..........
        ..........
        .hhhhhhh..
        .hhhhhhh..
        .hhhhhhh..
        ..........
        ..........""", {"h": 1 / 6})
    np.testing.assert_array_equal(maps[0], joints)
    np.testing.assert_array_equal(maps[1], sticks)


def test_label_maps_later_people_win_and_width_7_radius_3():
    kp = np.zeros((2, 14, 3), np.float32)
    kp[0, 3] = (10, 10, 1)  # r_elbow of person 0
    kp[0, 4] = (20, 10, 1)  # r_wrist: lower-arm stick
    kp[1, 9] = (12, 10, 1)  # l_elbow of person 1 on top of person 0's elbow disc
    maps = pose_label_maps(kp, 21, 31, stride=1, joint_radius=3, stick_width=7)
    disc = maps[0] == 4 / 14
    assert disc[10, 7] and disc[7, 10] and not disc[10, 6] and not disc[6, 10]
    assert maps[0, 10, 12] == 10 / 14 and maps[0, 10, 9] == 10 / 14  # person 1 drawn last
    assert maps[0, 10, 20] == 5 / 14
    lower_arm = schema.name2part["lower_arm"].id / 6
    column = maps[1][:, 15]  # a stick of width 7: rows 7..13
    assert np.nonzero(column)[0].tolist() == list(range(7, 14))
    assert (column[7:14] == lower_arm).all()
    assert maps[1, 10, 23] == lower_arm and maps[1, 10, 24] == 0  # rounded cap: 3.5 past the end


def test_label_maps_at_stride_8_use_the_grid_convention():
    kp = np.zeros((1, 14, 3), np.float32)
    kp[0, 0] = (8 * 2 + 3.5, 8 * 5 + 3.5, 1)  # the centre pixel of cell (5, 2)
    maps = pose_label_maps(kp, 8, 8, stride=8, joint_radius=0, stick_width=1)
    assert np.argwhere(maps[0]).tolist() == [[5, 2]] and not maps[1].any()
    empty = pose_label_maps(np.zeros((0, 14, 3)), 4, 4, 8, 3, 7)
    assert empty.shape == (2, 4, 4) and not empty.any()


def test_second_stage_input_and_network():
    logits = torch.randn(2, 7, 16, 16)
    kp = np.zeros((1, 14, 3), np.float32)
    kp[0, :2] = ((40, 40, 1), (40, 80, 1))
    x = second_stage_input(logits, [kp, np.zeros((0, 14, 3))], TINY.refine)
    assert x.shape == (2, 9, 16, 16)
    torch.testing.assert_close(x[:, :7].sum(1), torch.ones(2, 16, 16))
    assert x[0, 7:].any() and not x[1, 7:].any()
    net = RefinementNet(TINY.refine)
    assert net(x).shape == (2, 7, 16, 16)
    with pytest.raises(ValueError, match="1 pose sets for 2 crops"):
        second_stage_input(logits, [kp], TINY.refine)
    # The "w/o pose input" ablation: the part probabilities alone.
    ablation = dataclasses.replace(TINY.refine, use_pose=False)
    x = second_stage_input(logits, [kp, kp], ablation)
    assert x.shape == (2, 7, 16, 16) and RefinementNet(ablation)(x).shape == (2, 7, 16, 16)


def test_paper_second_stage_is_three_7x7_128_layers_and_a_classifier():
    with torch.device("meta"):
        net = RefinementNet(PAPER.refine)
        out = net(torch.empty(1, 9, 64, 64))
    convs = [m for m in net.body if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (9, 128, (7, 7)), (128, 128, (7, 7)), (128, 128, (7, 7))]
    assert sum(isinstance(m, torch.nn.ReLU) for m in net.body) == 3
    assert net.classifier.kernel_size == (1, 1) and out.shape == (1, 7, 64, 64)
