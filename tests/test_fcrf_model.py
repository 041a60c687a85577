"""The pairwise model: DeeperCut's labels and balance, fitting, pickle-free save and load,
bad files."""

import numpy as np
import pytest
from scipy.optimize import minimize

from pascal_person_pose.errors import InputError
from reference_model.fcrf.features import (PAIR_TYPE, FeatureParams, PairFeatures, PartRegions,
                                          pair_features)
from reference_model.fcrf.pairwise_model import PairwiseModel
from reference_model.fcrf.proposals import Proposals, box_proposals
from reference_model.fcrf.synthetic import random_people, render_score_maps
from reference_model.fcrf.training import (PAIR_DISTANCE, TrainingBox, balanced_pairs,
                                           fit_pairwise_model, pair_examples, proposal_owners)

SHAPE = (96, 128)


def training_boxes(seed: int, count: int) -> list[TrainingBox]:
    rng = np.random.default_rng(seed)
    boxes = []
    for _ in range(count):
        keypoints = random_people(rng, int(rng.integers(2, 4)), SHAPE, head_size=(7, 10))
        boxes.append(TrainingBox(render_score_maps(keypoints, SHAPE, rng), keypoints))
    return boxes


@pytest.fixture(scope="module")
def boxes():
    return training_boxes(0, 14)


@pytest.fixture(scope="module")
def models(boxes):
    return {seg: fit_pairwise_model(boxes, use_segment_features=seg) for seg in (True, False)}


def test_proposal_owners_use_the_nearest_labelled_joint_within_the_radius():
    keypoints = np.zeros((2, 14, 3))
    keypoints[0, 4] = (10, 10, 2)
    keypoints[1, 4] = (30, 10, 1)
    keypoints[1, 5] = (50, 50, 0)  # unlabelled: claims nothing
    proposals = Proposals(np.array([[12.0, 10.0], [27.0, 10.0], [20.0, 10.0], [50.0, 50.0]]),
                          np.array([4, 4, 4, 5]), np.full(4, 0.9))
    assert proposal_owners(proposals, keypoints, 8.0).tolist() == [0, 1, -1, -1]
    assert proposal_owners(proposals, keypoints, 10.0).tolist() == [0, 1, 0, -1]
    assert proposal_owners(proposals, np.zeros((0, 14, 3)), 8.0).tolist() == [-1] * 4


def test_pair_examples_follow_deepercut_labels(boxes):
    """Positive: both ends within the distance of one person's joints; an end far from
    every joint of its type makes a pair negative, whoever the other end is. Every
    positive is kept, and as many negatives per joint-type pair."""
    box = boxes[0]
    proposals = box_proposals(box.maps)
    owner = proposal_owners(proposals, box.keypoints, 2.0)
    assert (owner < 0).any()
    t = proposals.types
    i, j = np.nonzero(t[:, None] < t[None, :])
    same = (owner[i] == owner[j]) & (owner[i] >= 0)
    kinds = PAIR_TYPE[t[i], t[j]]
    examples = pair_examples(box, np.random.default_rng(0), pair_distance=2.0)
    assert examples.segment.shape == (len(examples), 10)
    assert examples.same.sum() == same.sum() > 0
    for k in np.unique(kinds):
        positives, negatives = same[kinds == k].sum(), (~same[kinds == k]).sum()
        kept = examples.pair_type == k
        assert examples.same[kept].sum() == positives
        assert (~examples.same[kept]).sum() == min(positives, negatives)
    # A larger distance takes the displaced proposals for joints: more positives.
    assert pair_examples(box, np.random.default_rng(0), pair_distance=6.0).same.sum() \
        > examples.same.sum()


