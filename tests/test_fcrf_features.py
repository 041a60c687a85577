"""FCRF inputs: the offset channel layout, joint proposals, pairwise features, rendered maps."""

import tracemalloc

import numpy as np
import pytest

from pascal_person_pose.schema import JOINT_NAMES, PART_NAMES, SKELETON_INDEX
from reference_model.fcrf.features import (EDGE_PART, JOINT_PARTS, NUM_PAIR_TYPES, PAIR_TYPE,
                                           FeatureParams, PartRegions, offset_features,
                                           oriented_pairs, pair_features, segment_features)
from reference_model.fcrf.maps import (NUM_OFFSET_CHANNELS, OFFSET_CHANNEL, ScoreMaps,
                                       offset_channel)
from reference_model.fcrf.proposals import (ProposalParams, Proposals, box_proposals,
                                            joint_proposals)
from reference_model.fcrf.synthetic import (part_label_map, person_box, random_people,
                                            render_box_maps, render_score_maps)

J = {name: i for i, name in enumerate(JOINT_NAMES)}
PART = {name: i for i, name in enumerate(PART_NAMES)}


def test_offset_channels_tile_the_364_channels_once():
    assert NUM_OFFSET_CHANNELS == 364
    channels = OFFSET_CHANNEL[OFFSET_CHANNEL >= 0]
    assert sorted(np.concatenate([channels, channels + 1]).tolist()) == list(range(364))
    assert offset_channel(0, 1) == 0  # forehead -> neck first
    assert offset_channel(1, 0) == 26  # neck's block starts after forehead's 13 pairs
    assert offset_channel(1, 2) == 28
    assert offset_channel(13, 12) == 362
    with pytest.raises(ValueError):
        offset_channel(3, 3)


def test_score_maps_check_shapes():
    h, w = 8, 10
    ScoreMaps(np.zeros((h, w, 14)), np.zeros((h, w, 364)), np.zeros((h, w, 7)))
    with pytest.raises(ValueError, match="Pn must have shape"):
        ScoreMaps(np.zeros((h, w, 14)), np.zeros((h, w, 28)), np.zeros((h, w, 7)))
    with pytest.raises(ValueError, match="Ps is"):
        ScoreMaps(np.zeros((h, w, 14)), np.zeros((h, w, 364)), np.zeros((h, w + 1, 7)))


def test_proposals_follow_the_nms_rules():
    Pj = np.zeros((60, 80, 14), np.float32)
    ys, xs = np.mgrid[0:60, 0:80]
    peaks = [(10, 10, 0.9), (20, 10, 0.8), (10, 40, 0.7), (50, 50, 0.6), (70, 20, 0.5),
             (70, 40, 0.45), (30, 55, 0.4), (40, 30, 0.35), (75, 5, 0.2)]  # x, y, height
    for x, y, h in peaks:
        Pj[:, :, 3] = np.maximum(Pj[:, :, 3], h * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 8))
    proposals = joint_proposals(Pj)
    assert isinstance(proposals, Proposals)
    assert (proposals.types == 3).all()
    # (20, 10) is within 16 px of the stronger (10, 10); at most 6; 0.2 is not > 0.2.
    assert proposals.xy.tolist() == [[10, 10], [10, 40], [50, 50], [70, 20], [70, 40],
                                     [30, 55]]
    assert np.all(np.diff(proposals.scores) <= 0)
    loose = joint_proposals(Pj, ProposalParams(max_per_type=20, threshold=0.1,
                                               min_distance=5))
    assert len(loose) == len(peaks)
    with pytest.raises(ValueError, match="Pj must have shape"):
        joint_proposals(np.zeros((5, 5, 13)))


def two_person_proposals(keypoints):
    """One proposal per labelled GT joint, sorted by type as joint_proposals does."""
    g, t = np.nonzero(keypoints[..., 2] > 0)
    order = np.argsort(t, kind="stable")
    return (Proposals(keypoints[g[order], t[order], :2].astype(np.float64), t[order],
                      np.full(len(t), 0.9)), g[order])


