"""The LP relaxation of one component, with its pair columns generated on demand.

A box of 84 proposals has 3276 pair variables, but an optimum joins few pairs and most
pairs are repulsive. The relaxation therefore starts with ``x`` for every proposal and
``y`` only for the pairs given (the attractive ones and the incumbent's), and prices the
others in: after each solve, every absent column's reduced cost ``c - A^T pi`` is computed
against all rows (rows are kept over all columns, so an absent column's coefficients are
known), and those with a negative one are added.

Each solve gives a proven lower bound whatever the columns and however inexact the
duals (an interior-point solve without crossover is fine): with ``lambda = -pi >= 0``
for the rows ``A z <= b`` and ``0 <= z <= 1``,

    c^T z  >=  c^T z + lambda^T (A z - b)  >=  -lambda^T b + sum_j min(0, (c - A^T pi)_j)

for every feasible ``z`` of the full relaxation, so of every labelling (``b`` is 0 for
every row but the plain triangles of the baseline, which have 1). The same sum
bounds what any labelling using column ``j`` can cost (``bound + max(0, rc_j)``), which
lets the integer phase leave out columns that cannot beat the incumbent.

Cuts that stop binding are dropped between rounds (``drop_slack_cuts``): a row with
slack and no dual at the last optimum does not hold that optimum up, so without it the
same point stays optimal (the bound never goes back), and each later solve is cheaper; a
dropped cut that becomes violated again is separated again.

Backends: ``"highs"`` keeps one highspy model whose rows and columns grow (the simplex
restarts from the last basis); ``"scipy"`` passes the whole model to ``scipy.optimize``
(the same HiGHS) every solve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csc_matrix, csr_matrix, vstack

from .cuts import Columns, clique_rows
from .program import BoxProgram

_PRICE_TOL = 1e-9
_SLACK_TOL = 1e-6  # a cut with more slack than this does not bind


@dataclass(frozen=True)
class LpResult:
    z: np.ndarray | None  # (columns.size,) point, 0 for absent columns; None: no solution
    bound: float  # proven lower bound on every labelling's cost (-inf if none)
    reduced: np.ndarray  # (columns.size,) reduced costs against every row
    iterations: int  # simplex iterations (interior-point ones for "ipm")
    duals: np.ndarray | None = None  # (rows,) row duals of the solve, in row order


class Relaxation:
    """Rows ``A z <= b`` over all columns, a solver model over the present ones."""

    def __init__(self, program: BoxProgram, columns: Columns, present: np.ndarray,
                 backend: str = "highs"):
        self.columns = columns
        self.cost = np.concatenate([program.unary,
                                    program.pairwise[columns.first, columns.second]])
        present = np.asarray(present, dtype=bool).copy()
        present[:columns.nodes] = True
        self.present = present
        self.order = np.flatnonzero(present)  # solver column -> full column
        self.blocks = [clique_rows(columns)]
        self.upper = [np.zeros(self.blocks[0].shape[0])]
        model = _BACKENDS[backend]
        self.model = model(self.cost[self.order], self.blocks[0][:, self.order], self.upper[0])

    @property
    def rows(self) -> int:
        return sum(block.shape[0] for block in self.blocks)

    def solve(self, method: str = "simplex", time_limit: float = np.inf,
              integer: bool = False, start: np.ndarray | None = None
              ) -> tuple[LpResult, bool, float]:
        """Solve over the present columns; returns the result, whether the solver proved
        its optimum, and (integer solves) the solver's own bound. ``method``: "simplex"
        (dual, from the last basis), "ipm" (interior point, no crossover) or "crossover"
        (interior point, then a vertex)."""
        values, duals, optimal, solver_bound, iterations = self.model.solve(
            method, time_limit, integer, None if start is None else start[self.order])
        if values is None:
            return LpResult(None, -np.inf, np.zeros(len(self.cost)), iterations), False, -np.inf
        z = np.zeros(len(self.cost))
        z[self.order] = values
        if integer:
            z = np.round(z)
            return LpResult(z, -np.inf, np.zeros(len(self.cost)), iterations), optimal, \
                solver_bound
        reduced = self.cost.copy()
        bound = 0.0
        start_row = 0
        for block, upper in zip(self.blocks, self.upper):
            pi = np.minimum(duals[start_row:start_row + block.shape[0]], 0.0)
            reduced -= block.T @ pi
            bound += float(pi @ upper)
            start_row += block.shape[0]
        bound = bound + float(np.minimum(reduced, 0.0).sum()) if optimal else -np.inf
        return LpResult(z, bound, reduced, iterations, duals), optimal, bound

    def add_rows(self, rows: csr_matrix, upper: np.ndarray | None = None) -> None:
        """Rows ``rows z <= upper`` (0 by default) over all columns."""
        if rows.shape[0] == 0:
            return
        upper = np.zeros(rows.shape[0]) if upper is None else np.asarray(upper, np.float64)
        self.blocks.append(rows)
        self.upper.append(upper)
        self.model.add_rows(rows[:, self.order].tocsr(), upper)

    def drop_slack_cuts(self, result: LpResult) -> int:
        """Delete the cut rows (every block but the clique rows) that have slack and a zero
        dual at ``result``, the last solve over the present rows; returns how many."""
        if result.duals is None or len(self.blocks) == 1:
            return 0
        if len(result.duals) != self.rows:
            raise ValueError(f"the result has {len(result.duals)} row duals, the relaxation "
                             f"{self.rows} rows: drop cuts right after the solve")
        first = self.blocks[0].shape[0]
        cuts = vstack(self.blocks[1:]).tocsr()
        upper = np.concatenate(self.upper[1:])
        slack = upper - cuts @ result.z
        idle = (np.abs(result.duals[first:first + len(upper)]) <= _PRICE_TOL) & (
            slack > _SLACK_TOL)
        if not idle.any():
            return 0
        self.model.delete_rows(first + np.flatnonzero(idle))
        self.blocks[1:] = [cuts[~idle]]
        self.upper[1:] = [upper[~idle]]
        return int(idle.sum())

    def add_columns(self, new: np.ndarray) -> None:
        new = np.asarray(new, dtype=np.int64)
        new = new[~self.present[new]]
        if len(new) == 0:
            return
        entries = vstack([block[:, new] for block in self.blocks]).tocsc()
        self.present[new] = True
        self.order = np.concatenate([self.order, new])
        self.model.add_columns(self.cost[new], entries)

    def negative_columns(self, reduced: np.ndarray, allowed: np.ndarray,
                         limit: int) -> np.ndarray:
        """Absent allowed columns with a negative reduced cost, most negative first."""
        candidates = np.flatnonzero(~self.present & allowed & (reduced < -_PRICE_TOL))
        return candidates[np.argsort(reduced[candidates], kind="stable")[:limit]]


class _HighsModel:
    """highspy: one model, rows and columns appended, the basis kept between solves."""

    def __init__(self, cost: np.ndarray, rows: csr_matrix, upper: np.ndarray):
        import highspy  # the "model" extra; only needed when this backend is used

        self.highspy = highspy
        # highspy.Highs() enables its Python callbacks on construction, a call that prints
        # HiGHS's banner to stdout before output_flag can be set (once per process, in the
        # middle of `ppp-baseline` output); its C++ base, all this class uses, does not.
        self.highs = getattr(getattr(highspy, "_core", None), "_Highs", highspy.Highs)()
        for name, value in (("output_flag", False), ("presolve", "off"),
                            ("mip_rel_gap", 1e-9)):
            self.highs.setOptionValue(name, value)
        n = len(cost)
        rows = rows.tocsr()
        # passModel(num_col, num_row, num_nz, a_format=rowwise, sense=minimise, offset,
        #           costs, col bounds, row bounds, matrix, integrality)
        self.highs.passModel(n, rows.shape[0], rows.nnz, 2, 1, 0.0, cost.astype(np.float64),
                             np.zeros(n), np.ones(n), np.full(rows.shape[0], -np.inf),
                             upper.astype(np.float64), *_csr_arrays(rows),
                             np.zeros(n, dtype=np.int32))
        self.integer = False

    def add_rows(self, rows: csr_matrix, upper: np.ndarray) -> None:
        self.highs.addRows(rows.shape[0], np.full(rows.shape[0], -np.inf), upper, rows.nnz,
                           *_csr_arrays(rows))

    def delete_rows(self, rows: np.ndarray) -> None:
        """Rows deleted by index; the basis of the rows that stay is kept."""
        self.highs.deleteRows(len(rows), np.asarray(rows, np.int32))

    def add_columns(self, cost: np.ndarray, entries: csc_matrix) -> None:
        k = len(cost)
        self.highs.addCols(k, cost.astype(np.float64), np.zeros(k), np.ones(k), entries.nnz,
                           entries.indptr[:-1].astype(np.int32),
                           entries.indices.astype(np.int32), entries.data.astype(np.float64))
        if self.integer:
            n = self.highs.getNumCol()
            self.highs.changeColsIntegrality(k, np.arange(n - k, n, dtype=np.int32),
                                             np.ones(k, dtype=np.int32))

    def solve(self, method, time_limit, integer, start):
        highs = self.highs
        n = highs.getNumCol()
        if integer != self.integer:
            highs.changeColsIntegrality(n, np.arange(n, dtype=np.int32),
                                        np.full(n, int(integer), dtype=np.int32))
            self.integer = integer
        highs.setOptionValue("time_limit", float(max(min(time_limit, 1e6), 1e-3)))
        if method in ("ipm", "crossover"):
            highs.setOptionValue("solver", "ipx")
            highs.setOptionValue("run_crossover", "on" if method == "crossover" else "off")
        else:
            highs.setOptionValue("solver", "simplex" if not integer else "choose")
        # Presolve stays off: with a MIP start, HiGHS 1.16's presolve can misstate the
        # start's objective in the reduced space and stop with a wrong "optimal" bound.
        if start is not None:
            highs.setSolution(n, np.arange(n, dtype=np.int32), start.astype(np.float64))
        if highs.run() == self.highspy.HighsStatus.kError:
            raise RuntimeError("HiGHS failed: " + highs.modelStatusToString(
                highs.getModelStatus()))
        info = highs.getInfo()
        status = highs.getModelStatus()
        optimal = status == self.highspy.HighsModelStatus.kOptimal
        iterations = info.simplex_iteration_count + info.ipm_iteration_count
        has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
        if integer:
            values = np.asarray(highs.getSolution().col_value) if has_solution else None
            bound = info.objective_function_value if optimal else info.mip_dual_bound
            return values, None, optimal, bound if np.isfinite(bound) else -np.inf, iterations
        if not optimal:
            return None, None, False, -np.inf, iterations
        solution = highs.getSolution()
        return (np.asarray(solution.col_value), np.asarray(solution.row_dual), True,
                info.objective_function_value, iterations)


class _ScipyModel:
    """``scipy.optimize.linprog`` / ``milp``: the whole model is passed again each solve."""

    def __init__(self, cost: np.ndarray, rows: csr_matrix, upper: np.ndarray):
        self.cost = cost.astype(np.float64)
        self.rows = rows.tocsr()
        self.upper = upper

    def add_rows(self, rows: csr_matrix, upper: np.ndarray) -> None:
        self.rows = vstack([self.rows, rows]).tocsr()
        self.upper = np.concatenate([self.upper, upper])

    def delete_rows(self, rows: np.ndarray) -> None:
        keep = np.ones(self.rows.shape[0], bool)
        keep[rows] = False
        self.rows, self.upper = self.rows[keep], self.upper[keep]

    def add_columns(self, cost: np.ndarray, entries: csc_matrix) -> None:
        from scipy.sparse import hstack

        self.cost = np.concatenate([self.cost, cost])
        self.rows = hstack([self.rows, entries]).tocsr()

    def solve(self, method, time_limit, integer, start):
        from scipy.optimize import Bounds, LinearConstraint, linprog, milp

        limit = float(max(min(time_limit, 1e6), 1e-3))
        if integer:
            result = milp(self.cost, integrality=np.ones_like(self.cost), bounds=Bounds(0, 1),
                          constraints=LinearConstraint(self.rows, -np.inf, self.upper),
                          options={"time_limit": limit, "mip_rel_gap": 1e-9})
            bound = getattr(result, "mip_dual_bound", None)
            bound = -np.inf if bound is None or not np.isfinite(bound) else float(bound)
            if result.status == 0:
                bound = float(result.fun)
            return result.x, None, result.status == 0, bound, 0
        result = linprog(self.cost, A_ub=self.rows, b_ub=self.upper,
                         bounds=(0, 1), method="highs-ds" if method == "simplex" else "highs-ipm",
                         options={"time_limit": limit})
        if result.status != 0:
            return None, None, False, -np.inf, int(getattr(result, "nit", 0))
        return (result.x, np.asarray(result.ineqlin.marginals), True, float(result.fun),
                int(result.nit))


_BACKENDS = {"highs": _HighsModel, "scipy": _ScipyModel}


def _csr_arrays(rows: csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row starts, column indices and values in the dtypes highspy expects."""
    return (rows.indptr[:-1].astype(np.int32), rows.indices.astype(np.int32),
            rows.data.astype(np.float64))
