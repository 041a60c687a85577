"""Kernighan-Lin-style improvement of a labelling (Keuper et al. 2015, "KLj"), for the box program.

GAEC only ever merges, so a proposal it put in the wrong person stays there. This is the
local search of Keuper et al. ("Efficient decomposition of image and mesh graphs by
lifted multicuts", ICCV 2015), adapted to the program's two extras: background, and at
most one joint of each type per person.

For every pair of "sides" -- two people, a person and the background, a person and a new
empty person, the background and a new person -- a pass moves proposals one at a time
to the other side, always taking the best move left even when it raises the cost, and
never moving a proposal twice; then it keeps the best prefix of that sequence (the
variable-depth search of Kernighan and Lin, which climbs out of local minima a greedy
pass cannot leave). A move into a person that already holds a joint of that type is a
swap: the two same-type proposals trade sides, so every state stays feasible. Two people
with disjoint joint types may also be joined outright. Pairs whose sides changed are
revisited until a full sweep improves nothing.

The background side costs nothing: a proposal there pays neither its unary nor any
pairwise cost, which is exactly the program's objective.

The search is compiled with numba: its passes make hundreds of moves over a dozen
proposals each, where interpreted NumPy spent ~55 us of call overhead per move (a tiny
box took ~60 ms, more than the rest of its solve); compiled, the same search takes well
under a millisecond. Numba caches the machine code next to this module (or in the user's
cache when that is read-only), so only the first process compiles it.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from .program import BoxProgram, Solution, canonical_labels, joinable

_EPS = 1e-9  # an improvement must beat rounding noise, or passes could cycle
BACKGROUND = -1


def kernighan_lin(program: BoxProgram, start: Solution | np.ndarray,
                  max_sweeps: int = 50) -> Solution:
    """A labelling no worse than ``start`` (a Solution or a labelling), feasible whenever
    ``start`` is. ``lower_bound`` is -inf: this proves nothing."""
    person = canonical_labels(start.person if isinstance(start, Solution) else start)
    if program.n == 0:
        return Solution(person, 0.0, 0.0, True)
    cost = np.where(joinable(program.types), program.pairwise, 0.0)
    np.fill_diagonal(cost, 0.0)
    person = person.astype(np.int64)
    _search(np.ascontiguousarray(program.unary, dtype=np.float64),
            np.ascontiguousarray(program.types, dtype=np.int64),
            np.ascontiguousarray(cost, dtype=np.float64), person, max_sweeps)
    person = canonical_labels(person)
    return Solution(person, program.objective(person), -np.inf, False)


@functools.cache
def compile_search() -> None:
    """Compile (or load from the cache) the search now, so that a solver's time limit
    does not pay for it: compiling takes ~10 s the first time on a machine."""
    _search(np.zeros(1), np.zeros(1, np.int64), np.zeros((1, 1)), np.full(1, -1, np.int64), 1)


@numba.njit(cache=True)
def _search(unary, types, cost, person, max_sweeps):
    """Sweeps of passes over the side pairs worth one, until a sweep changes nothing;
    ``person`` is improved in place. Labels are renumbered 0..P-1 before each sweep, so
    the flags below are indexed by label + 1 (0: the background)."""
    n = len(unary)
    dirty = np.ones(n + 2, np.bool_)  # every side is new to the search
    for _ in range(max_sweeps):
        people = _renumber(person, dirty)  # also the label of a new, empty person
        firsts, seconds = _pairs(cost, person, people, dirty)
        changed = np.zeros(n + 2, np.bool_)
        for k in range(len(firsts)):
            a, b = firsts[k], seconds[k]
            if _improve_pair(unary, types, cost, person, a, b):
                changed[a + 1] = True
                changed[b + 1] = True
        if not changed.any():
            return
        dirty = changed


@numba.njit(cache=True)
def _renumber(person, dirty):
    """Labels 0..P-1 in the order of the old ones (so passes keep their order), the dirty
    flags carried along; returns P."""
    n = len(person)
    present = np.zeros(n + 2, np.bool_)
    for v in range(n):
        if person[v] >= 0:
            present[person[v]] = True
    new_label = np.cumsum(present) - 1
    moved = np.zeros(n + 2, np.bool_)
    moved[0] = dirty[0]
    for old in range(n + 1):
        if present[old]:
            moved[new_label[old] + 1] = dirty[old + 1]
    for v in range(n):
        if person[v] >= 0:
            person[v] = new_label[person[v]]
    dirty[:] = moved
    return int(present.sum())


@numba.njit(cache=True)
def _pairs(cost, person, people, dirty):
    """Side pairs worth a pass: two people linked by an attractive pair, each person with
    the background and with a fresh empty person (label ``people``), and the background
    with a fresh person; at least one side changed since its last pass."""
    n = len(person)
    fresh = people
    linked = np.zeros((people, people), np.bool_)
    for i in range(n):
        for j in range(n):
            if person[i] >= 0 and person[j] >= 0 and cost[i, j] < 0:
                linked[person[i], person[j]] = True
    firsts = np.empty(people * people + 2 * people + 1, np.int64)
    seconds = np.empty_like(firsts)
    count = 0
    for a in range(people):
        for b in range(a + 1, people):
            if (dirty[a + 1] or dirty[b + 1]) and linked[a, b]:
                firsts[count], seconds[count] = a, b
                count += 1
    for a in range(people):
        if dirty[a + 1] or dirty[0]:
            firsts[count], seconds[count] = a, BACKGROUND
            count += 1
        if dirty[a + 1]:
            firsts[count], seconds[count] = a, fresh
            count += 1
    if dirty[0]:
        firsts[count], seconds[count] = BACKGROUND, fresh
        count += 1
    return firsts[:count], seconds[:count]


@numba.njit(cache=True)
def _members(cost, person, a, b):
    """Proposals of both sides; of the background, only those with an attractive pair to
    a proposal of ``a`` (the rest could only raise the cost there)."""
    n = len(person)
    keep = np.zeros(n, np.bool_)
    for v in range(n):
        side = person[v]
        if side != a and side != b:
            continue
        if side == BACKGROUND:
            for w in range(n):
                if person[w] == a and cost[v, w] < 0:
                    keep[v] = True
                    break
        else:
            keep[v] = True
    return np.flatnonzero(keep)


@numba.njit(cache=True)
def _improve_pair(unary, types, cost, person, a, b):
    """One Kernighan-Lin pass between sides ``a`` and ``b``, or a join of both."""
    members = _members(cost, person, a, b)
    m = len(members)
    if m == 0:
        return False
    is_person = np.array([a != BACKGROUND, b != BACKGROUND])
    persons = (a != BACKGROUND) + (b != BACKGROUND)  # sides that are people
    side = np.zeros(m, np.int64)
    sub_cost = np.empty((m, m))
    sub_types = np.empty(m, np.int64)
    sub_unary = np.empty(m)
    for i in range(m):
        side[i] = 1 if person[members[i]] == b else 0
        sub_types[i] = types[members[i]]
        sub_unary[i] = unary[members[i]]
        for j in range(m):
            sub_cost[i, j] = cost[members[i], members[j]]
    start = side.copy()
    type_count = np.zeros((2, sub_types.max() + 1), np.int64)
    to_side = np.zeros((2, m))  # each member's pairwise cost to everyone on each side
    for i in range(m):
        type_count[side[i], sub_types[i]] += 1
        for j in range(m):
            to_side[side[j], i] += sub_cost[i, j]
    join = _join_gain(is_person, type_count, to_side, side)
    locked = np.zeros(m, np.bool_)
    order = np.empty(m, np.int64)  # moved members in order; a swap moves two
    moved = 0
    total, best_gain, best_length = 0.0, _EPS, 0
    here, there = np.empty(m), np.empty(m)
    while True:
        for i in range(m):
            s = side[i]
            here[i] = sub_unary[i] + to_side[s, i] if is_person[s] else 0.0
            there[i] = sub_unary[i] + to_side[1 - s, i] if is_person[1 - s] else 0.0
        gain, v, w = -np.inf, -1, -1
        for i in range(m):
            other = 1 - side[i]
            if locked[i] or (is_person[other] and type_count[other, sub_types[i]] > 0):
                continue
            if here[i] - there[i] > gain:
                gain, v = here[i] - there[i], i
        for i in range(m):  # same-type swaps: i on side 0 and j on side 1 trade sides
            if locked[i] or side[i] != 0:
                continue
            for j in range(m):
                if locked[j] or side[j] != 1 or sub_types[j] != sub_types[i]:
                    continue
                # each then shares its new side without the other
                shared = sub_cost[i, j] * persons
                swap = here[i] + here[j] - there[i] - there[j] + shared
                if swap > gain:
                    gain, v, w = swap, i, j
        if gain == -np.inf:
            break
        for node in (v, w):
            if node < 0:
                continue
            old = side[node]
            for i in range(m):
                to_side[old, i] -= sub_cost[i, node]
                to_side[1 - old, i] += sub_cost[i, node]
            type_count[old, sub_types[node]] -= 1
            type_count[1 - old, sub_types[node]] += 1
            side[node] = 1 - old
            locked[node] = True
            order[moved] = node
            moved += 1
        total += gain
        if total > best_gain:
            best_gain, best_length = total, moved
    if join > best_gain:
        for i in range(m):
            person[members[i]] = a
        return True
    if best_length == 0:
        return False
    for k in range(best_length):
        start[order[k]] = 1 - start[order[k]]
    for i in range(m):
        person[members[i]] = b if start[i] == 1 else a
    return True


@numba.njit(cache=True)
def _join_gain(is_person, type_count, to_side, side):
    """Gain of merging both sides into one person: both must be non-empty people with
    disjoint joint types."""
    if not (is_person[0] and is_person[1]):
        return -np.inf
    if type_count[0].sum() == 0 or type_count[1].sum() == 0:
        return -np.inf
    for t in range(type_count.shape[1]):
        if type_count[0, t] > 0 and type_count[1, t] > 0:
            return -np.inf
    total = 0.0
    for i in range(len(side)):
        if side[i] == 0:
            total += to_side[1, i]
    return -total
