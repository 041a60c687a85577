"""Training the pairwise model (the FCRF stage of the paper), with DeeperCut's labels.

The examples are the proposal pairs of boxes whose people are known, with the proposals
found exactly as at test time (:func:`box_proposals`). A proposal is *on* a joint when a
labelled GT joint of its type lies within ``pair_distance`` (DeeperCut: 17 px at its
scale), and then belongs to the nearest such joint's person. A pair is positive when both
proposals are on joints of one person, negative otherwise: two people, or an endpoint on
no joint at all. In each box, negatives are subsampled to as many as the positives of
their joint-type pair (1:1, all of them where they are fewer; per box rather than over the
whole set, so that features are computed only for the pairs kept), and the 91 regressions
are fitted with an L2 penalty (:meth:`PairwiseModel.fit`).

Why these labels: at test time most pairs hold a false or displaced proposal, and the
program joins a pair only when ``P_ij`` > 0.5. Trained on true pairs alone, the "inside or
near the part" features are almost constant (both ends lie on the body) and extrapolate
on exactly the pairs that matter; trained on every pair unbalanced, ``P_ij`` learns the
base rate of false proposals and splits real people into fragments. Balanced distance
labels teach the regressions which displaced endpoint to refuse.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from pascal_person_pose.schema import NUM_JOINTS

from .features import PAIR_TYPE, FeatureParams, PartRegions, oriented_pairs, pair_features
from .maps import ScoreMaps
from .pairwise_model import PairwiseModel
from .proposals import ProposalParams, Proposals, box_proposals

PAIR_DISTANCE = 17.0  # DeeperCut's, in the map pixels of its scale


@dataclass(frozen=True)
class TrainingBox:
    maps: ScoreMaps  # the maps of one resized box
    keypoints: np.ndarray  # (G, 14, 3) GT in the maps' pixels, COCO visibility (0: unlabelled)


@dataclass(frozen=True)
class PairExamples:
    """Labelled proposal pairs of one or more boxes (the regressions' data)."""

    pair_type: np.ndarray  # (N,)
    offset: np.ndarray  # (N, 4) f(Pn)
    segment: np.ndarray  # (N, 10) f(Ps)
    same: np.ndarray  # (N,) bool: one person

    def __len__(self) -> int:
        return len(self.same)

    @classmethod
    def concatenate(cls, parts: Iterable[PairExamples]) -> PairExamples:
        parts = list(parts)
        if not parts:
            return cls(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros((0, 10)),
                       np.zeros(0, bool))
        return cls(*(np.concatenate([getattr(p, name) for p in parts])
                     for name in ("pair_type", "offset", "segment", "same")))

    def fit(self, use_segment_features: bool, feature_params: FeatureParams,
            l2: float = 1.0) -> PairwiseModel:
        """The pairwise model of these examples, with or without segment features."""
        if not len(self):
            raise ValueError("no proposal pairs to train on: the boxes have no proposals")
        return PairwiseModel.fit(self.pair_type, self.offset,
                                 self.segment if use_segment_features else None, self.same,
                                 use_segment_features, feature_params, l2)


def proposal_owners(proposals: Proposals, keypoints: np.ndarray,
                    distance: float) -> np.ndarray:
    """(n,) GT person index of each proposal: the person of the nearest labelled joint of
    its type within ``distance``, -1 when there is none (a false proposal)."""
    keypoints = np.asarray(keypoints, dtype=np.float64).reshape(-1, NUM_JOINTS, 3)
    if not len(keypoints) or not len(proposals):
        return np.full(len(proposals), -1, dtype=np.int64)
    gt = keypoints[:, proposals.types]  # (G, n, 3): each person's joint of the proposal's type
    gap = np.hypot(*(gt[..., :2] - proposals.xy[None]).transpose(2, 0, 1))
    gap[gt[..., 2] <= 0] = np.inf
    owner = gap.argmin(axis=0)
    close = gap[owner, np.arange(len(proposals))] <= distance
    return np.where(close, owner, -1)


def balanced_pairs(pair_type: np.ndarray, same: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """Rows to keep: every positive and, per joint-type pair, as many negatives drawn at
    random (every negative where there are fewer), in their original order."""
    keep = same.copy()
    for k in np.unique(pair_type):
        negatives = np.flatnonzero((pair_type == k) & ~same)
        wanted = int((same & (pair_type == k)).sum())
        if len(negatives) > wanted:
            negatives = rng.choice(negatives, wanted, replace=False)
        keep[negatives] = True
    return np.flatnonzero(keep)


def pair_examples(box: TrainingBox, rng: np.random.Generator,
                  proposal_params: ProposalParams = ProposalParams(),
                  feature_params: FeatureParams = FeatureParams(),
                  pair_distance: float = PAIR_DISTANCE) -> PairExamples:
    """The balanced labelled pairs of one box with their features (f(Ps) included)."""
    proposals = box_proposals(box.maps, proposal_params)
    i, j = oriented_pairs(proposals)
    owner = proposal_owners(proposals, box.keypoints, pair_distance)
    same = (owner[i] == owner[j]) & (owner[i] >= 0)
    keep = balanced_pairs(PAIR_TYPE[proposals.types[i], proposals.types[j]], same, rng)
    features = pair_features(proposals, box.maps, PartRegions.from_scores(box.maps.Ps),
                             feature_params, (i[keep], j[keep]))
    return PairExamples(features.pair_type, features.offset, features.segment, same[keep])


def fit_pairwise_model(boxes: Iterable[TrainingBox], use_segment_features: bool = True,
                       proposal_params: ProposalParams = ProposalParams(),
                       feature_params: FeatureParams = FeatureParams(),
                       pair_distance: float = PAIR_DISTANCE, l2: float = 1.0,
                       seed: int = 0) -> PairwiseModel:
    """Fit the 91 pair regressions on the balanced pairs of ``boxes``.

    ``use_segment_features=False`` trains the paper's "w/o seg" ablation.
    """
    rng = np.random.default_rng(seed)
    examples = PairExamples.concatenate(
        pair_examples(b, rng, proposal_params, feature_params, pair_distance) for b in boxes)
    return examples.fit(use_segment_features, feature_params, l2)
