"""Auto-zoom: crops around boxes, exact coordinate maps both ways, maps pasted back."""

import numpy as np
import pytest

from pascal_person_pose import schema
from reference_model.autozoom import (BoxTransform, crop_image, crop_labels,
                                      merge_part_scores, paste_maps)
from reference_model.backbones import MEAN_RGB


def test_window_is_a_square_around_the_box_with_margin():
    t = BoxTransform.around_box([100, 50, 140, 150], size=128, margin=0.1)
    np.testing.assert_allclose(t.window, [60, 40, 180, 160])  # side 100 * 1.2, same centre
    assert t.scale == pytest.approx(128 / 120) and (t.width, t.height) == (128, 128)
    small = BoxTransform.around_box([10, 10, 20, 30], size=128, margin=0.0)
    large = BoxTransform.around_box([0, 0, 400, 300], size=128, margin=0.0)
    assert small.scale > 1 > large.scale  # small people enlarged, large ones shrunk
    t8 = t.at_stride(8)
    assert (t8.width, t8.height) == (16, 16) and t8.scale == pytest.approx(t.scale / 8)
    np.testing.assert_allclose(t8.window, t.window)


def test_coordinates_round_trip_both_ways():
    rng = np.random.default_rng(0)
    t = BoxTransform.around_box([33.3, 12.1, 87.9, 140.2], size=96, margin=0.15)
    points = rng.uniform(-50, 300, (20, 2))
    np.testing.assert_allclose(t.points_to_image(t.points_to_crop(points)), points, atol=1e-4)
    boxes = rng.uniform(0, 200, (5, 4))
    np.testing.assert_allclose(t.boxes_to_image(t.boxes_to_crop(boxes)), boxes, atol=1e-4)
    # The window's corners are the crop's corners (edges); its pixel centres map to centres.
    np.testing.assert_allclose(t.boxes_to_crop(t.window), [0, 0, 96, 96], atol=1e-4)
    np.testing.assert_allclose(t.points_to_crop(t.window[:2] + 0.5 / t.scale - 0.5), [0, 0],
                               atol=1e-5)
    kp = np.zeros((2, 14, 3), np.float32)
    kp[0, 3] = (50, 60, 2)
    kp[1, 7] = (70, 20, 0.4)
    crop = t.keypoints_to_crop(kp)
    assert (crop[0, :3] == 0).all() and crop[0, 3, 2] == 2 and crop[1, 7, 2] == np.float32(0.4)
    np.testing.assert_allclose(t.keypoints_to_image(crop), kp, atol=1e-4)


