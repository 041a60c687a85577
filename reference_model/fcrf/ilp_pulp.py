"""The box program written out plainly in pulp: the reference the fast path is tested against.

No decomposition, no clique rows, no LP phase: the program as the paper states it.
Variables ``x_i`` (proposal selected) and ``y_ij`` (same person) for pairs of different
joint types; a same-type pair is the constant 0, which is how "at most one joint of each
type per person" is written. Constraints: ``y_ij <= x_i``, ``y_ij <= x_j``, and
transitivity ``y_ij + y_jk - y_ik <= 1`` for every ordered triple, either all of them
(``lazy=False``, small programs only) or added lazily from the triangles each integer
solution breaks (if the time limit stops the loop first, the last solution is repaired by
``gaec`` restricted to its joins). pulp rebuilds the solver's model every round (and runs
CBC as a subprocess reading a file), which is why this path is slow.
"""

from __future__ import annotations

import itertools
import time
import warnings

import numpy as np

from .gaec import gaec
from .program import BoxProgram, Solution, labels_from_joins, violated_triangles

PULP_SOLVERS = ("pulp-highs", "pulp-cbc")


def _backend(solver: str, time_limit: float):
    """pulp's HiGHS (highspy in-process) or its bundled CBC (a subprocess per solve)."""
    import pulp

    if solver == "pulp-highs":
        return pulp.HiGHS(msg=False, timeLimit=time_limit, gapRel=1e-9)
    with warnings.catch_warnings():  # pulp 3.3 announces that 4.0 drops the bundled CBC
        warnings.simplefilter("ignore", DeprecationWarning)
        return pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit, gapRel=1e-9)


def solve_pulp(program: BoxProgram, solver: str = "pulp-cbc", time_limit: float = 60.0,
               lazy: bool = True) -> Solution:
    """Minimise the box program with pulp and CBC or HiGHS (``solver`` in PULP_SOLVERS)."""
    import pulp

    if solver not in PULP_SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; expected one of {PULP_SOLVERS}")
    n, types = program.n, program.types
    model = pulp.LpProblem("fcrf_box", pulp.LpMinimize)
    x = [model.add_variable(f"x_{i}", cat=pulp.LpBinary) for i in range(n)]
    y = {(i, j): model.add_variable(f"y_{i}_{j}", cat=pulp.LpBinary)
         for i, j in itertools.combinations(range(n), 2) if types[i] != types[j]}

    def same_person(i: int, j: int):
        """y_ij, or 0 for a same-type pair (one joint of each type per person)."""
        return y.get((min(i, j), max(i, j)), 0)

    model += (pulp.lpSum(program.unary[i] * x[i] for i in range(n))
              + pulp.lpSum(program.pairwise[i, j] * y_ij for (i, j), y_ij in y.items()))
    for (i, j), y_ij in y.items():
        model += y_ij <= x[i]
        model += y_ij <= x[j]

    def add_triangle(i: int, j: int, k: int) -> None:
        model.addConstraint(same_person(i, j) + same_person(j, k) - same_person(i, k) <= 1)

    if not lazy:  # every triangle whose two joined sides can both be 1
        for i, j, k in itertools.permutations(range(n), 3):
            if i < k and types[i] != types[j] and types[j] != types[k]:
                add_triangle(i, j, k)
    deadline = time.perf_counter() + time_limit
    rounds = cuts = 0
    while True:
        model.solve(_backend(solver, max(deadline - time.perf_counter(), 0.1)))
        rounds += 1
        selected = np.array([v.value() > 0.5 for v in x], dtype=bool)
        join = np.zeros((n, n), bool)
        for (i, j), y_ij in y.items():
            join[i, j] = join[j, i] = y_ij.value() > 0.5
        optimal = pulp.LpStatus[model.status] == "Optimal" and model.sol_status == 1
        triangles = violated_triangles(join)
        if len(triangles) == 0 or time.perf_counter() >= deadline:
            break
        for i, j, k in triangles:
            add_triangle(int(i), int(j), int(k))
        cuts += len(triangles)
    feasible = len(triangles) == 0
    # Stopped by the time limit with broken triangles: repair as the fast path does.
    person = labels_from_joins(selected, join) if feasible else gaec(program, join).person
    objective = program.objective(person)
    return Solution(person, objective, objective if optimal and feasible else -np.inf,
                    optimal and feasible, rounds, cuts)
