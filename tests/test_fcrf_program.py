"""The box program and its solvers: exact against brute force, feasible, lazily complete."""

import numpy as np
import pytest

from reference_model.fcrf.gaec import gaec
from reference_model.fcrf.ilp import (SOLVERS, attractive_components, free_nodes,
                                      solve_program)
from reference_model.fcrf.ilp_pulp import solve_pulp
from reference_model.fcrf.program import (BoxProgram, Solution, canonical_labels,
                                          labels_from_joins, log_odds_cost,
                                          violated_triangles)
from reference_model.fcrf.synthetic import random_program


def all_labellings(types: np.ndarray) -> np.ndarray:
    """Every feasible labelling: each node background or in a person, one joint per type."""
    found = []

    def extend(prefix: list[int], people: int) -> None:
        i = len(prefix)
        if i == len(types):
            found.append(list(prefix))
            return
        extend(prefix + [-1], people)
        for label in range(people + 1):
            clash = any(prefix[m] == label and types[m] == types[i] for m in range(i))
            if not clash:
                extend(prefix + [label], max(people, label + 1))

    extend([], 0)
    return np.array(found, dtype=np.int64).reshape(len(found), len(types))


def brute_force_optimum(program: BoxProgram) -> float:
    labellings = all_labellings(program.types)
    selected = labellings >= 0
    same = (labellings[:, :, None] == labellings[:, None, :]) & selected[:, :, None]
    pair = np.triu(program.pairwise, 1)
    costs = (program.unary * selected).sum(axis=1) + (pair * same).sum(axis=(1, 2))
    return float(costs.min())


def tiny_program(rng: np.random.Generator) -> BoxProgram:
    n = int(rng.integers(1, 9))
    types = rng.integers(0, 4, n)
    P = np.triu(rng.uniform(0.02, 0.98, (n, n)), 1)
    return BoxProgram.from_probabilities(types, rng.uniform(0.2, 0.95, n), P + P.T)


def test_brute_force_enumerates_bell_numbers():
    # With distinct types every partition of every subset is feasible: sum_k C(n,k) B(k).
    assert len(all_labellings(np.arange(4))) == 52  # = B(5)
    assert len(all_labellings(np.zeros(3, int))) == 8  # one type: each proposal alone or out


@pytest.mark.parametrize("solver", ["highs", "scipy"])
def test_fast_solvers_match_brute_force(solver):
    rng = np.random.default_rng(7)
    for _ in range(60):
        program = tiny_program(rng)
        solution = solve_program(program, solver)
        assert solution.optimal and solution.gap == 0
        assert solution.objective == pytest.approx(brute_force_optimum(program), abs=1e-7)
        assert solution.objective == pytest.approx(program.objective(solution.person))
        assert program.violations(solution.person) == []


@pytest.mark.parametrize("solver", ["pulp-cbc", "pulp-highs"])
def test_pulp_reference_matches_brute_force(solver):
    rng = np.random.default_rng(11)
    for _ in range(6):
        program = tiny_program(rng)
        for lazy in (True, False):
            solution = solve_pulp(program, solver, lazy=lazy)
            assert solution.optimal
            assert solution.objective == pytest.approx(brute_force_optimum(program), abs=1e-7)
            assert program.violations(solution.person) == []


def test_fast_path_matches_the_pulp_reference_on_a_larger_box():
    program = random_program(np.random.default_rng(3), people=3, per_type=3,
                             same=(0.4, 0.95), different=(0.05, 0.6))
    reference = solve_pulp(program, "pulp-highs")
    assert reference.optimal and reference.cuts > 0  # the lazy loop had work to do
    for solver in ("highs", "scipy"):
        for decompose in (True, False):
            for lp_cuts in (0, 1000):
                fast = solve_program(program, solver, decompose=decompose, lp_cuts=lp_cuts)
                assert fast.optimal
                assert fast.objective == pytest.approx(reference.objective, abs=1e-6)


@pytest.mark.parametrize("lp_cuts", [0, 1000])
def test_lazy_loops_end_with_no_broken_triangle_on_full_boxes(lp_cuts):
    rng = np.random.default_rng(5)
    for people in (1, 3, 6):
        program = random_program(rng, people)
        assert program.n == 84
        for decompose in (True, False):
            solution = solve_program(program, "highs", time_limit=30.0, decompose=decompose,
                                     lp_cuts=lp_cuts)
            assert solution.optimal
            person = solution.person
            join = (person[:, None] == person[None, :]) & (person >= 0)[:, None]
            np.fill_diagonal(join, False)
            assert len(violated_triangles(join)) == 0
            assert program.violations(person) == []
            assert solution.objective <= gaec(program).objective + 1e-9


