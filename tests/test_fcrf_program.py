"""The box program and its solvers: exact against brute force, feasible, lazily complete;
the star cuts valid, Kernighan-Lin never worse, persistency never changing the optimum."""

import itertools
import subprocess
import sys

import numpy as np
import pytest

from reference_model.fcrf.cuts import (Columns, clique_rows, separate_stars,
                                       separate_triangles, star_rows, star_values,
                                       triangle_rows)
from reference_model.fcrf.gaec import gaec
from reference_model.fcrf.ilp import BASELINE, SOLVERS, SolverOptions, solve_program
from reference_model.fcrf.ilp_pulp import solve_pulp
from reference_model.fcrf.kernighan_lin import kernighan_lin
from reference_model.fcrf.persistency import (attractive_components, free_nodes,
                                              separated_pairs)
from reference_model.fcrf.program import (BoxProgram, Solution, canonical_labels,
                                          labels_from_joins, log_odds_cost,
                                          violated_triangles)
from reference_model.fcrf.relaxation import Relaxation
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


def labelling_costs(program: BoxProgram, labellings: np.ndarray) -> np.ndarray:
    selected = labellings >= 0
    same = (labellings[:, :, None] == labellings[:, None, :]) & selected[:, :, None]
    pair = np.triu(program.pairwise, 1)
    return (program.unary * selected).sum(axis=1) + (pair * same).sum(axis=(1, 2))


def brute_force_optimum(program: BoxProgram) -> float:
    return float(labelling_costs(program, all_labellings(program.types)).min())


def tiny_program(rng: np.random.Generator, n_max: int = 8, num_types: int = 4) -> BoxProgram:
    n = int(rng.integers(1, n_max + 1))
    types = rng.integers(0, num_types, n)
    P = np.triu(rng.uniform(0.02, 0.98, (n, n)), 1)
    return BoxProgram.from_probabilities(types, rng.uniform(0.2, 0.95, n), P + P.T)


def labelling_points(columns: Columns, labellings: np.ndarray) -> np.ndarray:
    """(L, columns.size) 0/1 points of the labellings."""
    return np.stack([columns.vector(person) for person in labellings])


# --- brute force and the exact solvers ---------------------------------------------

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


@pytest.mark.parametrize("options", [
    BASELINE, SolverOptions(lp_method="ipm"), SolverOptions(column_generation=False),
    SolverOptions(fixing=False, kernighan_lin=False), SolverOptions(cuts="triangles"),
    SolverOptions(drop_slack_cuts=False)],
    ids=["baseline", "ipm", "all-columns", "no-fixing-no-kl", "triangles", "keep-slack-cuts"])
def test_every_ablation_stays_exact(options):
    rng = np.random.default_rng(17)
    for _ in range(12):
        program = tiny_program(rng, n_max=9)
        for decompose, lp_cuts in ((True, 1000), (False, 1000), (False, 0)):
            solution = solve_program(program, decompose=decompose, lp_cuts=lp_cuts,
                                     options=options)
            assert solution.optimal
            assert solution.objective == pytest.approx(brute_force_optimum(program), abs=1e-7)
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


def test_hard_boxes_need_the_stars_and_get_them():
    # A hard-family box whose relaxation with plain triangles is far from integral; with
    # the star cuts the relaxation proves the optimum without branching.
    program = random_program(np.random.default_rng(1), people=2, per_type=3,
                             same=(0.3, 0.9), different=(0.1, 0.7))
    reference = solve_pulp(program, "pulp-highs")
    assert reference.optimal
    stars = solve_program(program, time_limit=60.0)
    assert stars.optimal
    assert stars.objective == pytest.approx(reference.objective, abs=1e-6)
    assert stars.cuts > 0


