"""The prediction pipeline with randomly initialised tiny networks, the trivial baselines and
the CLI's errors: shapes, valid submissions, the ablation switches, one-line errors."""

import dataclasses

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from canonical_fixture import write_canonical_dataset
from pascal_person_pose import schema
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.scoring import score
from pascal_person_pose.submission import read_submission, validate_submission
from reference_model.baselines import MeanPose, gt_boxes, trivial_submission
from reference_model.cli import main
from reference_model.config import TINY
from reference_model.fcrf import PairwiseModel, RenderParams, render_score_maps
from reference_model.fcrf.features import NUM_OFFSET_FEATURES, NUM_PAIR_TYPES
from reference_model.model import FcnMaps, Networks, ReferenceModel
from reference_model.predict import (PredictOptions, predict_image, predict_split,
                                     submission_score)
from reference_model.pose_fcn import PoseMaps
from reference_model.targets import cell_centres


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_canonical_dataset(tmp_path_factory.mktemp("data"))


def attractive_pairwise(use_segment_features: bool) -> PairwiseModel:
    """P_ij = sigmoid(3) for every pair: every pair of proposals wants one person."""
    model = PairwiseModel(np.zeros((NUM_PAIR_TYPES, 0)), np.zeros((NUM_PAIR_TYPES, 4)),
                          np.ones((NUM_PAIR_TYPES, NUM_OFFSET_FEATURES)), use_segment_features)
    weights = np.zeros((NUM_PAIR_TYPES, model.num_inputs))
    weights[:, 0] = 3.0
    return dataclasses.replace(model, weights=weights)


@pytest.fixture(scope="module")
def random_model():
    """Random tiny networks whose joint scores hover around 0.5 (so there are proposals)
    and a detector that fires everywhere (its 4 best peaks are kept)."""
    torch.manual_seed(0)
    config = dataclasses.replace(TINY, detector=dataclasses.replace(TINY.detector,
                                                                    max_detections=4))
    networks = Networks.build(config)
    with torch.no_grad():
        for layer in (networks.pose.score_head.deep, networks.pose.score_head.skip):
            layer.bias.zero_()
        networks.detector.heatmap[-1].bias.fill_(3.0)
        networks.detector.size[-1].bias.fill_(8.0)
    return ReferenceModel(networks, {s: attractive_pairwise(s) for s in (True, False)})


def test_submission_score_is_monotone_and_in_unit_interval():
    log_scores = np.array([14 * np.log(0.2), -3.0, -0.5, 0.0])
    mapped = submission_score(log_scores)
    assert np.all(np.diff(mapped) > 0) and mapped[0] == pytest.approx(0.2) and mapped[-1] == 1


def test_people_place_joints_by_location_refinement(random_model):
    """One person drawn on a 16x16 grid under a 128-pixel crop: every joint is found, at its
    best pixel moved by its cell's location refinement."""
    rng = np.random.default_rng(0)
    grid_xy = np.array([(8, 1), (8, 3), (6, 3), (5, 6), (5, 8), (7, 8), (7, 11), (7, 14),
                        (10, 3), (11, 6), (11, 8), (9, 8), (9, 11), (9, 14)], np.float64)
    person = np.concatenate([grid_xy, np.full((14, 1), 2.0)], axis=1)[None]
    ideal = render_score_maps(person, (16, 16), params=RenderParams(sigma=0.8))
    shift = rng.uniform(-3, 3, (14, 1, 1, 2)).astype(np.float32)
    joints = cell_centres(16, 16, 8)[None] + shift  # (14, 16, 16, 2)
    offsets = np.moveaxis(ideal.Pn.reshape(16, 16, 14, 13, 2), (0, 1), (2, 3)) * 8
    pose = PoseMaps(np.moveaxis(ideal.Pj, -1, 0).astype(np.float32), joints, offsets, 8)
    # One pixel per joint type above the threshold, near its cell's centre.
    upsampled = np.zeros((128, 128, 14), np.float32)
    for t, (x, y) in enumerate(grid_xy.astype(int)):
        upsampled[8 * y + 3, 8 * x + 3, t] = ideal.Pj[y, x, t]
    part = np.repeat(np.repeat(ideal.Ps, 8, 0), 8, 1)
    maps = FcnMaps([pose], torch.zeros(1, 7, 16, 16), upsampled[None], part[None])
    poses = random_model.people(maps, 0)
    assert len(poses) == 1
    keypoints = poses[0].keypoints
    assert (keypoints[:, 2] > 0.5).all()
    expected = 8 * grid_xy + 3 + shift[:, 0, 0]
    np.testing.assert_allclose(keypoints[:, :2], expected, atol=1e-4)


