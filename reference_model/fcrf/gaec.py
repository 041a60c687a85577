"""Greedy additive edge contraction (GAEC) for the box program: a fast feasible labelling.

This is the kind of heuristic pose-tensorflow runs instead of an ILP. Here it supplies
the exact solver's starting incumbent (HiGHS warm start, and the answer kept when a time
limit stops the cutting-plane loop) and repairs relaxed solutions into feasible ones.

Clusters start as single proposals; the two clusters with the most negative summed
joining cost are merged while that sum is negative and the merge keeps one joint per type
(same-type costs are +inf, and inf survives the row and column sums). Then proposals
whose removal lowers the cost are moved to background one at a time, and people whose
total cost is positive are dropped.
"""

from __future__ import annotations

import numpy as np

from .program import BoxProgram, Solution, canonical_labels, joinable


def gaec(program: BoxProgram, allowed: np.ndarray | None = None) -> Solution:
    """A feasible labelling of ``program`` (not proven optimal: ``lower_bound`` is -inf).

    ``allowed`` (n, n) bool, when given, restricts merges to clusters linked by at least
    one allowed pair; the loop uses it to turn a relaxed join matrix into a labelling.
    """
    n = program.n
    if n == 0:
        return Solution(np.zeros(0, np.int64), 0.0, 0.0, True)
    cost = np.where(joinable(program.types), program.pairwise, np.inf)
    np.fill_diagonal(cost, np.inf)
    link = np.ones((n, n), bool) if allowed is None else np.array(allowed, dtype=bool)
    cluster = np.arange(n)
    for _ in range(n - 1):
        candidate = np.where(link, cost, np.inf)
        flat = int(np.argmin(candidate))
        if not candidate.flat[flat] < 0:
            break
        a, b = divmod(flat, n)
        cost[a] += cost[b]
        cost[:, a] = cost[a]
        cost[a, a] = np.inf
        cost[b] = np.inf
        cost[:, b] = np.inf
        link[a] |= link[b]
        link[:, a] = link[a]
        cluster[cluster == b] = a
    person = _drop_costly(program, cluster)
    return Solution(person, program.objective(person), -np.inf, False)


def _drop_costly(program: BoxProgram, cluster: np.ndarray) -> np.ndarray:
    """Move proposals, then whole people, with positive cost contribution to background."""
    person = cluster.copy()
    while True:
        same = (person[:, None] == person[None, :]) & (person >= 0)[:, None]
        np.fill_diagonal(same, False)
        marginal = program.unary + (program.pairwise * same).sum(axis=1)
        marginal[person < 0] = -np.inf
        worst = int(np.argmax(marginal))
        if not marginal[worst] > 0:
            break
        person[worst] = -1
    for label in np.unique(person[person >= 0]):
        members = np.flatnonzero(person == label)
        inner = program.pairwise[np.ix_(members, members)]
        if program.unary[members].sum() + np.triu(inner, 1).sum() > 0:
            person[members] = -1
    return canonical_labels(person)