def test_balance_draws_as_many_negatives_per_joint_type_pair():
    pair_type = np.repeat([0, 1, 2], [10, 10, 3])
    same = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0] + [1] * 7 + [0] * 3 + [1, 0, 0], bool)
    rows = balanced_pairs(pair_type, same, np.random.default_rng(1))
    for k, positives, negatives in ((0, 2, 2), (1, 7, 3), (2, 1, 1)):
        kept = rows[pair_type[rows] == k]
        assert (same[kept].sum(), (~same[kept]).sum()) == (positives, negatives)
    assert np.array_equal(rows, balanced_pairs(pair_type, same, np.random.default_rng(1)))
    assert (np.diff(rows) > 0).all()


def test_fitted_model_separates_held_out_pairs(models):
    for seg, model in models.items():
        assert model.weights.shape == (91, 19 if seg else 9)
        P, same = [], []
        for b in training_boxes(1, 4):  # every pair of held-out boxes, unbalanced
            proposals = box_proposals(b.maps)
            features = pair_features(proposals, b.maps,
                                     PartRegions.from_scores(b.maps.Ps) if seg else None)
            owner = proposal_owners(proposals, b.keypoints, PAIR_DISTANCE)
            P.append(model.probability(features))
            same.append((owner[features.i] == owner[features.j]) & (owner[features.i] >= 0))
        P, same = np.concatenate(P), np.concatenate(same)
        assert P[same].mean() > 0.6 and P[~same].mean() < 0.4
        # Ranking quality (AUC): a positive outranks a negative almost always.
        auc = (P[same][:, None] > P[~same][None, :]).mean()
        assert auc > 0.93


def test_model_round_trips_without_pickle(models, tmp_path):
    for seg, model in models.items():
        path = tmp_path / f"pairwise_{seg}.npz"
        model.save(path)
        with np.load(path, allow_pickle=False) as data:
            assert set(data.files) == {"format", "weights", "lo", "hi",
                                       "use_segment_features", "feature_params"}
        loaded = PairwiseModel.load(path)
        assert loaded.use_segment_features == seg
        assert loaded.feature_params == model.feature_params
        for name in ("weights", "lo", "hi"):
            assert np.array_equal(getattr(loaded, name), getattr(model, name))


def test_model_needs_part_scores_when_it_uses_them(models, boxes):
    maps = boxes[0].maps
    features = pair_features(box_proposals(maps), maps, None)
    with pytest.raises(ValueError, match="segment features"):
        models[True].probability(features)
    assert models[False].probability(features).shape == features.i.shape


def test_loading_a_bad_file_names_it(models, tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_text("not an archive")
    with pytest.raises(InputError, match="junk.npz"):
        PairwiseModel.load(junk)
    model = models[False]
    missing = tmp_path / "missing.npz"
    np.savez(missing, format=np.array("fcrf-pairwise-v1"), weights=model.weights)
    with pytest.raises(InputError, match="field lo"):
        PairwiseModel.load(missing)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, format=np.array("fcrf-pairwise-v1"), weights=model.weights[:, :5],
             lo=model.lo, hi=model.hi, use_segment_features=np.array(False),
             feature_params=np.array('{"boundary_radius": 4, "segment_samples": 16, '
                                     '"aspect": 2.5, "rectangle_samples": [16, 6]}'))
    with pytest.raises(InputError, match="field weights: shape"):
        PairwiseModel.load(wrong)
    garbled = tmp_path / "garbled.npz"
    np.savez(garbled, format=np.array("fcrf-pairwise-v1"), weights=model.weights,
             lo=model.lo, hi=model.hi, use_segment_features=np.array(False),
             feature_params=np.array("{radius: 4"))
    with pytest.raises(InputError, match="field feature_params"):
        PairwiseModel.load(garbled)
    old_format = tmp_path / "old.npz"
    np.savez(old_format, format=np.array("fcrf-pairwise-v0"), weights=model.weights,
             lo=model.lo, hi=model.hi, use_segment_features=np.array(False),
             feature_params=np.array("{}"))
    with pytest.raises(InputError, match="field format"):
        PairwiseModel.load(old_format)