@pytest.mark.parametrize("lp_cuts", [0, 1000])
def test_lazy_loops_end_with_no_broken_triangle_on_full_boxes(lp_cuts):
    rng = np.random.default_rng(5)
    for people in (1, 3, 6):
        program = random_program(rng, people)
        assert program.n == 84
        for decompose in (True, False):
            solution = solve_program(program, "highs", time_limit=60.0, decompose=decompose,
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


def test_solution_gap_unknown_solver_and_bad_options():
    assert Solution(np.array([0]), -10.0, -12.0, False).gap == pytest.approx(0.2)
    assert Solution(np.array([0]), -0.5, -0.5, True).gap == 0
    with pytest.raises(ValueError, match="unknown solver"):
        solve_program(tiny_program(np.random.default_rng(0)), "gurobi")
    assert set(SOLVERS) == {"highs", "scipy", "pulp-highs", "pulp-cbc"}
    with pytest.raises(ValueError, match="cuts must be"):
        SolverOptions(cuts="cycles")
    with pytest.raises(ValueError, match="lp_method must be"):
        SolverOptions(lp_method="barrier")


# --- star inequalities -------------------------------------------------------------

def test_star_rows_read_as_the_inequality():
    columns = Columns.of(np.array([0, 1, 2, 2, 3]))
    members = np.zeros((1, 5), bool)
    members[0, [1, 2, 3]] = True  # T = {1, 2, 3}; 2 and 3 share a type (no y_23)
    row = star_rows(columns, np.array([0]), members).toarray()[0]
    expected = {0: -1, columns.index[0, 1]: 1, columns.index[0, 2]: 1,
                columns.index[0, 3]: 1, columns.index[1, 2]: -1, columns.index[1, 3]: -1}
    assert {int(c): v for c, v in zip(np.flatnonzero(row), row[row != 0])} == expected
    z = np.random.default_rng(0).random(columns.size)
    x, join = columns.join_matrix(z)
    assert star_values(np.array([0]), members, x, join)[0] == pytest.approx(row @ z)


def test_no_labelling_violates_any_star_cut():
    # Every star (apex j, any set T of other nodes) on small programs, against every
    # feasible labelling: the brute-force proof of validity.
    rng = np.random.default_rng(23)
    checked = 0
    for _ in range(12):
        n = int(rng.integers(4, 8))
        types = rng.integers(0, 3, n)
        columns = Columns.of(types)
        points = labelling_points(columns, all_labellings(types))
        apex, members = [], []
        for j in range(n):
            others = [i for i in range(n) if i != j]
            for size in range(1, len(others) + 1):
                for subset in itertools.combinations(others, size):
                    apex.append(j)
                    members.append(np.isin(np.arange(n), subset))
        rows = star_rows(columns, np.array(apex), np.array(members))
        assert (rows @ points.T).max() <= 1e-12
        checked += rows.shape[0]
    assert checked > 500


def test_separated_cuts_are_valid_and_violated_where_they_are_found():
    rng = np.random.default_rng(29)
    found = 0
    for _ in range(40):
        types = rng.integers(0, 4, int(rng.integers(4, 8)))
        columns = Columns.of(types)
        points = labelling_points(columns, all_labellings(types))
        z = rng.random(columns.size)
        for grow in (False, True):
            rows = separate_stars(columns, z, limit=50, grow=grow)
            if rows.shape[0]:
                assert (rows @ z).min() > 1e-6
                assert (rows @ points.T).max() <= 1e-12
            found += rows.shape[0]
        lifted, upper = triangle_rows(columns, separate_triangles(columns, z, 50), True)
        plain, ones = triangle_rows(columns, separate_triangles(columns, z, 50), False)
        assert (lifted @ points.T).max(initial=0) <= 1e-12 and not upper.any()
        assert ((plain @ points.T) - ones[:, None]).max(initial=0) <= 1e-12
    assert found > 100


def test_pair_stars_find_the_best_set_of_one_type():
    # Step 1 is exact for T = {k} + B: compare with every subset B of every type (B may be
    # empty: at a random point, unlike an LP point, y_jk <= x_j can fail).
    rng = np.random.default_rng(31)
    for _ in range(20):
        types = rng.integers(0, 3, 7)
        columns = Columns.of(types)
        z = rng.random(columns.size)
        x, join = columns.join_matrix(z)
        best = {}
        for j, k in itertools.permutations(range(7), 2):
            if join[j, k] <= 1e-6:
                continue
            for a in set(types.tolist()) - {types[k]}:
                pool = [i for i in range(7) if types[i] == a and i not in (j, k)]
                for size in range(len(pool) + 1):
                    for subset in itertools.combinations(pool, size):
                        members = np.isin(np.arange(7), subset + (k,))
                        value = star_values(np.array([j]), members[None], x, join)[0]
                        best[j] = max(best.get(j, -np.inf), value)
        rows = separate_stars(columns, z, limit=1000, grow=False)
        found = {}
        for row in rows.toarray():
            apex = int(np.flatnonzero(row[:7] < 0)[0])
            found[apex] = max(found.get(apex, -np.inf), float(row @ z))
        for j, value in best.items():
            if value > 1e-6:
                assert found[j] == pytest.approx(value)


def test_stars_cut_the_point_that_plain_triangles_allow():
    # Proposal 1 half selected, half joined to 0 and to 2, which are apart: every plain
    # transitivity row holds (1/2 + 1/2 - 0 <= 1), the lifted triangle at 1 does not.
    columns = Columns.of(np.arange(3))
    z = np.zeros(columns.size)
    z[[0, 1, 2]] = [1.0, 0.5, 1.0]
    z[[columns.index[0, 1], columns.index[1, 2]]] = 0.5
    assert (clique_rows(columns) @ z).max() <= 0
    assert len(separate_triangles(columns, z, 10)) == 0
    rows = separate_stars(columns, z, 10)
    assert rows.shape[0] == 1 and rows @ z == pytest.approx([0.5])
    assert rows[0, 1] == -1  # apex 1


def test_clique_rows_hold_for_labellings_and_bind_one_per_type():
    types = np.array([0, 0, 1, 2])
    columns = Columns.of(types)
    points = labelling_points(columns, all_labellings(types))
    rows = clique_rows(columns)
    assert (rows @ points.T).max() <= 0
    both = np.zeros(columns.size)  # node 2 joined to both type-0 proposals
    both[[0, 1, 2]] = 1
    both[[columns.index[0, 2], columns.index[1, 2]]] = 1
    assert (rows @ both).max() > 0


def test_relaxation_bounds_are_valid_with_few_columns_and_inexact_duals():
    rng = np.random.default_rng(37)
    for _ in range(10):
        program = tiny_program(rng, n_max=8)
        if program.n < 3:
            continue
        columns = Columns.of(program.types)
        optimum = brute_force_optimum(program)
        present = np.zeros(columns.size, bool)
        present[program.n::2] = True  # half the pair columns only
        for method in ("simplex", "ipm", "crossover"):
            relaxation = Relaxation(program, columns, present, "highs")
            result, optimal, _ = relaxation.solve(method)
            assert optimal and result.bound <= optimum + 1e-9
            relaxation.add_rows(separate_stars(columns, result.z, 100))
            result, _, _ = relaxation.solve(method)
            assert result.bound <= optimum + 1e-9


@pytest.mark.parametrize("backend", ["highs", "scipy"])
def test_dropping_slack_cuts_keeps_the_optimum(backend):
    # Rounds of star cuts on a hard box leave cuts that stopped binding; deleting them
    # leaves the last optimum optimal (same objective, same bound), with fewer rows.
    program = random_program(np.random.default_rng(2), people=3, per_type=3,
                             same=(0.3, 0.9), different=(0.1, 0.7))
    columns = Columns.of(program.types)
    relaxation = Relaxation(program, columns, np.ones(columns.size, bool), backend)
    dropped = 0
    for _ in range(6):
        result, optimal, _ = relaxation.solve()
        assert optimal
        rows = relaxation.rows
        count = relaxation.drop_slack_cuts(result)
        assert relaxation.rows == rows - count
        if count:
            again, _, _ = relaxation.solve()
            assert again.bound == pytest.approx(result.bound, abs=1e-7)
            assert relaxation.cost @ again.z == pytest.approx(relaxation.cost @ result.z,
                                                              abs=1e-7)
            dropped += count
            result = again
        relaxation.add_rows(separate_stars(columns, result.z, 30))
    assert dropped > 0


def test_dropping_cuts_needs_the_last_solve():
    program = random_program(np.random.default_rng(2), people=2, per_type=3,
                             same=(0.3, 0.9), different=(0.1, 0.7))
    columns = Columns.of(program.types)
    relaxation = Relaxation(program, columns, np.ones(columns.size, bool))
    result, _, _ = relaxation.solve()
    relaxation.add_rows(separate_stars(columns, result.z, 30))
    with pytest.raises(ValueError, match="drop cuts right after the solve"):
        relaxation.drop_slack_cuts(result)


# --- Kernighan-Lin ------------------------------------------------------------------

@pytest.mark.parametrize("family", [((0.4, 0.95), (0.05, 0.6)), ((0.3, 0.9), (0.1, 0.7))],
                         ids=["medium", "hard"])
def test_kernighan_lin_is_feasible_and_never_worse_than_its_start(family):
    rng = np.random.default_rng(41)
    for _ in range(4):
        program = random_program(rng, int(rng.integers(1, 5)), per_type=3, same=family[0],
                                 different=family[1])
        start = gaec(program)
        better = kernighan_lin(program, start)
        assert program.violations(better.person) == []
        assert better.objective == pytest.approx(program.objective(better.person))
        assert better.objective <= start.objective + 1e-9
        # From any feasible labelling, e.g. everyone alone or everything background.
        for person in (np.arange(program.n), np.full(program.n, -1)):
            moved = kernighan_lin(program, person)
            assert program.violations(moved.person) == []
            assert moved.objective <= program.objective(person) + 1e-9


def test_kernighan_lin_improves_gaec_on_hard_boxes():
    rng = np.random.default_rng(0)
    gains = []
    for _ in range(3):
        program = random_program(rng, int(rng.integers(1, 7)), same=(0.3, 0.9),
                                 different=(0.1, 0.7))
        start = gaec(program)
        gains.append(start.objective - kernighan_lin(program, start).objective)
    assert min(gains) >= -1e-9 and max(gains) > 1.0


def test_kernighan_lin_swaps_same_type_joints_between_people():
    # Two people whose type-1 joints are crossed: no single move is feasible or helps,
    # the swap of the two wrists is.
    types = np.array([0, 1, 0, 1])
    P = np.full((4, 4), 0.05)
    for a, b in [(0, 3), (2, 1)]:
        P[a, b] = P[b, a] = 0.95
    program = BoxProgram.from_probabilities(types, np.full(4, 0.9), P)
    crossed = np.array([0, 0, 1, 1])
    result = kernighan_lin(program, crossed)
    assert canonical_labels(result.person).tolist() == [0, 1, 1, 0]


def test_kernighan_lin_reaches_the_optimum_on_small_programs():
    rng = np.random.default_rng(43)
    hits = 0
    for _ in range(30):
        program = tiny_program(rng, n_max=7)
        result = kernighan_lin(program, gaec(program))
        optimum = brute_force_optimum(program)
        assert result.objective >= optimum - 1e-9
        hits += result.objective <= optimum + 1e-9
    assert hits >= 27


# --- persistency --------------------------------------------------------------------

def test_fixing_never_changes_the_optimum():
    # Brute force over labellings that obey every rule at once (background nodes, no
    # person across components, separated pairs apart) finds the unrestricted optimum.
    rng = np.random.default_rng(47)
    fired = 0
    for _ in range(60):
        program = tiny_program(rng, n_max=8)
        labellings = all_labellings(program.types)
        costs = labelling_costs(program, labellings)
        free = free_nodes(program)
        component = np.full(program.n, -1)
        for c, nodes in enumerate(attractive_components(program, free)):
            component[nodes] = c
        apart = separated_pairs(program)
        selected = labellings >= 0
        same = (labellings[:, :, None] == labellings[:, None, :]) & selected[:, :, None]
        obeys = ~(selected & ~free).any(axis=1)
        obeys &= ~(same & (component[:, None] != component[None, :])).any(axis=(1, 2))
        obeys &= ~(same & apart).any(axis=(1, 2))
        assert costs[obeys].min() == pytest.approx(costs.min(), abs=1e-9)
        fired += int((~free).sum() + np.triu(apart, 1).sum())
    assert fired > 50


def test_separated_pairs_are_repulsive_and_symmetric():
    # 0 and 1 repel (P = 0.05) more than either can gain from the only third type.
    P = np.array([[0.0, 0.05, 0.7], [0.05, 0.0, 0.7], [0.7, 0.7, 0.0]])
    program = BoxProgram.from_probabilities(np.arange(3), np.full(3, 0.9), P)
    assert separated_pairs(program).tolist() == [[False, True, False], [True, False, False],
                                                 [False, False, False]]
    program = random_program(np.random.default_rng(53), people=3, per_type=6)
    apart = separated_pairs(program)
    assert (apart == apart.T).all() and apart.any()
    assert (program.pairwise[apart] > 0).all()
    assert not apart[program.types[:, None] == program.types[None, :]].any()


def test_the_solver_prints_nothing(tmp_path):
    """HiGHS's banner once reached stdout in the middle of `ppp-baseline` output (once per
    process, so a fresh process is needed to see it)."""
    script = ("import numpy as np\n"
              "from reference_model.fcrf.ilp import solve_program\n"
              "from reference_model.fcrf.synthetic import random_program\n"
              "program = random_program(np.random.default_rng(0), 3, same=(0.4, 0.95),\n"
              "                         different=(0.05, 0.6))\n"
              "solution = solve_program(program, time_limit=30)\n"
              "assert solution.optimal and solution.rounds > 0  # HiGHS was used\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "" and run.stderr == ""
