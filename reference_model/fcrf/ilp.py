"""The exact solver of the box program: persistency, decomposition, cut and column
generation, Kernighan-Lin, then branch and bound.

Per box (``solve_program``):

1. Persistency (``persistency``): proposals that can only raise the cost go to the
   background; each connected component of the attractive graph is solved alone (the
   time left is shared by pair count); pairs that some optimum keeps apart lose their
   variable.
2. Incumbent: greedy additive edge contraction (``gaec``) improved by Kernighan-Lin
   moves (``kernighan_lin``, compiled: about a millisecond a box); once the relaxation
   turns out hard (it switched to the interior-point method, converged fractional, or ran
   out of time), the relaxation's rounded point is improved the same way.
3. Relaxation (``relaxation``): ``x_i`` and the ``y_ij`` of the attractive and incumbent
   pairs, clique rows ``sum_{i of type a} y_ij <= x_j``; rounds of cut and column
   generation: the most violated star inequalities (``cuts``: lifted triangles,
   2-partition cuts ``y_jk + sum_B (y_ij - y_ik) <= x_j``, grown stars) and the absent
   pairs with negative reduced cost are added, and the cuts that no longer bind are
   dropped, until the relaxation's bound meets the incumbent (proven optimal), or nothing
   is violated. An integral relaxed optimum is a labelling, optimal when no column prices
   out. The first solves run the dual simplex from the last basis; when a solve needs
   many iterations (the relaxation is far from integral) the rounds switch to the
   interior-point method, whose central points give deeper cuts, and a final solve with
   crossover makes the bound exact.
4. Branch and bound, when the relaxation leaves a gap: HiGHS solves the integer program
   over the present rows and the columns whose reduced cost lets them beat the incumbent
   (the rest cannot be 1 in a better labelling), with the incumbent as MIP start; the
   triangles each integer solution breaks are added until none is. It starts only with
   time left for its root node (``_ROOT_NODE_SOLVES``): HiGHS does not stop before that.

A time limit per box returns the best labelling found with its proven lower bound
(``Solution.gap``). ``SolverOptions`` switches each technique off for ablations;
``BASELINE`` is the solver before them (plain triangles, every column, GAEC only).
The MILP backend is ``"highs"`` (highspy, one model kept between solves) or ``"scipy"``
(``scipy.optimize``, the same HiGHS rebuilt each solve); ``"pulp-*"`` run the plain
reference model of ``ilp_pulp``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .cuts import Columns, separate_stars, separate_triangles, triangle_rows
from .gaec import gaec
from .ilp_pulp import PULP_SOLVERS, solve_pulp
from .kernighan_lin import compile_search, kernighan_lin
from .persistency import attractive_components, free_nodes, separated_pairs
from .program import (BoxProgram, Solution, canonical_labels, joinable, labels_from_joins,
                      violated_triangles)
from .relaxation import LpResult, Relaxation

FAST_SOLVERS = ("highs", "scipy")
SOLVERS = FAST_SOLVERS + PULP_SOLVERS
OPTIMALITY_GAP = 1e-6  # proven optimal: bound within this share of |objective| (>= 1)
_INTEGRAL = 1e-6
_SIMPLEX_ITERATIONS = 2000  # a simplex solve needing more switches the rounds to IPM
# HiGHS's MIP checks its time limit only after its root node, which on the tiny config's
# dense boxes (~3000 columns) took 0.1-0.26 s whatever the limit, 10-20 times the
# relaxation's own solves: with less time left than this many of the slowest, branch and
# bound would overrun the box's limit several times over and is not started.
_ROOT_NODE_SOLVES = 10


@dataclass(frozen=True)
class SolverOptions:
    """The fast path's techniques, each switchable for ablations and the baseline."""

    cuts: str = "stars"  # "stars" (lifted, grown) or "triangles" (y_ij + y_jk - y_ik <= 1)
    kernighan_lin: bool = True  # improve GAEC's incumbent
    fixing: bool = True  # drop the variables of separated pairs (persistency)
    column_generation: bool = True  # price pair columns in; False: all from the start
    lp_method: str = "auto"  # "simplex", "ipm", or "auto" (simplex, IPM once slow)
    drop_slack_cuts: bool = True  # delete cuts with slack and no dual between rounds

    def __post_init__(self) -> None:
        if self.cuts not in ("stars", "triangles"):
            raise ValueError(f"cuts must be 'stars' or 'triangles', got {self.cuts!r}")
        if self.lp_method not in ("auto", "simplex", "ipm"):
            raise ValueError(f"lp_method must be 'auto', 'simplex' or 'ipm', "
                             f"got {self.lp_method!r}")