@pytest.mark.parametrize("options", [
    PredictOptions(),
    PredictOptions(use_segment_features=False),
    PredictOptions(pose_refinement=False),
    PredictOptions(full_image=True),
    PredictOptions(gt_boxes=True),
], ids=lambda o: o.label())
def test_predict_split_writes_a_valid_submission(random_model, data, tmp_path, options):
    result = predict_split(random_model, data["root"], "val", tmp_path / "sub", options,
                           meta={"method": options.label()}, progress=False)
    dataset = Dataset(data["root"], "val")
    submission = read_submission(result.path)
    assert validate_submission(submission, dataset) == []
    assert result.images == len(dataset) and set(submission.parts) == set(data["splits"]["val"])
    assert result.poses == len(submission.poses) > 0
    assert all(0 < record["score"] <= 1 for record in submission.poses)
    assert set(result.seconds) == {"detector", "fcn", "fcrf", "refinement", "merge"}
    scores = score(data["root"], result.path)
    assert 0 <= scores["pose_ap"]["table"]["Total"] <= 100


def test_predict_one_image_boxes_and_shapes(random_model, data):
    dataset = Dataset(data["root"], "val")
    sample = dataset[dataset.index_of("2009_000012")]
    full = predict_image(random_model, sample.image, PredictOptions(full_image=True))
    np.testing.assert_array_equal(full.boxes, [[0, 0, sample.width, sample.height]])
    oracle = predict_image(random_model, sample.image, PredictOptions(gt_boxes=True),
                           sample.boxes)
    expected = np.concatenate([sample.boxes[:, :2], sample.boxes[:, :2] + sample.boxes[:, 2:]], 1)
    np.testing.assert_allclose(oracle.boxes, expected)
    assert len(oracle.keypoints) <= len(expected)  # one pose per box at most, then NMS
    for result in (full, oracle):
        assert result.part_map.shape == (sample.height, sample.width)
        assert result.part_map.dtype == np.uint8 and result.part_map.max() < schema.NUM_PARTS
        assert result.keypoints.shape[1:] == (14, 3) and len(result.scores) == len(result.keypoints)
    with pytest.raises(ValueError, match="no ground-truth boxes"):
        predict_image(random_model, sample.image, PredictOptions(gt_boxes=True))


def test_mean_pose_baseline(data, tmp_path):
    train = Dataset(data["root"], "train")
    mean_pose = MeanPose.fit(train)
    assert mean_pose.xy.shape == (14, 2) and (mean_pose.frequency > 0).all()
    # The mean pose of these standing people has its head above its ankles, left of centre
    # for the right side (the person faces the viewer).
    assert mean_pose.xy[0, 1] < mean_pose.xy[7, 1] and mean_pose.xy[2, 0] < mean_pose.xy[8, 0]
    boxes = np.array([[10, 20, 30, 60]], np.float32)
    poses = mean_pose.at_boxes(boxes)
    np.testing.assert_allclose(poses[0, :, :2], 10 + mean_pose.xy * [20, 40] + [0, 10] - 0.5)
    val = Dataset(data["root"], "val")
    path = trivial_submission(val, mean_pose, gt_boxes, tmp_path / "trivial.zip",
                              {"method": "mean pose"}, progress=False)
    assert validate_submission(read_submission(path), val) == []
    scores = score(data["root"], path)
    assert scores["parts"]["per_class"]["head"] == 0 and scores["parts"]["miou"] > 0


def test_cli_errors_are_one_line_exit_2(data, tmp_path):
    runner = CliRunner()
    cases = [
        (["predict", "--checkpoint", str(tmp_path / "none"), "--data", str(data["root"]),
          "--out", str(tmp_path / "s")], "model.pt: no trained model here"),
        (["train", "--config", "huge", "--data", str(data["root"]), "--out",
          str(tmp_path / "t")], "unknown config 'huge'"),
        (["train", "--data", str(data["root"]), "--out", str(tmp_path / "t"),
          "--stop-after", "everything"], "unknown stage 'everything'"),
        (["train", "--data", str(data["root"]), "--out", str(tmp_path / "t"), "--device",
          "quantum"], "unknown device 'quantum'"),
        (["trivial", "--data", str(data["root"]), "--out", str(tmp_path / "s")],
         "exactly one of --checkpoint"),
        (["predict", "--data", str(tmp_path / "absent"), "--checkpoint", str(tmp_path),
          "--out", str(tmp_path / "s")], "does not exist"),
        (["train", "--data", str(data["root"]), "--out", str(tmp_path / "t"),
          "--fcn-steps", "-1"], "-1 is not in the range"),
    ]
    for args, message in cases:
        result = runner.invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], \
            (args, result.output)
    assert runner.invoke(main, ["--help"]).exit_code == 0
    assert "--no-segment-features" in runner.invoke(main, ["predict", "--help"]).output