def test_offset_features_vanish_for_true_pairs_with_exact_offsets():
    keypoints = random_people(np.random.default_rng(0), 2, (120, 160), missing=0.0)
    keypoints[..., :2] = np.rint(keypoints[..., :2])
    maps = render_score_maps(keypoints, (120, 160))  # no rng: the ideal maps
    proposals, owner = two_person_proposals(keypoints)
    i, j = oriented_pairs(proposals)
    assert (proposals.types[i] < proposals.types[j]).all()
    f = offset_features(proposals, maps, i, j)
    same = owner[i] == owner[j]
    assert np.allclose(f[same], 0.0, atol=1e-3)
    assert (f[~same, :2] > 1).all()
    # The second pair: distances are Euclidean, angles in [0, pi].
    assert (f[:, 2:] >= 0).all() and (f[:, 2:] <= np.pi).all()


def test_offset_features_by_hand():
    Pn = np.zeros((20, 20, 364), np.float32)
    a, b = J["neck"], J["r_shoulder"]
    Pn[5, 5, offset_channel(a, b):offset_channel(a, b) + 2] = (0, 4)  # points down 4 px
    Pn[5, 9, offset_channel(b, a):offset_channel(b, a) + 2] = (-4, 0)  # points back exactly
    proposals = Proposals(np.array([[5.0, 5.0], [9.0, 5.0]]), np.array([a, b]),
                          np.array([0.9, 0.9]))
    maps = ScoreMaps(np.zeros((20, 20, 14)), Pn, np.zeros((20, 20, 7)))
    f = offset_features(proposals, maps, np.array([0]), np.array([1]))[0]
    assert f[0] == pytest.approx(np.hypot(4, 4))  # |(4,0) - (0,4)|
    assert f[1] == pytest.approx(0.0)
    assert f[2] == pytest.approx(np.pi / 2)
    assert f[3] == pytest.approx(0.0)
    # The same offsets on a stride-4 grid under 80 x 80 maps: proposals at (21, 21) and
    # (37, 21) read cells (5, 5) and (5, 9), and the offsets are in map pixels.
    coarse = ScoreMaps(np.zeros((80, 80, 14)), Pn, np.zeros((80, 80, 7)), offset_stride=4)
    far = Proposals(np.array([[21.0, 21.0], [37.0, 21.0]]), np.array([a, b]),
                    np.array([0.9, 0.9]))
    g = offset_features(far, coarse, np.array([0]), np.array([1]))[0]
    assert g[0] == pytest.approx(np.hypot(16, 4)) and g[1] == pytest.approx(12.0)


def test_refinement_moves_proposals_between_cell_centres():
    Pr = np.zeros((4, 4, 14, 2))
    Pr[1, 1, 3] = (2.0, -1.0)
    Pr[1, 2, 3] = (6.0, -1.0)
    maps = ScoreMaps(np.zeros((32, 32, 14)), np.zeros((4, 4, 364)), np.zeros((32, 32, 7)),
                     offset_stride=8, Pr=Pr)
    # Cell (1, 1)'s centre is pixel (11.5, 11.5); halfway to cell (1, 2) the shift is the mean.
    at = maps.refinement_at(np.array([[11.5, 11.5], [15.5, 11.5], [11.5, 11.5]]),
                            np.array([3, 3, 4]))
    assert at.tolist() == [[2.0, -1.0], [4.0, -1.0], [0.0, 0.0]]
    Pj = np.zeros((32, 32, 14))
    Pj[11, 11, 3] = 0.9
    maps = ScoreMaps(Pj, maps.Pn, maps.Ps, 8, Pr)
    # Pixel 11 is 15/16 of the way from cell 0's centre (3.5) to cell 1's (11.5).
    w = 0.9375 ** 2
    assert box_proposals(maps).xy.tolist() == [[11 + 2.0 * w, 11 - 1.0 * w]]
    with pytest.raises(ValueError, match="Pn is"):
        ScoreMaps(Pj, np.zeros((3, 4, 364)), maps.Ps, 8)
    with pytest.raises(ValueError, match="Pr must have shape"):
        ScoreMaps(Pj, maps.Pn, maps.Ps, 8, np.zeros((4, 4, 14)))


