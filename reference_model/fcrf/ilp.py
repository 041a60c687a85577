"""The fast exact solver of the box program: decomposition, clique rows, lazy triangles.

Variables per component: ``x_i`` (proposal ``i`` selected) and ``y_ij`` (``i`` and ``j``
in one person) for pairs of different joint types; same-type pairs are fixed to 0 by
having no variable. Rows:

* clique rows ``sum_{i of type a} y_ij <= x_j`` for every node ``j`` and type ``a``: a
  person holds at most one type-``a`` joint, and an edge needs selected nodes (they imply
  ``y_ij <= x_i, x_j`` and every triangle with a same-type pair, and are tighter in the
  LP relaxation);
* triangle rows ``y_ij + y_jk - y_ik <= 1`` (transitivity), added lazily.

The loop: first LP cutting planes (solve the LP relaxation, add its most violated
triangles, re-solve) until the LP breaks no triangle; an integral LP optimum then is the
answer. Otherwise the integer loop: solve the MILP, list the triangles its solution
breaks, add them, re-solve, until none is broken. The incumbent, started by GAEC and
improved by repairing each relaxed integer solution, ends the search as soon as it meets
the lower bound.

Exact decomposition: an optimal clustering only joins proposals linked through
attractive (negative-cost) pairs, since splitting a person along a cut with no attractive
pair never raises the cost; so each connected component of the attractive graph is solved
on its own. Before that, a proposal whose unary cost plus every attractive pair cost
cannot go negative is fixed to background (removing it from any person never costs).

The MILP backend is a parameter: ``"highs"`` drives HiGHS through highspy, keeping one
model whose rows grow (LP rounds restart from the last basis) and passing the incumbent
as a MIP start; ``"scipy"`` calls ``scipy.optimize.milp`` (the same HiGHS, rebuilt each
round, no warm start). Each box has a time limit: when it runs out, the best feasible
labelling is returned with the lower bound proven so far (``Solution.gap``).
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

from .gaec import gaec
from .ilp_pulp import PULP_SOLVERS, solve_pulp
from .program import (BoxProgram, Solution, canonical_labels, joinable, labels_from_joins,
                      violated_triangles)

FAST_SOLVERS = ("highs", "scipy")
SOLVERS = FAST_SOLVERS + PULP_SOLVERS
_MIP_REL_GAP = 1e-9  # prove optimality, not the default 1e-4
_ABS_TOL = 1e-7


def solve_program(program: BoxProgram, solver: str = "highs", time_limit: float = 10.0,
                  decompose: bool = True, lp_cuts: int = 1000) -> Solution:
    """Minimise the box program exactly (within ``time_limit`` seconds for the whole box).

    ``lp_cuts`` > 0 first runs LP cutting planes (at most that many of the most violated
    triangles per round) until the LP relaxation breaks no triangle: its optimum is often
    integral, which ends the search without branch and bound. 0 goes straight to the
    integer loop. The pulp solvers run the plain reference model instead (``ilp_pulp``).
    """
    if solver in PULP_SOLVERS:
        return solve_pulp(program, solver, time_limit)
    if solver not in FAST_SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; expected one of {SOLVERS}")
    deadline = time.perf_counter() + time_limit
    n = program.n
    active = free_nodes(program) if decompose else np.ones(n, bool)
    groups = attractive_components(program, active) if decompose else [np.arange(n)]
    # Smallest first; each gets a share of the time left proportional to its pair count,
    # so that a hard component cannot leave the others without a bound.
    groups.sort(key=len)
    weight = np.array([len(g) ** 2 for g in groups], dtype=np.float64)
    person = np.full(n, -1, dtype=np.int64)
    lower = upper = 0.0
    optimal = True
    rounds = cuts = 0
    next_label = 0
    for index, nodes in enumerate(groups):
        now = time.perf_counter()
        share = weight[index] / weight[index:].sum()
        sub = program.subprogram(nodes)
        part = _solve_component(sub, solver, now + share * (deadline - now), lp_cuts)
        chosen = part.person >= 0
        person[nodes[chosen]] = part.person[chosen] + next_label
        next_label += int(part.person.max(initial=-1)) + 1
        upper += part.objective
        lower += part.lower_bound
        optimal &= part.optimal
        rounds += part.rounds
        cuts += part.cuts
    return Solution(canonical_labels(person), upper, upper if optimal else lower, optimal,
                    rounds, cuts)


def free_nodes(program: BoxProgram) -> np.ndarray:
    """(n,) bool: proposals still free after fixing hopeless ones to background.

    A proposal whose unary cost plus all its attractive pair costs (over free proposals)
    is >= 0 never lowers any person's cost, so some optimum leaves it out; repeat until
    no more are fixed.
    """
    attraction = np.minimum(np.where(joinable(program.types), program.pairwise, 0.0), 0.0)
    free = np.ones(program.n, bool)
    while True:
        best_gain = program.unary + attraction[:, free].sum(axis=1)
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


def trivial_lower_bound(program: BoxProgram) -> float:
    """Sum of every negative cost: no labelling can do better."""
    pair = np.triu(np.where(joinable(program.types), program.pairwise, 0.0), 1)
    return float(np.minimum(program.unary, 0).sum() + np.minimum(pair, 0).sum())


class _Backend(Protocol):
    def add_rows(self, rows: csr_matrix, upper: np.ndarray) -> None: ...

    def solve(self, time_limit: float, start: np.ndarray | None,
              integer: bool) -> tuple[np.ndarray | None, bool, float]: ...


class _ScipyBackend:
    """``scipy.optimize.milp``: the whole model is passed again every round."""

    def __init__(self, cost: np.ndarray, rows: csr_matrix, upper: np.ndarray):
        self.cost = cost
        self.rows = [rows]
        self.upper = [upper]

    def add_rows(self, rows: csr_matrix, upper: np.ndarray) -> None:
        self.rows.append(rows)
        self.upper.append(upper)

    def solve(self, time_limit, start, integer):
        from scipy.optimize import Bounds, LinearConstraint, milp
        from scipy.sparse import vstack

        upper = np.concatenate(self.upper)
        result = milp(self.cost, integrality=np.full_like(self.cost, float(integer)),
                      bounds=Bounds(0, 1),
                      constraints=LinearConstraint(vstack(self.rows).tocsr(), -np.inf, upper),
                      options={"time_limit": max(time_limit, 1e-3),
                               "mip_rel_gap": _MIP_REL_GAP})
        bound = getattr(result, "mip_dual_bound", None)
        bound = -np.inf if bound is None or not np.isfinite(bound) else float(bound)
        z = result.x if result.x is None or not integer else np.round(result.x)
        if result.status == 0:
            bound = float(result.fun)
        return z, result.status == 0, bound


class _HighsBackend:
    """HiGHS through highspy: one model, rows appended, incumbent passed as a MIP start."""

    def __init__(self, cost: np.ndarray, rows: csr_matrix, upper: np.ndarray):
        import highspy

        self.status = highspy.HighsStatus
        self.model_status = highspy.HighsModelStatus
        self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        self.highs.setOptionValue("mip_rel_gap", _MIP_REL_GAP)
        n = len(cost)
        # passModel(num_col, num_row, num_nz, a_format=rowwise, sense=minimise, offset,
        #           costs, col bounds, row bounds, matrix, integrality)
        self.highs.passModel(n, rows.shape[0], rows.nnz, 2, 1, 0.0, cost.astype(np.float64),
                             np.zeros(n), np.ones(n), np.full(rows.shape[0], -np.inf),
                             upper.astype(np.float64), *_csr_arrays(rows),
                             np.ones(n, dtype=np.int32))
        self.integer = True

    def add_rows(self, rows: csr_matrix, upper: np.ndarray) -> None:
        self.highs.addRows(rows.shape[0], np.full(rows.shape[0], -np.inf),
                           upper.astype(np.float64), rows.nnz, *_csr_arrays(rows))

    def solve(self, time_limit, start, integer):
        n = self.highs.getNumCol()
        if integer != self.integer:
            self.highs.changeColsIntegrality(n, np.arange(n, dtype=np.int32),
                                             np.full(n, int(integer), dtype=np.int32))
            self.integer = integer
        self.highs.setOptionValue("time_limit", max(time_limit, 1e-3))
        if start is not None:
            self.highs.setSolution(n, np.arange(n, dtype=np.int32), start.astype(np.float64))
        if self.highs.run() == self.status.kError:
            raise RuntimeError("HiGHS failed: "
                               + self.highs.modelStatusToString(self.highs.getModelStatus()))
        info = self.highs.getInfo()
        optimal = self.highs.getModelStatus() == self.model_status.kOptimal
        has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
        z = np.asarray(self.highs.getSolution().col_value) if has_solution else None
        if z is not None and integer:
            z = np.round(z)
        bound = info.objective_function_value if optimal else (
            info.mip_dual_bound if integer else -np.inf)
        return z, optimal, bound if np.isfinite(bound) else -np.inf


def _csr_arrays(rows: csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row starts, column indices and values in the dtypes highspy expects."""
    rows = rows.tocsr()
    return (rows.indptr[:-1].astype(np.int32), rows.indices.astype(np.int32),
            rows.data.astype(np.float64))


