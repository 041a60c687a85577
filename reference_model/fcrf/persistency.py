"""Persistency: parts of an optimum known before solving, and the exact decomposition.

Each rule below names a move that never raises the cost (it only drops a proposal to the
background or splits a person), so applying it to an optimal labelling gives another
optimum. The moves only ever split or unselect, so applying them one after another
never undoes an earlier one, and some optimum obeys all the rules at once; the solver
may therefore restrict its search to labellings that do.

* Background (``free_nodes``): proposal ``i`` is in at most one person, holding at most
  one joint of each other type, so what selecting ``i`` can gain is at most
  ``u_i + sum_{types a} min(0, min_{j of type a} c_ij)``. When that is >= 0, dropping ``i``
  to the background never costs. Repeated with the fixed proposals removed.
* Components (``attractive_components``): splitting a person along a cut that crosses
  no attractive (negative-cost) pair never costs, so some optimum keeps every person
  inside one connected component of the attractive graph; components are solved alone.
* Separated pairs (``separated_pairs``): if ``c_ik`` is at least what ``i`` gains from
  the rest of a person holding ``k`` -- at most ``sum_{types a other than t_i, t_k}
  max(0, max_{j of type a} -c_ij)`` -- then moving ``i`` out of that person into a person
  of its own never costs, so some optimum separates ``i`` and ``k`` (likewise with the
  roles swapped). Their pair variable is fixed to 0.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from .program import BoxProgram, joinable


def _best_partner_gain(program: BoxProgram, free: np.ndarray) -> np.ndarray:
    """(n, types): per proposal and type, the largest attraction ``max(0, -c_ij)`` to a
    free proposal of that type (0 for the proposal's own type)."""
    attraction = np.maximum(-np.where(joinable(program.types), program.pairwise, 0.0), 0.0)
    attraction[:, ~free] = 0.0
    num_types = int(program.types.max()) + 1
    best = np.zeros((program.n, num_types))
    np.maximum.at(best.T, program.types, attraction.T)
    return best


def free_nodes(program: BoxProgram) -> np.ndarray:
    """(n,) bool: proposals not fixed to the background (repeated until none is)."""
    free = np.ones(program.n, bool)
    if program.n == 0:
        return free
    while True:
        best_gain = program.unary - _best_partner_gain(program, free).sum(axis=1)
        hopeless = free & (best_gain >= 0)
        if not hopeless.any():
            return free
        free &= ~hopeless


def attractive_components(program: BoxProgram, free: np.ndarray) -> list[np.ndarray]:
    """Node lists of the connected components of the attractive graph over ``free`` nodes."""
    attractive = joinable(program.types) & (program.pairwise < 0)
    attractive &= free[:, None] & free[None, :]
    _, comp = connected_components(csr_matrix(attractive), directed=False)
    return [np.flatnonzero((comp == c) & free) for c in np.unique(comp[free])]


def separated_pairs(program: BoxProgram) -> np.ndarray:
    """(n, n) bool, symmetric: pairs that some optimum (obeying the other rules too)
    keeps apart."""
    n = program.n
    if n == 0:
        return np.zeros((0, 0), bool)
    types = program.types
    best = _best_partner_gain(program, np.ones(n, bool))  # (n, types)
    total = best.sum(axis=1)
    # What i can gain from a person that holds k: every type but t_i and t_k.
    gain = total[:, None] - best[:, types]  # (i, k); best[i, t_i] is 0
    separated = program.pairwise >= np.minimum(gain, gain.T)
    return separated & joinable(types) & (program.pairwise > 0)
