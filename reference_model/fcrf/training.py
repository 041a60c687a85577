"""Training the pairwise model from boxes with ground truth (the FCRF stage of the paper).

Labels come from GT, as in DeeperCut: a proposal belongs to the GT person whose labelled
joint of the same type is nearest, if within ``match_radius`` map pixels (default half
the proposal NMS distance, so one GT joint claims at most one proposal); a pair of
proposals is a positive ("same person") when both belong to the same person. Pairs with
a false proposal are negatives: such a pair should never be joined.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from pascal_person_pose.schema import NUM_JOINTS

from .features import FeatureParams, PartRegions, pair_features
from .maps import ScoreMaps
from .pairwise_model import PairwiseModel
from .proposals import ProposalParams, Proposals, joint_proposals


@dataclass(frozen=True)
class TrainingBox:
    maps: ScoreMaps  # the maps of one resized box
    keypoints: np.ndarray  # (G, 14, 3) GT in the maps' pixels, COCO visibility (0: unlabelled)


@dataclass(frozen=True)
class PairExamples:
    pair_type: np.ndarray  # (N,)
    offset: np.ndarray  # (N, 4) f(Pn)
    segment: np.ndarray | None  # (N, 10) f(Ps)
    same: np.ndarray  # (N,) bool


def proposal_owners(proposals: Proposals, keypoints: np.ndarray,
                    match_radius: float) -> np.ndarray:
    """(n,) GT person index of each proposal, -1 for a false proposal."""
    keypoints = np.asarray(keypoints, dtype=np.float64).reshape(-1, NUM_JOINTS, 3)
    if not len(keypoints) or not len(proposals):
        return np.full(len(proposals), -1, dtype=np.int64)
    gt = keypoints[:, proposals.types]  # (G, n, 3): each person's joint of the proposal's type
    distance = np.hypot(*(gt[..., :2] - proposals.xy[None]).transpose(2, 0, 1))
    distance[gt[..., 2] <= 0] = np.inf
    owner = distance.argmin(axis=0)
    close = distance[owner, np.arange(len(proposals))] <= match_radius
    return np.where(close, owner, -1)


def pair_examples(box: TrainingBox, use_segment_features: bool = True,
                  proposal_params: ProposalParams = ProposalParams(),
                  feature_params: FeatureParams = FeatureParams(),
                  match_radius: float | None = None) -> PairExamples:
    """Features and same-person labels of every proposal pair of one box."""
    radius = proposal_params.min_distance / 2 if match_radius is None else match_radius
    proposals = joint_proposals(box.maps.Pj, proposal_params)
    regions = PartRegions.from_scores(box.maps.Ps) if use_segment_features else None
    features = pair_features(proposals, box.maps.Pn, regions, feature_params)
    owner = proposal_owners(proposals, box.keypoints, radius)
    same = (owner[features.i] == owner[features.j]) & (owner[features.i] >= 0)
    return PairExamples(features.pair_type, features.offset, features.segment, same)


def fit_pairwise_model(boxes: Iterable[TrainingBox], use_segment_features: bool = True,
                       proposal_params: ProposalParams = ProposalParams(),
                       feature_params: FeatureParams = FeatureParams(),
                       match_radius: float | None = None, l2: float = 1.0) -> PairwiseModel:
    """Fit the 91 pair regressions on all proposal pairs of ``boxes``.

    ``use_segment_features=False`` trains the paper's "w/o seg" ablation.
    """
    examples = [pair_examples(b, use_segment_features, proposal_params, feature_params,
                              match_radius) for b in boxes]
    if not examples or not sum(len(e.same) for e in examples):
        raise ValueError("no proposal pairs to train on: the boxes have no proposals")
    segment = (np.concatenate([e.segment for e in examples]) if use_segment_features
               else None)
    return PairwiseModel.fit(np.concatenate([e.pair_type for e in examples]),
                             np.concatenate([e.offset for e in examples]), segment,
                             np.concatenate([e.same for e in examples]),
                             use_segment_features, feature_params, l2)