class _Layout:
    """Column and row layout of one component's program."""

    def __init__(self, program: BoxProgram):
        m = program.n
        self.m = m
        self.i, self.j = np.nonzero(np.triu(joinable(program.types), 1))
        self.edge = np.full((m, m), -1, dtype=np.int64)
        self.edge[self.i, self.j] = self.edge[self.j, self.i] = m + np.arange(len(self.i))
        self.cost = np.concatenate([program.unary, program.pairwise[self.i, self.j]])
        self.clique_rows = self._clique_rows(program.types)

    def _clique_rows(self, types: np.ndarray) -> csr_matrix:
        """``sum_{i of type a} y_ij - x_j <= 0`` for every node ``j`` and partner type ``a``."""
        num_types = int(types.max()) + 1
        node = np.concatenate([self.j, self.i])
        partner_type = np.concatenate([types[self.i], types[self.j]])
        keys, row = np.unique(node * num_types + partner_type, return_inverse=True)
        edge_cols = np.concatenate([self.edge[self.i, self.j]] * 2)
        r = np.concatenate([row, np.arange(len(keys))])
        c = np.concatenate([edge_cols, keys // num_types])
        v = np.concatenate([np.ones(len(row)), -np.ones(len(keys))])
        return coo_matrix((v, (r, c)), shape=(len(keys), len(self.cost))).tocsr()

    def triangle_rows(self, triangles: np.ndarray) -> csr_matrix:
        """``y_ij + y_jk - y_ik <= 1`` for triples ``(i, j, k)`` (``y_ik`` absent if fixed 0)."""
        i, j, k = triangles.T
        ik = self.edge[i, k]
        has_ik = ik >= 0
        n = len(triangles)
        r = np.concatenate([np.arange(n), np.arange(n), np.flatnonzero(has_ik)])
        c = np.concatenate([self.edge[i, j], self.edge[j, k], ik[has_ik]])
        v = np.concatenate([np.ones(2 * n), -np.ones(int(has_ik.sum()))])
        return coo_matrix((v, (r, c)), shape=(n, len(self.cost))).tocsr()

    def join_matrix(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Node values (m,) and the symmetric matrix of edge values (m, m) of a solution."""
        join = np.zeros((self.m, self.m))
        join[self.i, self.j] = join[self.j, self.i] = z[self.m:]
        return z[:self.m], join

    def vector(self, person: np.ndarray) -> np.ndarray:
        """The 0/1 variable vector of a labelling (a MIP start)."""
        same = (person[self.i] == person[self.j]) & (person[self.i] >= 0)
        return np.concatenate([person >= 0, same]).astype(np.float64)


def fractional_triangles(join: np.ndarray, limit: int, tol: float = 1e-6) -> np.ndarray:
    """Up to ``limit`` most violated triangles ``y_ij + y_jk - y_ik <= 1`` of a fractional
    join matrix, as ``(i, j, k)`` rows; apexes are scanned in chunks to bound memory.

    Pairs without a variable (same type) hold 0 in ``join``, so a triangle whose joined
    sides include one is never violated and never listed."""
    m = len(join)
    found, violation = [], []
    chunk = max(1, 4_000_000 // max(m * m, 1))
    for start in range(0, m, chunk):
        apex = np.arange(start, min(m, start + chunk))
        # excess[c, i, k] = y_i,apex + y_apex,k - y_ik - 1
        excess = join[:, apex].T[:, :, None] + join[apex][:, None, :] - join[None] - 1.0
        c, i, k = np.nonzero(excess > tol)
        keep = i < k
        found.append(np.stack([i[keep], apex[c[keep]], k[keep]], axis=1))
        violation.append(excess[c[keep], i[keep], k[keep]])
    triangles = np.concatenate(found)
    order = np.argsort(-np.concatenate(violation), kind="stable")[:limit]
    return triangles[order]


def _solve_component(program: BoxProgram, solver: str, deadline: float,
                     lp_cuts: int) -> Solution:
    """LP cutting planes, then the integer lazy-triangle loop, on one attractive component."""
    if program.n == 1:
        person = np.array([0 if program.unary[0] < 0 else -1])
        return Solution(person, program.objective(person), program.objective(person), True)
    best = gaec(program)
    lower = trivial_lower_bound(program)
    layout = _Layout(program)
    backend_type = _HighsBackend if solver == "highs" else _ScipyBackend
    backend: _Backend = backend_type(layout.cost, layout.clique_rows,
                                     np.zeros(layout.clique_rows.shape[0]))
    rounds = cuts = 0
    integer = lp_cuts == 0
    while (remaining := deadline - time.perf_counter()) > 0:
        start = layout.vector(best.person) if integer else None
        z, optimal, bound = backend.solve(remaining, start, integer)
        rounds += 1
        if z is None or not (optimal or integer):
            break
        lower = max(lower, bound)
        selected, join = layout.join_matrix(z)
        integral = integer or bool(np.all(np.abs(z - np.round(z)) < _ABS_TOL))
        if integral:
            selected, join = selected > 0.5, join > 0.5
            triangles = violated_triangles(join)
        else:
            triangles = fractional_triangles(join, lp_cuts)
        if len(triangles) == 0 and integral:
            person = labels_from_joins(selected, join)
            if optimal:  # the relaxation's optimum is feasible: it is the optimum
                objective = program.objective(person)
                return Solution(person, objective, objective, True, rounds, cuts)
            best = min(best, Solution(person, program.objective(person), lower, False),
                       key=lambda s: s.objective)
            break
        if integral:  # a relaxed labelling, repaired, may beat the incumbent
            best = min(best, gaec(program, allowed=join), key=lambda s: s.objective)
        if best.objective <= lower + _ABS_TOL:
            return Solution(best.person, best.objective, best.objective, True, rounds, cuts)
        if len(triangles) == 0:  # fractional LP optimum within all triangles: branch
            integer = True
            continue
        backend.add_rows(layout.triangle_rows(triangles), np.ones(len(triangles)))
        cuts += len(triangles)
    return Solution(best.person, best.objective, min(lower, best.objective), False, rounds,
                    cuts)