def test_fit_minimises_the_penalised_logistic_loss_of_every_pair_type():
    """Checked against the whole problem, not the per-type solver: the joint objective's
    gradient vanishes at the fit, a plain L-BFGS run over all 91 blocks at once reaches no
    lower loss, and a pair type seen with one label only keeps finite weights."""
    rng = np.random.default_rng(3)
    pair_type, offset, segment, same = [], [], [], []
    for k, n in ((4, 300), (17, 200), (60, 40)):
        pair_type += [k] * n
        labels = rng.random(n) < 0.5
        offset.append(rng.normal(0, 1, (n, 4)) + 2.0 * labels[:, None])
        segment.append(rng.random((n, 10)))
        same.append(labels)
    pair_type += [88] * 5  # one label only
    offset.append(rng.normal(0, 1, (5, 4)))
    segment.append(rng.random((5, 10)))
    same.append(np.ones(5, bool))
    pair_type, offset = np.array(pair_type), np.concatenate(offset)
    segment, same = np.concatenate(segment), np.concatenate(same)
    model = PairwiseModel.fit(pair_type, offset, segment, same, l2=1.0)
    X, y = model.design(pair_type, offset, segment), same.astype(float)

    def objective(flat):
        W = flat.reshape(model.weights.shape)
        z = (X * W[pair_type]).sum(axis=1)
        grad = np.zeros_like(W)
        np.add.at(grad, pair_type, (1 / (1 + np.exp(-z)) - y)[:, None] * X)
        return np.sum(np.logaddexp(0, z) - y * z) + 0.5 * np.sum(W * W), (grad + W).ravel()

    loss, gradient = objective(model.weights.ravel())
    assert np.abs(gradient).max() < 1e-5
    reference = minimize(objective, np.zeros(model.weights.size), jac=True, method="L-BFGS-B",
                         options={"maxiter": 5000, "gtol": 1e-10, "ftol": 1e-15})
    assert loss <= reference.fun + 1e-6
    np.testing.assert_allclose(model.weights, reference.x.reshape(model.weights.shape),
                               atol=1e-3)
    assert np.isfinite(model.weights[88]).all() and model.weights[88].any()
    assert not model.weights[0].any()  # unseen pair types stay at zero


def test_fit_needs_pairs_and_keeps_feature_params():
    empty = TrainingBox(render_score_maps(np.zeros((0, 14, 3)), SHAPE), np.zeros((0, 14, 3)))
    with pytest.raises(ValueError, match="no proposal pairs"):
        fit_pairwise_model([empty])
    params = FeatureParams(boundary_radius=2)
    model = fit_pairwise_model(training_boxes(2, 2), feature_params=params)
    assert model.feature_params == params


def test_errors_below_the_training_range_extrapolate_and_stay_finite():
    """A pair type fitted on two nearly equal errors has a tiny range: a smaller error at
    test time once overflowed exp(-z) (a RuntimeWarning, then a saturated probability)."""
    kind = 5
    offset = np.array([[25.0, 25.0, 1.0, 1.0], [25.0001, 25.0001, 1.0001, 1.0001]])
    model = PairwiseModel.fit(np.array([kind, kind]), offset, None, np.array([True, False]),
                              use_segment_features=False)
    assert (model.hi[kind] - model.lo[kind]).max() < 1e-3
    below = np.array([[3.0, 2.0, 0.1, 0.0], [24.9999, 24.9999, 0.9999, 0.9999]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        design = model.design(np.array([kind, kind]), below, None)
        p = model.probability(PairFeatures(np.zeros(2, int), np.ones(2, int),
                                           np.array([kind, kind]), below, None))
    z = design[:, 1:5]
    assert np.isfinite(design).all()
    assert (z[0] == -50).all()  # far below: bounded
    np.testing.assert_allclose(z[1], -1.0, rtol=1e-3)  # just below: extrapolated as before
    np.testing.assert_allclose(design[:, 5:9], np.exp(-z))
    assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
