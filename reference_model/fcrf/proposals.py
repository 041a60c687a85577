"""Joint proposals: the FCRF's nodes, picked from ``Pj`` by non-maximum suppression.

Per joint type, the candidates are the local maxima of the map (3x3 neighbourhood) with
probability above ``threshold``; greedily, highest first, a candidate is kept when it is
at least ``min_distance`` pixels from every kept one of its type, up to ``max_per_type``
(paper Sec. 4.1: 6, 0.2, 16). Restricting to local maxima keeps the greedy pass short
and never proposes a pixel on the slope of a kept peak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter

from pascal_person_pose.schema import NUM_JOINTS


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
    """NMS proposals of every joint type from ``Pj`` (h, w, 14)."""
    if Pj.ndim != 3 or Pj.shape[2] != NUM_JOINTS:
        raise ValueError(f"Pj must have shape (h, w, {NUM_JOINTS}), got {Pj.shape}")
    peak = (Pj == maximum_filter(Pj, size=(3, 3, 1), mode="nearest")) & (Pj > params.threshold)
    y, x, t = np.nonzero(peak)
    score = Pj[y, x, t].astype(np.float64)
    order = np.lexsort((-score, t))  # by type, then score descending (stable)
    y, x, t, score = y[order], x[order], t[order], score[order]
    keep = np.zeros(len(t), bool)
    starts = np.searchsorted(t, np.arange(NUM_JOINTS + 1))
    for a in range(NUM_JOINTS):
        members = np.arange(starts[a], starts[a + 1])
        keep[members[_greedy(x[members], y[members], params)]] = True
    xy = np.stack([x[keep], y[keep]], axis=1).astype(np.float64)
    return Proposals(xy, t[keep].astype(np.int64), score[keep])


def _greedy(x: np.ndarray, y: np.ndarray, params: ProposalParams) -> np.ndarray:
    """Indices kept among candidates sorted by descending score."""
    near = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :]) < params.min_distance
    free = np.ones(len(x), bool)
    kept = []
    while free.any() and len(kept) < params.max_per_type:
        best = int(np.argmax(free))  # first free candidate = highest score left
        kept.append(best)
        free &= ~near[best]
    return np.array(kept, dtype=np.int64)