# The solver before issue 11: clique rows, plain triangles, every pair column, GAEC.
BASELINE = SolverOptions(cuts="triangles", kernighan_lin=False, fixing=False,
                         column_generation=False, lp_method="simplex", drop_slack_cuts=False)


def solve_program(program: BoxProgram, solver: str = "highs", time_limit: float = 10.0,
                  decompose: bool = True, lp_cuts: int = 1000,
                  options: SolverOptions = SolverOptions()) -> Solution:
    """Minimise the box program exactly (within ``time_limit`` seconds for the whole box).

    ``lp_cuts`` > 0: rounds of the relaxation add at most that many cuts each; 0 goes
    straight to branch and bound. The pulp solvers run the plain reference model instead
    (``ilp_pulp``).
    """
    if solver in PULP_SOLVERS:
        return solve_pulp(program, solver, time_limit)
    if solver not in FAST_SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; expected one of {SOLVERS}")
    if options.kernighan_lin:
        compile_search()  # once per process, before the clock starts
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
        part = _Component(sub, solver, now + share * (deadline - now), lp_cuts,
                          options).solve()
        chosen = part.person >= 0
        person[nodes[chosen]] = part.person[chosen] + next_label
        next_label += int(part.person.max(initial=-1)) + 1
        upper += part.objective
        lower += part.lower_bound
        optimal &= part.optimal
        rounds += part.rounds
        cuts += part.cuts
    return Solution(canonical_labels(person), upper, upper if optimal else min(lower, upper),
                    optimal, rounds, cuts)


def trivial_lower_bound(program: BoxProgram) -> float:
    """Sum of every negative cost: no labelling can do better."""
    pair = np.triu(np.where(joinable(program.types), program.pairwise, 0.0), 1)
    return float(np.minimum(program.unary, 0).sum() + np.minimum(pair, 0).sum())


def _proven(objective: float, lower: float) -> bool:
    return objective - lower <= OPTIMALITY_GAP * max(abs(objective), 1.0)