def test_time_limit_returns_a_feasible_labelling_with_its_gap():
    program = random_program(np.random.default_rng(0), people=5, same=(0.3, 0.9),
                             different=(0.1, 0.7))
    solution = solve_program(program, "highs", time_limit=0.05)
    assert program.violations(solution.person) == []
    assert solution.objective == pytest.approx(program.objective(solution.person))
    assert solution.lower_bound <= solution.objective
    if not solution.optimal:
        assert solution.gap > 0


def test_decomposition_splits_on_attractive_components():
    # Two people of two joints each, no attraction between them, and a hopeless proposal.
    types = np.array([0, 1, 0, 1, 2])
    p = np.array([0.9, 0.9, 0.9, 0.9, 0.3])
    P = np.full((5, 5), 0.1)
    P[0, 1] = P[1, 0] = P[2, 3] = P[3, 2] = 0.9
    program = BoxProgram.from_probabilities(types, p, P)
    free = free_nodes(program)
    assert free.tolist() == [True, True, True, True, False]
    groups = attractive_components(program, free)
    assert sorted(g.tolist() for g in groups) == [[0, 1], [2, 3]]
    solution = solve_program(program)
    assert solution.person.tolist() == [0, 0, 1, 1, -1]


def test_same_type_pairs_are_never_joined_even_when_attractive():
    types = np.array([0, 0, 1])
    P = np.full((3, 3), 0.99)
    program = BoxProgram.from_probabilities(types, np.full(3, 0.9), P)
    assert program.pairwise[0, 1] == 0  # no cost: the pair has no variable
    person = solve_program(program).person
    assert person[0] != person[1]
    assert person[2] in (person[0], person[1])


def test_violated_triangles_lists_each_broken_inequality_once():
    join = np.zeros((4, 4), bool)
    for a, b in [(0, 1), (1, 2), (2, 3)]:
        join[a, b] = join[b, a] = True
    triangles = {tuple(t) for t in violated_triangles(join)}
    assert triangles == {(0, 1, 2), (1, 2, 3)}
    assert len(violated_triangles(join | join @ join | (join @ join @ join))) == 0


def test_labels_and_costs_helpers():
    assert canonical_labels(np.array([5, -1, 2, 5])).tolist() == [0, -1, 1, 0]
    join = np.zeros((3, 3), bool)
    join[0, 2] = join[2, 0] = True
    assert labels_from_joins(np.array([True, True, True]), join).tolist() == [0, 1, 0]
    assert log_odds_cost(np.array([0.5]))[0] == pytest.approx(0.0)
    assert log_odds_cost(np.array([0.9]))[0] == pytest.approx(np.log(1 / 9))
    assert np.isfinite(log_odds_cost(np.array([0.0, 1.0]))).all()
    program = BoxProgram.from_probabilities(np.array([0, 0]), np.array([0.9, 0.9]),
                                            np.zeros((2, 2)))
    assert program.violations(np.array([0, 0])) != []
    assert program.violations(np.array([0, 1])) == []


def test_gaec_is_feasible_and_repairs_relaxed_joins():
    program = random_program(np.random.default_rng(2), people=4, same=(0.4, 0.95),
                             different=(0.05, 0.6))
    greedy = gaec(program)
    assert program.violations(greedy.person) == []
    assert greedy.objective == pytest.approx(program.objective(greedy.person))
    everything = np.ones((program.n, program.n), bool)  # an infeasible "all joined" answer
    repaired = gaec(program, allowed=everything)
    assert program.violations(repaired.person) == []


def test_solution_gap_and_unknown_solver():
    assert Solution(np.array([0]), -10.0, -12.0, False).gap == pytest.approx(0.2)
    assert Solution(np.array([0]), -0.5, -0.5, True).gap == 0
    with pytest.raises(ValueError, match="unknown solver"):
        solve_program(tiny_program(np.random.default_rng(0)), "gurobi")
    assert set(SOLVERS) == {"highs", "scipy", "pulp-highs", "pulp-cbc"}
