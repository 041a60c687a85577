"""Box inference end to end on synthetic scenes of overlapping people, and pose assembly."""

import numpy as np
import pytest

from pascal_person_pose.metrics.pose_ap import pose_ap
from reference_model.fcrf import (FULL_IMAGE_PARAMS, FcrfParams, Pose, TrainingBox,
                                  assemble_image, fcrf_box, fit_pairwise_model)
from reference_model.fcrf.assembly import (box_person, cluster_poses, image_to_map,
                                           map_to_image, pose_scores, to_image,
                                           weighted_by_box)
from reference_model.fcrf.proposals import ProposalParams, Proposals
from reference_model.fcrf.synthetic import (person_box, random_people, render_box_maps,
                                            render_score_maps)

HEIGHT, WIDTH, BOX_HEIGHT = 180, 240, 112


def scene(rng: np.random.Generator) -> np.ndarray:
    """2-4 people crowded into the middle half of the image, so that boxes overlap."""
    keypoints = random_people(rng, int(rng.integers(2, 5)), (HEIGHT, WIDTH // 2),
                              head_size=(6, 9))
    keypoints[..., 0] += np.where(keypoints[..., 2] > 0, WIDTH // 4, 0)
    return keypoints


def scene_boxes(keypoints: np.ndarray, rng: np.random.Generator):
    """(person index, box, maps, scale) for every person with at least 4 joints."""
    out = []
    for g, person in enumerate(keypoints):
        if (person[:, 2] > 0).sum() >= 4:
            box = person_box(person)
            maps, scale = render_box_maps(keypoints, box, BOX_HEIGHT, rng)
            out.append((g, box, maps, scale))
    return out


@pytest.fixture(scope="module")
def models():
    rng = np.random.default_rng(0)
    boxes = []
    for _ in range(10):
        keypoints = scene(rng)
        for _, box, maps, scale in scene_boxes(keypoints, rng):
            inside = keypoints.copy()
            inside[..., :2] = image_to_map(keypoints[..., :2], box, scale)
            boxes.append(TrainingBox(maps, inside))
    return {seg: fit_pairwise_model(boxes, use_segment_features=seg, pair_distance=3.0)
            for seg in (True, False)}


@pytest.fixture(scope="module")
def test_scenes():
    rng = np.random.default_rng(1)
    scenes = [scene(rng) for _ in range(8)]
    return [(keypoints, scene_boxes(keypoints, rng)) for keypoints in scenes]


def box_pose(maps, model, box, scale):
    """The paper's one pose per box, in image coordinates (none or one)."""
    people = [to_image(p, box, scale) for p in fcrf_box(maps, model).poses]
    best = box_person(people, box)
    return [] if best is None else [best]


def test_assembled_poses_recover_the_people(models, test_scenes):
    """Pose mAP of box inference + pose NMS, with and without segment features."""
    for seg, model in models.items():
        gt, pred = [], []
        hits = labelled = 0
        for keypoints, boxes in test_scenes:
            poses = []
            for g, box, maps, scale in boxes:
                found = box_pose(maps, model, box, scale)
                poses += found
                truth = keypoints[g]
                labelled += int((truth[:, 2] > 0).sum())
                if found:  # joint-level check: the box's own person is the one found
                    both = (found[0].keypoints[:, 2] > 0) & (truth[:, 2] > 0)
                    error = np.hypot(*(found[0].keypoints[:, :2] - truth[:, :2]).T)
                    hits += int((both & (error < 3)).sum())
            merged = assemble_image(poses)
            gt.append(keypoints.astype(np.float32))
            pred.append(np.stack([p.keypoints for p in merged]))
        table = pose_ap(gt, pred)["table"]
        assert hits / labelled > 0.85, seg
        assert table["Total"] > 75, (seg, table)


def test_full_image_mode_finds_every_person(models, test_scenes):
    keypoints, _ = test_scenes[0]
    maps = render_score_maps(keypoints, (HEIGHT, WIDTH), np.random.default_rng(2))
    poses = assemble_image(fcrf_box(maps, models[True], FULL_IMAGE_PARAMS).poses)
    people = int(((keypoints[..., 2] > 0).sum(axis=1) >= 4).sum())
    assert len(poses) >= people
    table = pose_ap([keypoints.astype(np.float32)], [np.stack([p.keypoints for p in poses])])
    assert table["table"]["Total"] > 60


def test_fcrf_box_certifies_optimality(models, test_scenes):
    _, boxes = test_scenes[0]
    _, _, maps, _ = boxes[0]
    for solver in ("highs", "scipy"):
        result = fcrf_box(maps, models[True], FcrfParams(solver=solver))
        assert result.solution.optimal
        assert result.program.n == len(result.proposals) > 14
        assert result.program.violations(result.solution.person) == []
        assert len(result.poses) >= 1


def test_pose_score_is_the_sum_of_log_joint_scores():
    keypoints = np.zeros((14, 3), np.float32)
    keypoints[:2] = [[5, 5, 0.9], [5, 9, 0.5]]
    expected = np.log(0.9) + np.log(0.5) + 12 * np.log(0.2)
    assert pose_scores(keypoints) == pytest.approx(expected)
    assert pose_scores(keypoints, missing_score=0.5) == pytest.approx(
        np.log(0.9) + 13 * np.log(0.5))


def test_a_pose_weighted_by_its_box_scales_every_joint_probability():
    keypoints = np.zeros((14, 3), np.float32)
    keypoints[:2] = [[5, 5, 0.9], [5, 9, 0.5]]
    pose = Pose(keypoints, float(pose_scores(keypoints)))
    weighted = weighted_by_box(pose, 0.4)
    np.testing.assert_allclose(weighted.keypoints[:2, 2], [0.36, 0.2], rtol=1e-6)
    assert (weighted.keypoints[2:] == 0).all()  # missing joints stay missing
    np.testing.assert_array_equal(weighted.keypoints[:, :2], keypoints[:, :2])
    # as if each of the 14 probabilities, a missing joint's 0.2 too, were times 0.4
    assert weighted.score == pytest.approx(np.log(0.36) + np.log(0.2) + 12 * np.log(0.08))
    assert pose.keypoints[0, 2] == np.float32(0.9)  # the input is left as it was
    same = weighted_by_box(pose, 1.0)  # a ground-truth box
    assert same.score == pose.score and np.array_equal(same.keypoints, pose.keypoints)


def test_cluster_poses_put_each_proposal_in_its_person():
    proposals = Proposals(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]),
                          np.array([0, 0, 1, 5]), np.array([0.9, 0.8, 0.7, 0.6]))
    poses = cluster_poses(proposals, np.array([0, 1, 0, -1]))
    assert len(poses) == 2
    best = poses[0]  # forehead 0.9 + neck 0.7 beats a lone forehead 0.8
    assert best.keypoints[0].tolist() == pytest.approx([1, 2, 0.9])
    assert best.keypoints[1].tolist() == pytest.approx([5, 6, 0.7])
    assert (best.keypoints[2:] == 0).all()
    assert best.score > poses[1].score