def test_pixel_level_nms_keeps_a_near_miss_on_the_slope_of_a_peak():
    """A broad peak: the next proposal of its type is the best pixel just outside the
    suppression radius (ties broken row-major), not another local maximum."""
    ys, xs = np.mgrid[0:40, 0:40]
    Pj = np.zeros((40, 40, 14))
    Pj[:, :, 5] = 0.9 * np.exp(-((xs - 20) ** 2 + (ys - 20) ** 2) / 200)
    found = joint_proposals(Pj, ProposalParams(max_per_type=2, min_distance=4))
    assert found.xy.tolist() == [[20, 20], [20, 16]]
    assert found.scores[1] == pytest.approx(0.9 * np.exp(-16 / 200))
    assert len(joint_proposals(Pj, ProposalParams(max_per_type=6, min_distance=4))) == 6


def test_segment_features_on_a_drawn_forearm():
    labels = np.zeros((40, 60), np.uint8)
    labels[15:25, 10:50] = PART["lower_arm"]  # a horizontal forearm, 10 px thick
    labels[10:30, 50:60] = PART["upper_arm"]
    regions = PartRegions.from_labels(labels)
    elbow, wrist, ankle = J["r_elbow"], J["r_wrist"], J["r_ankle"]
    proposals = Proposals(np.array([[50.0, 20.0], [12.0, 20.0], [30.0, 35.0]]),
                          np.array([elbow, wrist, ankle]), np.full(3, 0.9))
    i, j = np.array([0, 1]), np.array([1, 2])  # elbow-wrist (neighbours), wrist-ankle
    f = segment_features(proposals, regions, i, j, FeatureParams(boundary_radius=3))
    # Elbow {upper_arm, lower_arm}: at the border of both.
    assert f[0, 0:4].tolist() == [1, 1, 0, 1]
    # Wrist {lower_arm}: inside, 2 px from the end -> near the boundary; no second part.
    assert f[0, 4:8].tolist() == [1, 1, 0, 0]
    assert f[0, 8] == pytest.approx(1.0)  # the segment lies in the forearm
    # Rectangle 38 x 15.2 against the 40 x 10 forearm: IoU about 380 / (578 + 400 - 380).
    assert f[0, 9] == pytest.approx(380 / 598, abs=0.06)
    assert f[1, 8:].tolist() == [0, 0]  # wrist-ankle are not skeleton neighbours
    assert f[1, 4:8].tolist() == [0, 0, 0, 0]  # the ankle is in the background


def test_near_boundary_matches_the_window_by_brute_force_without_copying_maps():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 7, (300, 400)).astype(np.uint8)
    labels[50:250, 100:300] = PART["torso"]  # a large uniform region: windows inside it
    regions = PartRegions.from_labels(labels)
    n = 500  # points around, on and off the map
    x, y = rng.uniform(-5, 405, n), rng.uniform(-5, 305, n)
    part = rng.integers(-1, 7, n)
    radius = 2
    expected = np.zeros(n, bool)
    for k in range(n):
        xi, yi = int(np.rint(x[k])), int(np.rint(y[k]))
        window = labels[max(yi - radius, 0):max(yi + radius + 1, 0),
                        max(xi - radius, 0):max(xi + radius + 1, 0)]
        expected[k] = part[k] >= 0 and (window == part[k]).any() and (window != part[k]).any()
    tracemalloc.start()
    got = regions.near_boundary(x, y, part, radius)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert got.tolist() == expected.tolist()
    assert expected.any() and not expected.all()
    # A copy of the map per point would be n * 301 * 401 * 4 bytes (241 MB) here.
    assert peak < 1_000_000