def ramp(height, width):
    """An image whose red channel is x and green channel y (a linear function)."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = np.arange(width)[None]
    image[..., 1] = np.arange(height)[:, None]
    return image


@pytest.mark.parametrize("box", [[40, 30, 60, 70], [10, 5, 200, 230]])  # enlarged, shrunk
def test_crop_samples_the_image_at_the_mapped_pixel_centres(box):
    image = ramp(240, 250)
    t = BoxTransform.around_box(box, size=64, margin=0.1)
    crop = crop_image(image, t)
    xy = t.points_to_image(np.stack([np.arange(64)] * 2, -1))
    margin = max(1, 1 / t.scale)  # samples near the border blend with the padding
    for axis, size, line in ((0, 250, crop[32, :, 0]), (1, 240, crop[:, 32, 1])):
        inside = (xy[:, axis] > margin) & (xy[:, axis] < size - 1 - margin)
        np.testing.assert_allclose(line[inside], xy[inside, axis], atol=1.01)


def test_crop_pads_with_the_mean_colour_and_labels_with_ignore():
    image = np.full((20, 30, 3), 7, np.uint8)
    labels = np.full((20, 30), 3, np.uint8)
    t = BoxTransform.around_box([0, 0, 10, 10], size=20, margin=0.5)  # window [-5, 15)
    crop = crop_image(image, t)
    assert tuple(crop[0, 0]) == MEAN_RGB and tuple(crop[19, 19]) == (7, 7, 7)
    lab = crop_labels(labels, t)
    assert lab[0, 0] == schema.IGNORE_LABEL and lab[19, 19] == 3
    assert set(np.unique(lab)) == {3, schema.IGNORE_LABEL}
    assert (lab[:5] == schema.IGNORE_LABEL).all() and (lab[5:, 5:] == 3).all()


def test_fit_image_scales_the_longer_side_and_pads_to_a_multiple():
    t = BoxTransform.fit_image(500, 375, 320, multiple=32)
    assert t.scale == pytest.approx(0.64) and (t.width, t.height) == (320, 256)
    np.testing.assert_allclose(t.boxes_to_image(t.boxes_to_crop([[0, 0, 500, 375]])),
                               [[0, 0, 500, 375]], atol=1e-3)


def test_pasted_maps_are_the_crop_maps_at_the_image_pixels():
    t = BoxTransform.around_box([40, 30, 90, 100], size=64, margin=0.1).at_stride(8)
    # A linear function of crop position survives bilinear resampling exactly.
    v, u = np.mgrid[:t.height, :t.width].astype(np.float32)
    maps = np.stack([u, v, np.ones_like(u)])
    pasted, (rows, cols) = paste_maps(maps, t, 120, 110)
    x1, y1, x2, y2 = t.window
    assert rows.start == int(np.ceil(y1 - 0.5)) and cols.stop == int(np.ceil(x2 - 0.5))
    ys, xs = np.mgrid[rows, cols]
    expected = t.points_to_crop(np.stack([xs, ys], -1))
    interior = ((expected > 0) & (expected < t.width - 1)).all(-1)
    np.testing.assert_allclose(pasted[0][interior], expected[..., 0][interior], atol=1e-3)
    np.testing.assert_allclose(pasted[1][interior], expected[..., 1][interior], atol=1e-3)
    assert (pasted[2] == 1).all()
    with pytest.raises(ValueError, match="do not match"):
        paste_maps(maps[:, :-1], t, 120, 110)
    many, _ = paste_maps(np.repeat(maps[:1], 364, axis=0), t, 120, 110)  # Pn has 364 channels
    np.testing.assert_allclose(many[363], pasted[0], rtol=1e-6)


def test_merge_averages_overlaps_and_is_background_elsewhere():
    a = BoxTransform(0.0, 0.0, 1.0, 10, 10)  # image pixels 0-9
    b = BoxTransform(5.0, 0.0, 1.0, 10, 10)  # image pixels 5-14
    pa = np.zeros((7, 10, 10), np.float32)
    pa[1] = 1  # head everywhere
    pb = np.zeros((7, 10, 10), np.float32)
    pb[2] = 1  # torso everywhere
    merged = merge_part_scores([pa, pb], [a, b], 12, 20)
    assert merged.shape == (7, 12, 20)
    np.testing.assert_allclose(merged.sum(0), 1, atol=1e-6)
    assert (merged[1, :10, :5] == 1).all() and (merged[2, :10, 10:15] == 1).all()
    assert (merged[1, :10, 5:10] == 0.5).all() and (merged[2, :10, 5:10] == 0.5).all()
    assert (merged[0, 10:] == 1).all() and (merged[0, :, 15:] == 1).all()
    assert (merged[0, :10, :15] == 0).all()
    empty = merge_part_scores([], [], 3, 4)
    assert (empty[0] == 1).all() and (empty[1:] == 0).all()


def test_merge_weighs_overlapping_boxes_by_their_scores():
    a = BoxTransform(0.0, 0.0, 1.0, 10, 10)
    b = BoxTransform(5.0, 0.0, 1.0, 10, 10)
    pa = np.zeros((7, 10, 10), np.float32)
    pa[1] = 1
    pb = np.zeros((7, 10, 10), np.float32)
    pb[2] = 1
    merged = merge_part_scores([pa, pb], [a, b], 12, 20, weights=[0.9, 0.3])
    np.testing.assert_allclose(merged[1, :10, 5:10], 0.75, rtol=1e-6)  # 0.9 / (0.9 + 0.3)
    np.testing.assert_allclose(merged[2, :10, 5:10], 0.25, rtol=1e-6)
    # alone, a box's maps are its own whatever its score; no box: background
    assert (merged[1, :10, :5] == 1).all() and (merged[2, :10, 10:15] == 1).all()
    assert (merged[0, 10:] == 1).all() and (merged[0, :, 15:] == 1).all()
    np.testing.assert_array_equal(merge_part_scores([pa, pb], [a, b], 12, 20, [1.0, 1.0]),
                                  merge_part_scores([pa, pb], [a, b], 12, 20))
    with pytest.raises(ValueError):
        merge_part_scores([pa, pb], [a, b], 12, 20, weights=[1.0])
