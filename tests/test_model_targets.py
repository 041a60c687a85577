"""Training targets: pose targets decode back to the joints, detector targets to the boxes."""

import numpy as np
import pytest
import torch

from pascal_person_pose import schema
from reference_model.config import TINY, PoseConfig
from reference_model.detector import DetectorOutput, decode_detections, size_to_head
from reference_model.pose_fcn import PoseFCN, PoseOutput
from reference_model.fcrf.maps import offset_channel
from reference_model.targets import (OTHER_TYPES, OffsetStats, cell_centres, collate,
                                     detector_targets, fit_offset_stats, gaussian_radius,
                                     grid_to_pixels, pixels_to_grid, pose_targets)

J = schema.NUM_JOINTS
STRIDE, RADIUS, LOCREF = 8, 8.0, 7.2801


def people(rng, n, size=128, unlabelled=3):
    kp = np.zeros((n, J, 3), np.float32)
    kp[..., :2] = rng.uniform(4, size - 4, (n, J, 2))
    kp[..., 2] = rng.choice([1, 2], (n, J))
    for p in range(n):
        kp[p, rng.choice(J, unlabelled, replace=False)] = 0
    return kp


def logits(p):
    return torch.logit(torch.as_tensor(p).clamp(1e-4, 1 - 1e-4))


def test_other_types_follow_the_fcrf_channel_order():
    # OTHER_TYPES[a] lists the types of type a's (dx, dy) pairs, so (14, 13, 2) is the 364.
    assert OTHER_TYPES.tolist() == [[b for b in range(J) if b != a] for a in range(J)]
    channels = [offset_channel(a, b) + axis for a in range(J) for b in OTHER_TYPES[a]
                for axis in (0, 1)]
    assert channels == list(range(364))


def test_grid_convention_round_trip():
    assert grid_to_pixels(0, 8) == 3.5 and grid_to_pixels(2, 4) == 9.5
    x = np.linspace(-3, 200, 17)
    np.testing.assert_allclose(grid_to_pixels(pixels_to_grid(x, 8), 8), x)
    c = cell_centres(3, 4, 8)
    assert c.shape == (3, 4, 2) and tuple(c[2, 1]) == (11.5, 19.5)


def test_pose_targets_decode_back_to_every_joint():
    rng = np.random.default_rng(0)
    kp = people(rng, 3)
    stats = fit_offset_stats([kp])
    h = w = 16
    t = pose_targets(kp, h, w, STRIDE, RADIUS, LOCREF, stats)
    assert t.scores.shape == (J, h, w) and t.offsets.shape == (364, h, w)
    # A decoder fed the targets as its prediction (simple peak picking at the target
    # resolution) finds every labelled joint, exactly thanks to the location refinement.
    model = PoseFCN(PoseConfig(backbone=TINY.pose.backbone))
    model.set_offset_stats(stats)
    maps = model.decode(PoseOutput(logits(t.scores)[None], torch.from_numpy(t.locref)[None],
                                   torch.from_numpy(t.offsets)[None]))[0]
    centres = cell_centres(h, w, STRIDE)
    for p, a in zip(*np.nonzero(kp[..., 2] > 0)):
        joint = kp[p, a, :2]
        d = np.linalg.norm(centres - joint, axis=-1)
        y, x = np.unravel_index(d.argmin(), d.shape)
        assert maps.scores[a, y, x] > 0.99
        assert d[y, x] <= STRIDE / np.sqrt(2)  # the peak is within a cell of the joint
        others = np.linalg.norm(kp[:, a, :2] - centres[y, x], axis=-1)
        others[kp[:, a, 2] == 0] = np.inf
        if others.argmin() != p:
            continue  # another person's joint of this type is nearer: that one owns the cell
        np.testing.assert_allclose(maps.joints[a, y, x], joint, atol=1e-3)
        # Offsets from this cell point to the same person's other labelled joints.
        for k, b in enumerate(OTHER_TYPES[a]):
            if kp[p, b, 2] > 0:
                np.testing.assert_allclose(centres[y, x] + maps.offsets[a, k, y, x],
                                           kp[p, b, :2], atol=1e-3)
                assert t.offsets_mask[offset_channel(a, b), y, x] == 1
            else:
                assert t.offsets_mask[offset_channel(a, b), y, x] == 0
    # Nothing outside the radius is positive; masks follow the positives.
    d_all = np.linalg.norm(centres[None, None] - kp[:, :, None, None, :2], axis=-1)
    d_all[kp[..., 2] == 0] = np.inf
    np.testing.assert_array_equal(t.scores, (d_all.min(0) <= RADIUS).astype(np.float32))
    np.testing.assert_array_equal(t.locref_mask, np.repeat(t.scores, 2, axis=0))


