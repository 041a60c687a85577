"""Transforms keep image, part map, instance map, masks, joints and boxes consistent."""

import numpy as np
import pytest

from canonical_fixture import write_canonical_dataset
from pascal_person_pose import schema
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.transforms import (Compose, RandomCrop, RandomFlip, RandomScale, Resize,
                                           SampleArrays, crop, hflip, resize)

R_WRIST, L_WRIST = schema.JOINT_NAMES.index("r_wrist"), schema.JOINT_NAMES.index("l_wrist")
R_ELBOW, L_ELBOW = schema.JOINT_NAMES.index("r_elbow"), schema.JOINT_NAMES.index("l_elbow")


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """voc id -> SampleArrays of every fixture image (persons g have instance g + 1)."""
    root = tmp_path_factory.mktemp("canonical")
    write_canonical_dataset(root)
    return {s.voc_id: SampleArrays.from_sample(s)
            for split in ("train", "val") for s in Dataset(root, split)}


def _pixel(xy: np.ndarray) -> tuple[int, int]:
    """The pixel whose area holds a pixel-centre coordinate."""
    x, y = np.floor(np.asarray(xy) + 0.5).astype(int)
    return x, y


def _mask_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight COCO boxes of masks (pixel-edge convention); empty mask -> zeros."""
    boxes = np.zeros((len(masks), 4), np.float32)
    for g, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        if xs.size:
            boxes[g] = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    return boxes


def assert_consistent(a: SampleArrays, boxes: str = "exact") -> int:
    """Visible joints lie on one of their parts and on their own mask; masks agree with
    the instance map; boxes are the masks' tight boxes (``"exact"``, ``"near"``: within a
    pixel) or hold them (``"contain"``: a crop clips the box, not the mask's shape).
    Returns the number of joints checked."""
    height, width = a.part_map.shape
    assert a.image.shape == (height, width, 3) and a.instance_map.shape == (height, width)
    assert a.masks.shape == (len(a.keypoints), height, width)
    for g, mask in enumerate(a.masks):
        np.testing.assert_array_equal(mask, a.instance_map == g + 1)
    tight = _mask_boxes(a.masks)
    if boxes == "contain":
        held = a.masks.any(axis=(1, 2))
        assert (a.boxes[held, :2] <= tight[held, :2] + 1).all()
        ends, tight_ends = a.boxes[:, :2] + a.boxes[:, 2:], tight[:, :2] + tight[:, 2:]
        assert (ends[held] >= tight_ends[held] - 1).all()
    else:
        np.testing.assert_allclose(a.boxes, tight, atol=0 if boxes == "exact" else 1.0)
    unlabelled = a.keypoints[..., 2] == 0
    assert (a.keypoints[unlabelled] == 0).all()
    checked = 0
    for g, pose in enumerate(a.keypoints):
        for j in np.flatnonzero(pose[:, 2] == 2):
            x, y = _pixel(pose[j, :2])
            assert 0 <= x < width and 0 <= y < height
            assert a.part_map[y, x] in schema.JOINT_PART_IDS[j], schema.JOINT_NAMES[j]
            assert a.masks[g, y, x], schema.JOINT_NAMES[j]
            checked += 1
    return checked


def assert_same(a: SampleArrays, b: SampleArrays) -> None:
    for name in ("image", "part_map", "instance_map", "masks", "keypoints", "boxes"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_fixture_is_consistent(samples):
    assert sum(assert_consistent(a) for a in samples.values()) > 60


def test_flip_twice_is_identity(samples):
    for a in samples.values():
        assert_same(hflip(hflip(a)), a)


def test_flip_mirrors_and_swaps_sides(samples):
    a = samples["2009_000012"]
    flipped = hflip(a)
    assert assert_consistent(flipped) == assert_consistent(a)
    # The person's left wrist after the flip is the mirrored right wrist, still on a lower arm.
    x, y, v = a.keypoints[0, R_WRIST]
    np.testing.assert_array_equal(flipped.keypoints[0, L_WRIST], [a.width - 1 - x, y, v])
    fx, fy = _pixel(flipped.keypoints[0, L_WRIST, :2])
    assert flipped.part_map[fy, fx] == schema.name2part["lower_arm"].id
    np.testing.assert_array_equal(flipped.image, a.image[:, ::-1])
    # Part ids are not mirrored: the classes have no side.
    np.testing.assert_array_equal(np.bincount(flipped.part_map.ravel(), minlength=256),
                                  np.bincount(a.part_map.ravel(), minlength=256))


def test_flip_keeps_unlabelled_joints_zero(samples):
    a = samples["2008_000008"]  # the left elbow and wrist are outside the image
    assert (a.keypoints[0, [L_ELBOW, L_WRIST], 2] == 0).all()
    flipped = hflip(a)
    np.testing.assert_array_equal(flipped.keypoints[0, [R_ELBOW, R_WRIST]], 0)
    assert_consistent(flipped)


@pytest.mark.parametrize("factor", [2.0, 1.5, 3.25])
def test_upscaling_keeps_joints_on_their_pixels(samples, factor):
    for a in samples.values():
        width, height = round(a.width * factor), round(a.height * factor)
        scaled = resize(a, width, height)
        assert scaled.image.shape == (height, width, 3)
        boxes = "exact" if factor == 2.0 else "near"
        assert assert_consistent(scaled, boxes) == assert_consistent(a)
        labelled = a.keypoints[..., 2] > 0
        np.testing.assert_allclose(scaled.keypoints[labelled][:, 0],
                                   (a.keypoints[labelled][:, 0] + 0.5) * width / a.width - 0.5,
                                   rtol=1e-6)


def test_downscaling_keeps_label_values_and_joints_inside(samples):
    a = samples["2009_000012"]
    small = resize(a, 37, 29)
    assert small.part_map.shape == (29, 37) and small.masks.shape == (3, 29, 37)
    assert set(np.unique(small.part_map)) <= set(np.unique(a.part_map))
    assert set(np.unique(small.instance_map)) <= set(np.unique(a.instance_map))
    labelled = small.keypoints[..., 2] > 0
    assert (small.keypoints[labelled][:, :2] >= -0.5).all()
    assert (small.keypoints[labelled][:, 0] < 37 - 0.5).all()
    np.testing.assert_allclose(small.boxes, a.boxes * [37 / 96, 29 / 72, 37 / 96, 29 / 72],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="at least 1 pixel"):
        resize(a, 0, 10)


def test_crop_drops_joints_outside_the_window(samples):
    a = samples["2009_000012"]
    x0, y0, width, height = 10, 20, 50, 30
    cut = crop(a, x0, y0, width, height)
    assert assert_consistent(cut, "contain") > 0
    for pose, before in zip(cut.keypoints, a.keypoints):
        for joint, old in zip(pose, before):
            inside = old[2] > 0 and x0 <= old[0] < x0 + width and y0 <= old[1] < y0 + height
            expected = [old[0] - x0, old[1] - y0, old[2]] if inside else [0, 0, 0]
            np.testing.assert_array_equal(joint, expected)
    np.testing.assert_array_equal(cut.image, a.image[20:50, 10:60])
    # Boxes are clipped to the window; the third person (right of x = 78) leaves it
    # completely but keeps its slot, with a box of no area.
    np.testing.assert_array_equal(cut.boxes[0], [0, 0, 36, 30])  # was [6, 1, 40, 66]
    assert cut.masks.shape[0] == 3 and not cut.masks[2].any()
    assert cut.boxes[2, 2] * cut.boxes[2, 3] == 0
    assert (cut.keypoints[2] == 0).all()


def test_crop_past_the_border_pads(samples):
    a = samples["2008_000003"]
    cut = crop(a, -10, -5, 120, 90)
    assert cut.part_map.shape == (90, 120)
    np.testing.assert_array_equal(cut.part_map[5:77, 10:106], a.part_map)
    np.testing.assert_array_equal(cut.image[5:77, 10:106], a.image)
    pad = np.ones((90, 120), bool)
    pad[5:77, 10:106] = False
    assert (cut.part_map[pad] == schema.IGNORE_LABEL).all()
    assert (cut.instance_map[pad] == 0).all() and (cut.image[pad] == 0).all()
    assert not cut.masks[:, pad].any()
    np.testing.assert_array_equal(cut.keypoints[..., 2], a.keypoints[..., 2])
    assert assert_consistent(cut) == assert_consistent(a)
    outside = crop(a, 200, 200, 8, 8)  # nothing of the image left
    assert (outside.part_map == schema.IGNORE_LABEL).all() and (outside.keypoints == 0).all()
    with pytest.raises(ValueError, match="at least 1 pixel"):
        crop(a, 0, 0, 5, 0)


def test_random_pipelines_stay_consistent(samples):
    pipeline = Compose([RandomFlip(0.5), RandomScale(1.0, 2.5), RandomCrop(64, 64)])
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(12):
        for a in samples.values():
            out = pipeline(a, rng)
            assert out.image.shape == (64, 64, 3)
            checked += assert_consistent(out, "contain")
    assert checked > 100
    # The same seed gives the same draws.
    first = pipeline(samples["2008_000003"], np.random.default_rng(1))
    assert_same(first, pipeline(samples["2008_000003"], np.random.default_rng(1)))


def test_random_transforms_draw_as_told(samples):
    a = samples["2008_000003"]
    rng = np.random.default_rng(0)
    assert_same(RandomFlip(1.0)(a, rng), hflip(a))
    assert RandomFlip(0.0)(a, rng) is a
    widths = {RandomScale(0.5, 0.75)(a, rng).width for _ in range(20)}
    assert len(widths) > 3 and min(widths) >= 48 and max(widths) <= 72
    small = RandomCrop(200, 100)(a, rng)  # bigger than the image: padded around it
    assert small.part_map.shape == (100, 200)
    assert (small.part_map != schema.IGNORE_LABEL).sum() == a.part_map.size
    assert Resize(40, 30)(a, rng).part_map.shape == (30, 40)