def test_rectangle_iou_counts_only_the_overlapped_limb():
    labels = np.zeros((40, 100), np.uint8)
    labels[15:25, 10:50] = PART["lower_arm"]
    twin = labels.copy()
    twin[15:25, 60:95] = PART["lower_arm"]  # another person's forearm elsewhere
    proposals = Proposals(np.array([[48.0, 20.0], [12.0, 20.0]]),
                          np.array([J["r_elbow"], J["r_wrist"]]), np.full(2, 0.9))
    i, j = np.array([0]), np.array([1])
    one = segment_features(proposals, PartRegions.from_labels(labels), i, j)
    two = segment_features(proposals, PartRegions.from_labels(twin), i, j)
    assert one[0, 9] == pytest.approx(two[0, 9])


def test_pair_features_cover_every_pair_of_different_types():
    rng = np.random.default_rng(1)
    keypoints = random_people(rng, 3, (100, 120))
    maps = render_score_maps(keypoints, (100, 120), rng)
    proposals = joint_proposals(maps.Pj)
    features = pair_features(proposals, maps, PartRegions.from_scores(maps.Ps))
    t = proposals.types
    expected = (t[:, None] < t[None, :]).sum()
    assert len(features.i) == expected == features.segment.shape[0]
    assert features.offset.shape == (expected, 4)
    assert (features.pair_type == PAIR_TYPE[t[features.i], t[features.j]]).all()
    assert pair_features(proposals, maps, None).segment is None
    assert NUM_PAIR_TYPES == 91 and sorted(PAIR_TYPE[np.triu_indices(14, 1)]) == list(range(91))


def test_schema_links_reach_the_feature_tables():
    assert (EDGE_PART >= 0).sum() == 2 * len(SKELETON_INDEX)
    assert EDGE_PART[J["forehead"], J["neck"]] == PART["head"]
    assert EDGE_PART[J["r_hip"], J["l_hip"]] == PART["torso"]
    assert JOINT_PARTS[J["neck"]].tolist() == [PART["head"], PART["torso"]]
    assert JOINT_PARTS[J["forehead"]].tolist() == [PART["head"], -1]


def test_rendered_maps_peak_at_the_joints_and_paint_the_parts():
    rng = np.random.default_rng(2)
    keypoints = random_people(rng, 2, (100, 140), missing=0.0)
    maps = render_score_maps(keypoints, (100, 140))
    x, y = np.rint(keypoints[0, J["l_knee"], :2]).astype(int)
    assert maps.Pj[y, x, J["l_knee"]] > 0.9
    labels = part_label_map(keypoints, (100, 140))
    assert set(np.unique(labels)) == set(range(7))
    assert (np.argmax(maps.Ps, axis=2) == labels).all()
    noisy = render_score_maps(keypoints, (100, 140), rng)
    assert noisy.Pj.min() >= 0 and noisy.Pj.max() <= 1
    assert np.allclose(noisy.Ps.sum(axis=2), 1, atol=1e-5)


def test_box_maps_place_people_in_the_box_frame():
    keypoints = random_people(np.random.default_rng(4), 1, (200, 200), missing=0.0)
    box = person_box(keypoints[0])
    maps, scale = render_box_maps(keypoints, box, 100)
    assert scale == pytest.approx(100 / (box[3] - box[1] + 1))
    assert maps.shape == (100, round((box[2] - box[0] + 1) * scale))
    u, v = (keypoints[0, J["neck"], :2] - box[:2] + 0.5) * scale - 0.5
    peak = np.unravel_index(np.argmax(maps.Pj[:, :, J["neck"]]), maps.shape)
    assert np.hypot(peak[1] - u, peak[0] - v) <= 1.0
