"""Joint proposals: the FCRF's nodes, picked from ``Pj`` by pixel-level non-maximum suppression.

Per joint type (paper Sec. 4.1: 6 proposals, probability > 0.2, 16 px apart), greedily:
the most probable pixel left becomes a proposal, and every pixel closer than
``min_distance`` to it is suppressed; repeat up to ``max_per_type``. Any pixel may be
chosen, not only local maxima, so a second proposal can sit on the slope of a strong
peak, just outside the suppression radius: the near-miss alternative the FCRF picks
when the pairwise terms (offsets, segments) say the peak is off. On maps upsampled from
a network's grid, :func:`box_proposals` then moves each proposal by the location
refinement ``Pr`` (DeeperCut's locref), which places joints inside a grid cell.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pascal_person_pose.schema import NUM_JOINTS

from .maps import ScoreMaps


@dataclass(frozen=True)
class ProposalParams:
    max_per_type: int = 6
    threshold: float = 0.2  # keep probabilities strictly above
    min_distance: float = 16.0  # map pixels between kept proposals of one type


@dataclass(frozen=True)
class Proposals:
    """Proposals sorted by joint type, then by descending score."""

    xy: np.ndarray  # (n, 2) float64 pixel-centre x, y in map pixels
    types: np.ndarray  # (n,) int64 joint type
    scores: np.ndarray  # (n,) float64 Pj probability at the proposal

    def __len__(self) -> int:
        return len(self.types)


def joint_proposals(Pj: np.ndarray, params: ProposalParams = ProposalParams()) -> Proposals:
    """Pixel-level NMS proposals of every joint type from ``Pj`` (h, w, 14)."""
    if Pj.ndim != 3 or Pj.shape[2] != NUM_JOINTS:
        raise ValueError(f"Pj must have shape (h, w, {NUM_JOINTS}), got {Pj.shape}")
    h, w, _ = Pj.shape
    flat = Pj.reshape(h * w, NUM_JOINTS)
    xy, types, scores = [], [], []
    for t in range(NUM_JOINTS):
        pixels = _greedy(flat[:, t], w, params)
        xy.append(np.stack([pixels % w, pixels // w], axis=1))
        types.append(np.full(len(pixels), t, np.int64))
        scores.append(flat[pixels, t].astype(np.float64))
    return Proposals(np.concatenate(xy).astype(np.float64), np.concatenate(types),
                     np.concatenate(scores))


def _greedy(values: np.ndarray, width: int, params: ProposalParams) -> np.ndarray:
    """Flat indices of the pixels NMS keeps from one type's ``values``, best first.

    Only the best candidates need sorting: the greedy pass looks at the next-best
    candidate only while fewer than ``max_per_type`` are kept, and each kept one
    suppresses a disc, so a window of the best few thousand usually suffices; when it
    does not, the window doubles.
    """
    candidates = np.flatnonzero(values > params.threshold)
    window = 64 * params.max_per_type
    while True:
        if len(candidates) > window:
            top = candidates[np.argpartition(-values[candidates], window)[:window]]
        else:
            top = candidates
        # Best first; equal scores in row-major order, so the result is deterministic.
        top = top[np.lexsort((top, -values[top]))]
        x, y = top % width, top // width
        free = np.ones(len(top), bool)
        kept: list[int] = []
        while len(kept) < params.max_per_type and free.any():
            best = int(np.argmax(free))  # the first free candidate: the best one left
            kept.append(best)
            free &= (x - x[best]) ** 2 + (y - y[best]) ** 2 >= params.min_distance ** 2
        if len(kept) == params.max_per_type or len(top) == len(candidates):
            return top[kept]
        window *= 2


def box_proposals(maps: ScoreMaps, params: ProposalParams = ProposalParams()) -> Proposals:
    """The proposals of one box: NMS on ``maps.Pj``, moved by ``maps.Pr`` when given."""
    proposals = joint_proposals(maps.Pj, params)
    if maps.Pr is None:
        return proposals
    shift = maps.refinement_at(proposals.xy, proposals.types)
    return replace(proposals, xy=proposals.xy + shift)