def test_box_frame_round_trip():
    box = (40.0, 20.0, 139.0, 219.0)
    xy = np.array([[0.0, 0.0], [49.5, 99.5]])
    image = map_to_image(xy, box, 0.5)
    assert image[0].tolist() == pytest.approx([40.5, 20.5])  # pixel centres line up
    assert image_to_map(image, box, 0.5) == pytest.approx(xy)
    assert map_to_image(xy, box, (0.5, 2.0))[1].tolist() == pytest.approx([139.5, 69.5])
    keypoints = np.zeros((14, 3), np.float32)
    keypoints[0] = (10, 10, 0.9)
    moved = to_image(Pose(keypoints, -3.0), box, 0.5)
    assert moved.keypoints[0].tolist() == pytest.approx([60.5, 40.5, 0.9])
    assert (moved.keypoints[1:] == 0).all() and moved.score == -3.0


def test_a_box_keeps_its_best_scored_person_centred_inside():
    box = (40.0, 20.0, 140.0, 220.0)  # centre (90, 120)

    def pose(score, *joints):
        keypoints = np.zeros((14, 3), np.float32)
        for j, (x, y) in enumerate(joints):
            keypoints[j] = (x, y, 0.5)
        return Pose(keypoints, score)

    fragment = pose(-20.0, (88, 118), (92, 122))  # centred on the box centre
    person = pose(-12.0, (60, 30), (120, 200))  # centre (90, 115), the whole body
    outside = pose(-1.0, (150, 20), (170, 60))  # the best score, centred outside
    assert box_person([fragment, outside, person], box) is person
    assert box_person([fragment, outside], box) is fragment
    edge = pose(-5.0, (40, 20), (40, 20))  # centred on the box's corner: inside
    assert box_person([person, edge], box) is edge
    assert box_person([outside], box) is None
    assert box_person([], box) is None
    assert box_person([Pose(np.zeros((14, 3), np.float32), 0.0)], box) is None  # no joint


def test_assemble_image_drops_duplicates_through_pose_nms():
    keypoints = random_people(np.random.default_rng(3), 1, (120, 120), missing=0.0)[0]
    keypoints[:, 2] = 0.9
    shifted = keypoints.copy()
    shifted[:, :2] += 1
    poses = [Pose(shifted.astype(np.float32), -3.0), Pose(keypoints.astype(np.float32), -2.0)]
    kept = assemble_image(poses)
    assert len(kept) == 1 and kept[0].score == -2.0
    assert assemble_image([]) == []


def test_params_are_checked():
    with pytest.raises(ValueError, match="unknown solver"):
        FcrfParams(solver="cplex")
    assert FcrfParams().proposals == ProposalParams(6, 0.2, 16.0)
    assert FULL_IMAGE_PARAMS.proposals.max_per_type == 30
