"""Bootstrap intervals and paired comparisons: exactness of the weighted statistics,
coverage on simulated data, identical submissions, the CLI and its JSON format."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from pascal_person_pose.bootstrap import (compare, intervals, p_value, resample_weights,
                                          weighted_ap)
from pascal_person_pose.cli import main
from pascal_person_pose.evaluation import PartStatistics, PoseStatistics, Statistics, summarize
from pascal_person_pose.metrics.pose_ap import voc_ap
from pascal_person_pose.schema import NUM_JOINTS, NUM_PARTS, SIZE_BUCKETS, SIZE_THRESHOLDS
from pascal_person_pose.scoring import evaluation
from pascal_person_pose.submission import write_submission


def _detections(rng, n_images, ties=False):
    """One joint type: per image a few positives, true and false detections."""
    positives = rng.poisson(2, n_images)
    image, score, tp = [], [], []
    for i, n in enumerate(positives):
        found = int(rng.binomial(n, 0.8))
        false = int(rng.poisson(1.0))
        image += [i] * (found + false)
        score += list(rng.normal(1, 1, found)) + list(rng.normal(0, 1, false))
        tp += [True] * found + [False] * false
    score = np.array(score)
    if ties:
        score = np.round(score, 1)
    return np.array(image, np.intp), score, np.array(tp), positives


@pytest.mark.parametrize("seed", range(6))
def test_weighted_ap_with_unit_weights_is_voc_ap(seed):
    rng = np.random.default_rng(seed)
    image, score, tp, positives = _detections(rng, 40, ties=seed % 2 == 1)
    ap = weighted_ap(score, tp, image, positives, np.ones((1, 40)))
    assert ap[0] == pytest.approx(voc_ap(score, tp, positives.sum()), abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_weighted_ap_is_the_ap_of_the_resampled_split(seed):
    """A resample's AP equals voc_ap over the images drawn, copies of a detection ranked
    next to each other (distinct scores: the only ties are the copies)."""
    rng = np.random.default_rng(seed)
    image, score, tp, positives = _detections(rng, 30)
    weights = resample_weights(30, 5, seed)
    for w, ap in zip(weights, weighted_ap(score, tp, image, positives, weights)):
        copies = w[image].astype(int)
        expected = voc_ap(np.repeat(score, copies), np.repeat(tp, copies), int(w @ positives))
        assert ap == pytest.approx(expected, abs=1e-12)


def test_resample_weights_draw_every_image_count_times():
    weights = resample_weights(50, 20, seed=4)
    assert weights.shape == (20, 50) and (weights.sum(axis=1) == 50).all()
    assert np.array_equal(weights, resample_weights(50, 20, seed=4))
    assert not np.array_equal(weights, resample_weights(50, 20, seed=5))
    with pytest.raises(ValueError, match="at least 1"):
        resample_weights(50, 0, seed=0)


def test_p_value():
    assert p_value(np.zeros(99)) == 1.0
    assert p_value(np.ones(99)) == pytest.approx(2 / 100)
    assert p_value(np.r_[np.ones(50), -np.ones(49)]) == 1.0


# --- coverage on simulated splits -----------------------------------------------------

def _parts_statistics(rng, n_images, mean):
    confusion = rng.poisson(mean, (n_images, NUM_PARTS, NUM_PARTS))
    return Statistics(np.arange(n_images), None,
                      PartStatistics(confusion, np.zeros((n_images, 4, NUM_PARTS, NUM_PARTS),
                                                         np.int64),
                                     np.zeros((n_images, 4), np.int64)),
                      {"size_thresholds": list(SIZE_THRESHOLDS)})


def _pose_statistics(rng, n_images):
    image, score, tp, positives = _detections(rng, n_images)
    per_joint = np.zeros((n_images, NUM_JOINTS), np.int64)
    per_joint[:, 0] = positives  # one joint type (forehead) carries everything
    adk_count = rng.poisson(3, (n_images, NUM_JOINTS))
    adk_total = np.array([[rng.gamma(2, 10, c).sum() for c in row] for row in adk_count])
    return Statistics(np.arange(n_images), PoseStatistics(
        det_image=image, det_joint=np.zeros(len(image), np.intp), det_score=score, det_tp=tp,
        positives=per_joint, adk_total=adk_total, adk_count=adk_count,
        unmatched=np.zeros(n_images, np.int64), skipped=np.zeros(n_images, np.int64)),
        None, {"size_thresholds": list(SIZE_THRESHOLDS)})


def _coverage(make, truth: dict, paths, splits=100, resamples=200) -> dict:
    hits = {path: 0 for path in paths}
    for k in range(splits):
        stats = make(np.random.default_rng(1000 + k))
        tree, _ = intervals(stats, summarize(stats), resamples, seed=k)
        for path in paths:
            node = tree
            for key in path:
                node = node[key]
            hits[path] += node[0] <= truth[path] <= node[1]
    return {path: count / splits for path, count in hits.items()}


def test_part_iou_intervals_cover_the_true_value_at_the_nominal_rate():
    rng = np.random.default_rng(0)
    mean = rng.uniform(0.5, 4, (NUM_PARTS, NUM_PARTS)) + np.diag(rng.uniform(20, 60, NUM_PARTS))
    tp = np.diag(mean)
    iou = 100 * tp / (mean.sum(0) + mean.sum(1) - tp)  # the population IoU of each class
    truth = {("parts", "per_class", "head"): iou[1], ("parts", "miou"): iou.mean()}
    coverage = _coverage(lambda r: _parts_statistics(r, 150, mean), truth, list(truth))
    for path, rate in coverage.items():
        assert 0.88 <= rate <= 1.0, (path, rate)


def test_ap_and_adk_intervals_cover_the_true_value_at_the_nominal_rate():
    huge = _pose_statistics(np.random.default_rng(99), 200_000)  # the population, nearly
    tables = summarize(huge)
    truth = {("pose_ap", "table", "Head"): tables["pose_ap"]["table"]["Head"],
             ("adk", "table", "Ave."): 100 * 2 * 10}  # terms: gamma(2, 10), mean 20
    coverage = _coverage(lambda r: _pose_statistics(r, 300), truth, list(truth))
    for path, rate in coverage.items():
        assert 0.88 <= rate <= 1.0, (path, rate)


# --- real submissions -------------------------------------------------------------------

@pytest.fixture(scope="module")
def jittered(oracle, tmp_path_factory):
    rng = np.random.default_rng(8)
    poses = []
    for pose in oracle["poses"]:
        kp = np.array(pose["keypoints"]).reshape(14, 3)
        present = kp[:, 2] > 0
        kp[present, :2] += rng.normal(0, 3, (present.sum(), 2))
        kp[present, 2] = rng.uniform(0.1, 1, present.sum())
        poses.append(dict(pose, keypoints=kp.ravel().tolist()))
    parts = {voc: np.where(rng.uniform(size=m.shape) < 0.2, rng.integers(0, 7, m.shape), m)
             .astype(np.uint8) for voc, m in oracle["parts"].items()}
    return write_submission(tmp_path_factory.mktemp("jittered") / "s", poses, parts)


def test_identical_submissions_differ_by_exactly_zero(canonical, jittered):
    a = evaluation(canonical["root"], jittered)
    b = evaluation(canonical["root"], jittered)
    result = compare(a.statistics, b.statistics, a.summarize(), b.summarize(), 300, seed=2)
    assert result["rows"] and result["bootstrap"]["method"] == "paired percentile"
    for row in result["rows"]:
        if row["a"] is not None:
            assert row["difference"] == 0.0 and row["interval"] == [0.0, 0.0], row
            assert row["p_value"] == 1.0


def test_cli_score_bootstrap_follows_the_agreed_json(canonical, jittered, tmp_path):
    out = tmp_path / "s.json"
    args = ["score", str(canonical["root"]), str(jittered), "--bootstrap", "200", "--seed",
            "7", "--json", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.stderr
    scores = json.loads(out.read_text())
    assert scores["bootstrap"] == {"resamples": 200, "seed": 7, "level": 0.95,
                                   "method": "percentile"}
    tree = scores["intervals"]
    assert list(tree) == ["pose_ap", "adk", "parts", "parts_by_size"]
    assert list(tree["pose_ap"]) == ["table"] and list(tree["adk"]) == ["table"]
    assert list(tree["pose_ap"]["table"]) == list(scores["pose_ap"]["table"])
    assert list(tree["parts"]) == ["per_class", "miou"]
    assert list(tree["parts_by_size"]) == list(SIZE_BUCKETS)
    for column, value in scores["pose_ap"]["table"].items():
        low, high = tree["pose_ap"]["table"][column]
        assert low <= high
    low, high = tree["parts"]["miou"]
    assert low <= scores["parts"]["miou"] <= high
    assert "95% interval" in result.output
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and json.loads(out.read_text()) == scores  # seeded


def test_cli_compare(canonical, oracle, jittered, tmp_path):
    out = tmp_path / "c.json"
    result = CliRunner().invoke(main, ["compare", str(canonical["root"]),
                                       str(oracle["perfect_dir"]), str(jittered),
                                       "--resamples", "200", "--json", str(out)])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(out.read_text())
    rows = {tuple(r["path"]): r for r in doc["rows"]}
    miou = rows[("parts", "miou")]
    assert miou["a"] == 100.0 and miou["difference"] == pytest.approx(100.0 - miou["b"])
    assert miou["interval"][0] > 0 and miou["p_value"] < 0.05
    assert "difference" in result.output and "p-value" in result.output
    bad = CliRunner().invoke(main, ["compare", str(canonical["root"]), str(jittered),
                                    str(jittered), "--resamples", "0"])
    assert bad.exit_code == 2