class _Component:
    """The search on one attractive component: incumbent, relaxation, branch and bound."""

    def __init__(self, program: BoxProgram, solver: str, deadline: float, lp_cuts: int,
                 options: SolverOptions):
        self.program = program
        self.solver = solver
        self.deadline = deadline
        self.lp_cuts = lp_cuts
        self.options = options
        self.columns = Columns.of(program.types)
        self.allowed = np.ones(self.columns.size, bool)
        if options.fixing:
            apart = separated_pairs(program)
            self.allowed[program.n:] = ~apart[self.columns.first, self.columns.second]
        self.best = gaec(program)
        if options.kernighan_lin:
            self.best = kernighan_lin(program, self.best)
        self.polished = not options.kernighan_lin
        self.lower = trivial_lower_bound(program)
        self.rounds = self.cuts = 0
        self.slowest_solve = 0.0  # seconds of the slowest relaxation solve

    def solve(self) -> Solution:
        program = self.program
        if program.n == 1:
            person = np.array([0 if program.unary[0] < 0 else -1])
            objective = program.objective(person)
            return Solution(person, objective, objective, True)
        relaxation = Relaxation(program, self.columns, self._initial_columns(), self.solver)
        last = None
        if self.lp_cuts > 0:
            last = self._cutting_planes(relaxation)
        if not _proven(self.best.objective, self.lower):  # even out of time: it is quick
            self._polish(last)
        if not self._done() and self._remaining() >= _ROOT_NODE_SOLVES * self.slowest_solve:
            self._branch_and_bound(relaxation, last)
        return self._solution()

    def _initial_columns(self) -> np.ndarray:
        present = self.allowed.copy()
        if self.options.column_generation:
            pair_cost = self.program.pairwise[self.columns.first, self.columns.second]
            present[self.program.n:] &= pair_cost < 0
            present |= self.columns.vector(self.best.person) > 0.5
        return present

    def _remaining(self) -> float:
        return self.deadline - time.perf_counter()

    def _done(self) -> bool:
        return _proven(self.best.objective, self.lower) or self._remaining() <= 0

    def _offer(self, person: np.ndarray) -> None:
        """Keep a feasible labelling if it beats the incumbent."""
        objective = self.program.objective(person)
        if objective < self.best.objective:
            self.best = Solution(canonical_labels(person), objective, -np.inf, False)

    def _polish(self, last: LpResult | None) -> None:
        """Kernighan-Lin on the relaxation's rounded point."""
        if self.polished or last is None or last.z is None:
            return
        self.polished = True
        self._offer(kernighan_lin(self.program, self._rounded(last.z)).person)

    def _rounded(self, z: np.ndarray) -> Solution:
        """A labelling near a relaxed point: its joins, repaired by GAEC if infeasible."""
        x, join = self.columns.join_matrix(z)
        person = labels_from_joins(x > 0.5, join > 0.5)
        if self.program.violations(person):
            return gaec(self.program, allowed=join > 0.5)
        return Solution(person, self.program.objective(person), -np.inf, False)

    def _separate(self, z: np.ndarray):
        """The next cuts at ``z``: rows and right-hand sides."""
        if self.options.cuts == "stars":
            rows = separate_stars(self.columns, z, self.lp_cuts)
            return rows, np.zeros(rows.shape[0])
        return triangle_rows(self.columns, separate_triangles(self.columns, z, self.lp_cuts),
                             lifted=False)

    def _cutting_planes(self, relaxation: Relaxation) -> LpResult | None:
        """Rounds of the relaxation until proven, converged or out of time; returns the
        last solved point."""
        method = "ipm" if self.options.lp_method == "ipm" else "simplex"
        last = None
        while not self._done():
            started = time.perf_counter()
            result, optimal, _ = relaxation.solve(method, self._remaining())
            self.slowest_solve = max(self.slowest_solve, time.perf_counter() - started)
            self.rounds += 1
            if result.z is None:
                break
            last = result
            self.lower = max(self.lower, result.bound)
            rows, upper = self._separate(result.z)
            columns = np.zeros(0, np.int64)
            if self.options.column_generation:
                columns = relaxation.negative_columns(result.reduced, self.allowed,
                                                      max(self.lp_cuts, 1))
            if rows.shape[0] == 0 and _is_integral(result.z):
                person = self._rounded(result.z).person
                self._offer(person)
                if len(columns) == 0:  # the relaxation's optimum is a labelling
                    self.lower = max(self.lower, self.program.objective(person))
            if self._done():
                break
            if rows.shape[0] == 0 and len(columns) == 0:
                if method == "ipm":  # converged; an exact vertex and duals to finish
                    method = "crossover"
                    continue
                break
            if (self.options.lp_method == "auto" and method == "simplex"
                    and result.iterations > _SIMPLEX_ITERATIONS):
                method = "ipm"
            if method != "simplex":  # a hard relaxation: the incumbent is worth polishing
                self._polish(result)
            elif method == "crossover":
                method = "ipm"
            if self.options.drop_slack_cuts:
                relaxation.drop_slack_cuts(result)
            relaxation.add_columns(columns)
            relaxation.add_rows(rows, upper)
            self.cuts += rows.shape[0]
        return last

    def _branch_and_bound(self, relaxation: Relaxation, last: LpResult | None) -> None:
        """The integer program over the columns that can still beat the incumbent, with
        the triangles each integer solution breaks added until none is."""
        if last is None:
            relaxation.add_columns(np.flatnonzero(self.allowed))
        else:
            slack = self.best.objective - last.bound
            useful = np.maximum(last.reduced, 0.0) < slack
            relaxation.add_columns(np.flatnonzero(self.allowed & useful))
        lifted = self.options.cuts == "stars"
        while not self._done():
            start = self.columns.vector(self.best.person)
            result, optimal, bound = relaxation.solve("simplex", self._remaining(),
                                                      integer=True, start=start)
            self.rounds += 1
            if result.z is None:
                self.lower = max(self.lower, min(bound, self.best.objective))
                return
            x, join = self.columns.join_matrix(result.z)
            triangles = violated_triangles(join > 0.5)
            if len(triangles) == 0:
                self._offer(labels_from_joins(x > 0.5, join > 0.5))
                self.lower = max(self.lower, min(bound, self.best.objective))
                return
            # Valid for every labelling the columns allow: a bound, and a repair to try.
            self.lower = max(self.lower, min(bound, self.best.objective))
            self._offer(kernighan_lin(self.program, gaec(self.program, allowed=join > 0.5))
                        .person if self.options.kernighan_lin
                        else gaec(self.program, allowed=join > 0.5).person)
            rows, upper = triangle_rows(self.columns, triangles, lifted=lifted)
            relaxation.add_rows(rows, upper)
            self.cuts += len(triangles)

    def _solution(self) -> Solution:
        best = self.best
        lower = min(self.lower, best.objective)
        optimal = _proven(best.objective, lower)
        return Solution(best.person, best.objective, best.objective if optimal else lower,
                        optimal, self.rounds, self.cuts)


def _is_integral(z: np.ndarray) -> bool:
    return bool(np.all(np.abs(z - np.round(z)) < _INTEGRAL))