def test_nearest_person_owns_a_cell():
    kp = np.zeros((2, J, 3), np.float32)
    kp[0, 4] = (20, 20, 2)
    kp[1, 4] = (30, 20, 2)
    kp[0, 0] = (5, 5, 2)
    kp[1, 0] = (100, 100, 2)
    t = pose_targets(kp, 8, 8, STRIDE, 12.0, LOCREF, OffsetStats.uniform(1.0))
    ch = offset_channel(4, 0)
    # Cell (2, 1) centre (19.5, 11.5) is nearer person 0's wrist, cell (3, 1) person 1's.
    assert t.offsets[ch, 1, 2] == 5 - 19.5 and t.offsets[ch + 1, 1, 2] == 5 - 11.5
    assert t.offsets[ch, 1, 3] == 100 - 27.5 and t.offsets[ch + 1, 1, 3] == 100 - 11.5
    np.testing.assert_allclose(t.locref[8:10, 1, 3], ((30 - 27.5) / LOCREF, (20 - 11.5) / LOCREF))


def test_no_people_no_targets():
    t = pose_targets(np.zeros((0, J, 3)), 4, 5, STRIDE, RADIUS, LOCREF, OffsetStats.uniform(1))
    assert all(a.shape[1:] == (4, 5) and not a.any() for a in vars(t).values())
    unlabelled = pose_targets(np.zeros((2, J, 3)), 4, 5, STRIDE, RADIUS, LOCREF,
                              OffsetStats.uniform(1))
    assert not unlabelled.scores.any()


def test_offset_stats_are_per_pair_mean_and_std():
    kp = np.zeros((3, J, 3), np.float32)
    kp[:, 0] = [(10, 10, 2), (20, 10, 2), (0, 0, 0)]
    kp[:, 1] = [(10, 30, 2), (20, 50, 1), (5, 5, 2)]
    stats = fit_offset_stats([kp[:2], kp[2:]], min_std=1.0, default_std=32.0)
    ch = offset_channel(0, 1) + 1  # forehead -> neck, dy: 20 and 40
    assert stats.mean[ch] == 30 and stats.std[ch] == 10
    assert stats.mean[ch - 1] == 0 and stats.std[ch - 1] == 1.0  # dx always 0: floor
    assert stats.mean[offset_channel(1, 0) + 1] == -30
    assert stats.std[offset_channel(5, 9)] == 32.0  # never labelled together


def test_detector_targets_decode_back_to_the_boxes():
    boxes = np.array([[10, 20, 70, 150], [200, 40, 232, 100], [150, 150, 158, 170]], np.float32)
    h, w = 240 // 4, 320 // 4
    t = detector_targets(boxes, h, w, 4, 0.7)
    assert t.heatmap.max() == 1 and (t.heatmap == 1).sum() == 3 == t.mask.sum()
    assert np.abs(t.offset).max() <= 0.5
    output = DetectorOutput(logits(t.heatmap)[None], torch.from_numpy(t.offset)[None],
                            size_to_head(torch.from_numpy(t.size))[None])
    decoded, scores = decode_detections(output, k=3)[0]
    order = np.argsort(decoded[:, 0])
    np.testing.assert_allclose(decoded[order], boxes[np.argsort(boxes[:, 0])], atol=1e-3)
    assert (scores > 0.99).all()


def test_detector_targets_edge_cases():
    t = detector_targets(np.zeros((0, 4)), 6, 8, 4, 0.7)
    assert not t.heatmap.any() and not t.mask.any()
    # Zero-size and out-of-grid boxes are skipped; a shared centre cell goes to the smaller box.
    boxes = np.array([[4, 4, 4, 20], [100, 100, 120, 120], [0, 0, 32, 32], [12, 12, 20, 20]])
    t = detector_targets(boxes, 6, 8, 4, 0.7)
    assert t.mask.sum() == 1 and t.size[:, 4, 4].tolist() == [2, 2]
    r = gaussian_radius(np.array([8.0, 80.0]), np.array([8.0, 80.0]), 0.7)
    assert 0 < r[0] < r[1] and r[1] == pytest.approx(10 * r[0])


def test_collate_stacks_into_tensors():
    rng = np.random.default_rng(1)
    items = [pose_targets(people(rng, 2), 4, 4, STRIDE, RADIUS, LOCREF, OffsetStats.uniform(8))
             for _ in range(3)]
    batch = collate(items)
    assert isinstance(batch.scores, torch.Tensor) and batch.offsets.shape == (3, 364, 4, 4)
    assert torch.equal(batch.locref[1], torch.from_numpy(items[1].locref))
