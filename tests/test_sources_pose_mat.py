"""Pose .mat files: 1-based MATLAB cells in, 0-based COCO-visibility keypoints out, and back."""

import numpy as np
import pytest
import scipy.io

from pascal_person_pose.errors import InputError
from pascal_person_pose.schema import FLIP_INDEX, name2joint
from pascal_person_pose.sources import pose_mat

NAN = np.nan


def cells(arrays):
    out = np.empty((1, len(arrays)), dtype=object)
    for i, a in enumerate(arrays):
        out[0, i] = np.asarray(a, np.float64)
    return out


def save_pose(path, joints, boxes, **extra):
    scipy.io.savemat(path, {"joints": cells(joints), "boxes": cells(boxes), **extra})
    return path


def upstream_person(seed):
    """A 14x3 upstream joint array: 1-based x, y; v 1 visible, 2 occluded, 0 unlabelled."""
    rng = np.random.default_rng(seed)
    rows = np.column_stack([rng.uniform(1, 300, 14).round(1), rng.uniform(1, 200, 14).round(1),
                            np.tile([1, 2], 7)]).astype(np.float64)
    return rows


@pytest.fixture
def pose_file(tmp_path):
    a = upstream_person(1)
    a[5] = [NAN, NAN, 0]  # not in the image
    a[6] = [NAN, NAN, 1]  # NaN coordinates win over a stale v
    a[7] = [40.0, 50.0, 0]  # coordinates but not labelled
    a[8] = [1.0, 1.0, 1]  # the top-left pixel, MATLAB-style
    b = upstream_person(2)
    return save_pose(tmp_path / "2008_000001.mat", [a, b], [[1, 1, 300, 200], [10.5, 20, 30, 40]])


def test_read_converts_to_zero_based_coco_visibility(pose_file):
    pose = pose_mat.read_pose_mat(pose_file)
    kp, boxes = pose.keypoints, pose.boxes
    assert kp.shape == (2, 14, 3) and kp.dtype == np.float64
    assert boxes.shape == (2, 4) and boxes.dtype == np.float32
    a = upstream_person(1)
    assert np.allclose(kp[0, :5, :2], a[:5, :2] - 1)
    assert kp[0, 0, 2] == 2 and kp[0, 1, 2] == 1  # upstream 1 visible, 2 occluded
    assert kp[0, 5].tolist() == [0, 0, 0]
    assert kp[0, 6].tolist() == [0, 0, 0]
    assert kp[0, 7].tolist() == [0, 0, 0]
    assert kp[0, 8].tolist() == [0, 0, 2]
    assert set(kp[1, :, 2].tolist()) == {1.0, 2.0}
    assert boxes.tolist() == [[0, 0, 299, 199], [9.5, 19, 29, 39]]


def test_left_first_swaps_the_sides(pose_file):
    right = pose_mat.read_pose_mat(pose_file).keypoints
    left = pose_mat.read_pose_mat(pose_file, side_order="left_first").keypoints
    r_elbow, l_elbow = name2joint["r_elbow"].index, name2joint["l_elbow"].index
    assert np.array_equal(left[:, r_elbow], right[:, l_elbow])
    assert np.array_equal(left[:, :2], right[:, :2])  # forehead and neck stay
    assert np.array_equal(left, right[:, FLIP_INDEX])
    with pytest.raises(ValueError):
        pose_mat.read_pose_mat(pose_file, side_order="mirrored")


@pytest.mark.parametrize("side_order", pose_mat.SIDE_ORDERS)
def test_write_then_read_round_trips(tmp_path, side_order):
    rng = np.random.default_rng(3)
    kp = np.zeros((3, 14, 3), np.float32)
    kp[..., :2] = rng.uniform(0, 400, (3, 14, 2)).astype(np.float32)
    kp[..., 2] = rng.integers(0, 3, (3, 14))
    kp[kp[..., 2] == 0, :2] = 0
    boxes = rng.uniform(0, 300, (3, 4)).astype(np.float32)
    path = tmp_path / "out" / "x.mat"
    pose_mat.write_pose_mat(path, kp, boxes, side_order=side_order)
    back = pose_mat.read_pose_mat(path, side_order=side_order)
    assert np.array_equal(back.keypoints, kp)
    assert np.array_equal(back.boxes, boxes)
    assert [p.name for p in path.parent.iterdir()] == ["x.mat"]


def test_written_file_is_the_upstream_layout(tmp_path):
    kp = np.zeros((2, 14, 3), np.float32)
    kp[0, 0] = [0, 0, 2]  # visible, at the top-left pixel centre
    kp[0, 1] = [10, 20, 1]  # occluded
    kp[1, 4] = [5.5, 6.5, 2]
    pose_mat.write_pose_mat(tmp_path / "x.mat", kp, np.array([[0, 0, 9, 9], [1, 2, 3, 4]]))
    raw = scipy.io.loadmat(tmp_path / "x.mat")
    assert raw["joints"].shape == (1, 2) and raw["joints"].dtype == object
    assert raw["boxes"].shape == (1, 2)
    j = raw["joints"][0, 0]
    assert j.shape == (14, 3) and j.dtype == np.float64
    assert j[0].tolist() == [1, 1, 1]  # 1-based, upstream v 1 = visible
    assert j[1].tolist() == [11, 21, 2]  # upstream v 2 = occluded
    assert np.isnan(j[2:, :2]).all() and (j[2:, 2] == 0).all()
    assert raw["boxes"][0, 1].tolist() == [[2, 3, 4, 5]]


