"""The FCRF of one box as an integer program: its costs, its solutions and their checks.

Every solver (the fast HiGHS path in ``ilp``, the readable pulp model in ``ilp_pulp``, the
greedy heuristic in ``gaec`` and the tests' brute force) reads a :class:`BoxProgram` and
returns a :class:`Solution`, so their answers compare number for number.

The program (paper Sec. 3.1, DeeperCut's subset partition and labelling): node ``i``
(a proposal of joint type ``t_i``) is either selected as a joint of its own type or left
as background; selected nodes are partitioned into people. Minimise

    sum_{i selected} log((1 - p_i) / p_i) + sum_{i < j same person} log((1 - P_ij) / P_ij)

subject to: at most one joint of each type per person. A labelling is stored as
``person`` (n,) int, -1 for background and a person index otherwise; that form is
transitive by construction, so feasibility is only the one-per-type rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

# Probabilities are clipped to [EPS, 1 - EPS] so that every cost is finite.
EPS = 1e-6


def log_odds_cost(p: np.ndarray) -> np.ndarray:
    """``log((1 - p) / p)``: negative (attractive) for p > 0.5, positive for p < 0.5."""
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log1p(-p) - np.log(p)


@dataclass(frozen=True)
class BoxProgram:
    """Costs of one box's program.

    ``pairwise`` is symmetric; entries of same-type pairs and the diagonal are 0 and never
    used, because two joints of one type cannot belong to one person.
    """

    types: np.ndarray  # (n,) int joint type of every proposal
    unary: np.ndarray  # (n,) float cost of selecting the proposal
    pairwise: np.ndarray  # (n, n) float cost of putting two proposals in one person

    @classmethod
    def from_probabilities(cls, types: np.ndarray, p: np.ndarray,
                           P: np.ndarray) -> BoxProgram:
        """Program from joint probabilities ``p`` (n,) and same-person ones ``P`` (n, n)."""
        types = np.asarray(types, dtype=np.int64)
        pairwise = log_odds_cost(P)
        pairwise = 0.5 * (pairwise + pairwise.T)
        pairwise[~joinable(types)] = 0.0
        return cls(types, log_odds_cost(p), pairwise)

    @property
    def n(self) -> int:
        return len(self.types)

    def subprogram(self, nodes: np.ndarray) -> BoxProgram:
        """The program restricted to ``nodes`` (used by the exact decomposition)."""
        return BoxProgram(self.types[nodes], self.unary[nodes],
                          self.pairwise[np.ix_(nodes, nodes)])

    def objective(self, person: np.ndarray) -> float:
        """Cost of a labelling (``person`` (n,) int, -1 for background)."""
        person = np.asarray(person)
        selected = person >= 0
        same = (person[:, None] == person[None, :]) & selected[:, None]
        return float(self.unary[selected].sum() + np.triu(self.pairwise * same, 1).sum())

    def violations(self, person: np.ndarray) -> list[str]:
        """Broken constraints of a labelling, one readable line each (empty when feasible)."""
        person = np.asarray(person)
        problems = []
        if person.shape != self.types.shape:
            return [f"labelling has shape {person.shape}, expected {self.types.shape}"]
        for label in np.unique(person[person >= 0]):
            types = self.types[person == label]
            if len(np.unique(types)) != len(types):
                problems.append(f"person {label} has two joints of one type: {sorted(types)}")
        return problems


def joinable(types: np.ndarray) -> np.ndarray:
    """(n, n) bool: pairs that may belong to one person (different joint types)."""
    types = np.asarray(types)
    return types[:, None] != types[None, :]


@dataclass(frozen=True)
class Solution:
    """A labelling with its cost and how far from proven optimal it may be."""

    person: np.ndarray  # (n,) int, -1 background, else a person index 0..k-1
    objective: float
    lower_bound: float  # a proven lower bound on the optimum (== objective when optimal)
    optimal: bool
    rounds: int = 0  # solver calls of the lazy-constraint loops, summed over components
    cuts: int = 0  # triangle inequalities added lazily, summed over components

    @property
    def gap(self) -> float:
        """Relative optimality gap ``(objective - lower_bound) / max(|objective|, 1)``
        (inf when the solver proved no bound)."""
        return max(0.0, self.objective - self.lower_bound) / max(abs(self.objective), 1.0)


def canonical_labels(person: np.ndarray) -> np.ndarray:
    """Relabel people 0..k-1 in order of their first node (so labellings compare equal)."""
    person = np.asarray(person, dtype=np.int64)
    out = np.full_like(person, -1)
    selected = person >= 0
    if selected.any():
        _, first, inverse = np.unique(person[selected], return_index=True, return_inverse=True)
        rank = np.argsort(np.argsort(first))
        out[selected] = rank[inverse]
    return out


def labels_from_joins(selected: np.ndarray, join: np.ndarray) -> np.ndarray:
    """Labelling from selected nodes and a symmetric join matrix: its connected components."""
    join = np.asarray(join, dtype=bool) & selected[:, None] & selected[None, :]
    _, comp = connected_components(csr_matrix(join), directed=False)
    person = np.where(selected, comp, -1)
    return canonical_labels(person)


def violated_triangles(join: np.ndarray) -> np.ndarray:
    """Triples ``(i, j, k)`` with ``i`` and ``k`` joined to ``j`` but not to each other.

    Each row is a triangle inequality ``y_ij + y_jk - y_ik <= 1`` that an integer join
    matrix breaks, listed once (``i < k``). Found through the two-path counts
    ``join @ join`` so memory stays quadratic even for full-image programs.
    """
    join = np.array(join, dtype=bool)
    np.fill_diagonal(join, False)
    as_float = join.astype(np.float32)
    broken_pairs = np.triu((as_float @ as_float > 0) & ~join, 1)
    i, k = np.nonzero(broken_pairs)
    pair, j = np.nonzero(join[i] & join[k])
    return np.stack([i[pair], j, k[pair]], axis=1)