def test_upstream_file_round_trips_through_read_and_write(pose_file, tmp_path):
    pose = pose_mat.read_pose_mat(pose_file)
    pose_mat.write_pose_mat(tmp_path / "again.mat", pose.keypoints, pose.boxes)
    original, again = scipy.io.loadmat(pose_file), scipy.io.loadmat(tmp_path / "again.mat")
    a, b = original["joints"][0, 0].copy(), again["joints"][0, 0]
    a[7] = [NAN, NAN, 0]  # the unlabelled joints come back in canonical form
    a[6, 2] = 0
    # joints are float64 in memory, as in the file: the round trip keeps them exactly
    assert np.allclose(a, b, atol=1e-12, rtol=0, equal_nan=True)
    assert np.allclose(original["joints"][0, 1], again["joints"][0, 1], atol=1e-12, rtol=0)
    assert np.array_equal(original["joints"][0, 1][:, 2], again["joints"][0, 1][:, 2])
    assert all(np.allclose(x, y, atol=1e-4, rtol=0)
               for x, y in zip(original["boxes"][0], again["boxes"][0], strict=True))


def test_file_without_persons(tmp_path):
    path = save_pose(tmp_path / "empty.mat", [], [])
    pose = pose_mat.read_pose_mat(path)
    assert pose.keypoints.shape == (0, 14, 3) and pose.boxes.shape == (0, 4)
    pose_mat.write_pose_mat(tmp_path / "w.mat", pose.keypoints, pose.boxes)
    assert pose_mat.read_pose_mat(tmp_path / "w.mat").keypoints.shape == (0, 14, 3)


def one_line_error(excinfo, *needles):
    message = str(excinfo.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_wrong_joint_shape_names_file_person_and_field(tmp_path):
    path = save_pose(tmp_path / "bad.mat", [upstream_person(1), upstream_person(2)[:13]],
                     [[1, 1, 2, 2]] * 2)
    with pytest.raises(InputError) as e:
        pose_mat.read_pose_mat(path)
    one_line_error(e, "bad.mat", "person 2", "joints{2}", "14x3", "13x3")


def test_wrong_box_shape(tmp_path):
    path = save_pose(tmp_path / "bad.mat", [upstream_person(1)], [[1, 1, 2]])
    with pytest.raises(InputError) as e:
        pose_mat.read_pose_mat(path)
    one_line_error(e, "bad.mat", "person 1", "boxes{1}", "1x4")


def test_missing_boxes_and_mismatched_counts(tmp_path):
    scipy.io.savemat(tmp_path / "nobox.mat", {"joints": cells([upstream_person(1)])})
    with pytest.raises(InputError) as e:
        pose_mat.read_pose_mat(tmp_path / "nobox.mat")
    one_line_error(e, "nobox.mat", "boxes")
    path = save_pose(tmp_path / "count.mat", [upstream_person(1)] * 2, [[1, 1, 2, 2]])
    with pytest.raises(InputError) as e:
        pose_mat.read_pose_mat(path)
    one_line_error(e, "count.mat", "2 joints cells but 1 boxes", "field boxes")


def test_joints_not_a_cell(tmp_path):
    scipy.io.savemat(tmp_path / "bad.mat", {"joints": np.zeros((2, 14, 3)),
                                            "boxes": cells([[1, 1, 2, 2]] * 2)})
    with pytest.raises(InputError) as e:
        pose_mat.read_pose_mat(tmp_path / "bad.mat")
    one_line_error(e, "bad.mat", "field joints", "cell")


@pytest.mark.parametrize("row,needle", [([5, 5, 3], "v 0, 1 or 2"), ([5, 5, NAN], "nan"),
                                        ([np.inf, 5, 1], "inf")])
def test_bad_visibility_or_coordinates(tmp_path, row, needle):
    a = upstream_person(1)
    a[3] = row
    path = save_pose(tmp_path / "bad.mat", [a], [[1, 1, 2, 2]])
    with pytest.raises(InputError) as e:
        pose_mat.read_pose_mat(path)
    one_line_error(e, "bad.mat", "person 1", "joints{1}", "row 4", needle)


def test_non_finite_box(tmp_path):
    path = save_pose(tmp_path / "bad.mat", [upstream_person(1)], [[1, NAN, 2, 2]])
    with pytest.raises(InputError) as e:
        pose_mat.read_pose_mat(path)
    one_line_error(e, "bad.mat", "boxes{1}")


def test_truncated_and_missing_files(pose_file, tmp_path):
    broken = tmp_path / "broken.mat"
    broken.write_bytes(pose_file.read_bytes()[:200])
    with pytest.raises(InputError) as e:
        pose_mat.read_pose_mat(broken)
    one_line_error(e, "broken.mat")
    with pytest.raises(InputError) as e:
        pose_mat.read_pose_mat(tmp_path / "absent.mat")
    one_line_error(e, "absent.mat", "not found")


def test_writer_refuses_bad_arrays(tmp_path):
    with pytest.raises(ValueError):
        pose_mat.write_pose_mat(tmp_path / "a.mat", np.zeros((2, 13, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError):
        pose_mat.write_pose_mat(tmp_path / "b.mat", np.zeros((2, 14, 3)), np.zeros((1, 4)))
    kp = np.zeros((1, 14, 3))
    kp[0, 0, 2] = 0.5
    with pytest.raises(ValueError):
        pose_mat.write_pose_mat(tmp_path / "c.mat", kp, np.zeros((1, 4)))
    kp[0, 0] = [NAN, 3, 2]
    with pytest.raises(ValueError):
        pose_mat.write_pose_mat(tmp_path / "d.mat", kp, np.zeros((1, 4)))
    kp[0, 0] = [NAN, NAN, 0]  # an unlabelled joint may hold anything
    with pytest.raises(ValueError):
        pose_mat.write_pose_mat(tmp_path / "e.mat", kp, np.full((1, 4), np.inf))
    assert list(tmp_path.iterdir()) == []
