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
"""

from __future__ import annotations

import itertools

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
    search = _Search(program, person)
    search.run(max_sweeps)
    person = canonical_labels(search.person)
    return Solution(person, program.objective(person), -np.inf, False)


class _Search:
    def __init__(self, program: BoxProgram, person: np.ndarray):
        self.unary = program.unary
        self.types = program.types
        self.cost = np.where(joinable(program.types), program.pairwise, 0.0)
        np.fill_diagonal(self.cost, 0.0)
        self.attractive = self.cost < 0
        self.person = person.copy()
        self.next_label = int(person.max(initial=-1)) + 1

    def run(self, max_sweeps: int) -> None:
        dirty = set(np.unique(self.person).tolist()) | {BACKGROUND}
        for _ in range(max_sweeps):
            changed: set[int] = set()
            for a, b in self._pairs(dirty):
                if self._improve_pair(a, b):
                    changed |= {a, b}
            if not changed:
                return
            dirty = changed

    def _pairs(self, dirty: set[int]) -> list[tuple[int, int]]:
        """Side pairs worth a pass: two people linked by an attractive pair, each person
        with the background and with a fresh empty person, and the background with a
        fresh person; at least one side changed since its last pass."""
        people = [int(v) for v in np.unique(self.person) if v != BACKGROUND]
        pairs = [(a, b) for a, b in itertools.combinations(people, 2)
                 if (a in dirty or b in dirty) and self._linked(a, b)]
        for a in people:
            if a in dirty or BACKGROUND in dirty:
                pairs.append((a, BACKGROUND))
            if a in dirty:
                pairs.append((a, self.next_label))
        if BACKGROUND in dirty:
            pairs.append((BACKGROUND, self.next_label))
        return pairs

    def _linked(self, a: int, b: int) -> bool:
        return bool(self.attractive[np.ix_(self.person == a, self.person == b)].any())

    def _members(self, a: int, b: int) -> np.ndarray:
        """Proposals of both sides; of the background, only those with an attractive pair
        to the other side (the rest could only raise the cost there)."""
        on_a, on_b = self.person == a, self.person == b
        if b == BACKGROUND:
            on_b &= self.attractive[:, on_a].any(axis=1)
        if a == BACKGROUND:
            on_a &= self.attractive[:, on_a].any(axis=1)
        return np.flatnonzero(on_a | on_b)

    def _improve_pair(self, a: int, b: int) -> bool:
        """One Kernighan-Lin pass between sides ``a`` and ``b``, or a join of both."""
        members = self._members(a, b)
        if len(members) == 0:
            return False
        in_b = self.person[members] == b
        moves = _Pass(self, members, in_b, a != BACKGROUND, b != BACKGROUND)
        join_gain = moves.join_gain()
        total, best_gain, best_length, sequence = 0.0, _EPS, 0, []
        while (move := moves.best_move()) is not None:
            nodes, gain = move
            moves.apply(nodes)
            sequence.append(nodes)
            total += gain
            if total > best_gain:
                best_gain, best_length = total, len(sequence)
        if join_gain > best_gain:
            self.person[members] = a
            return True
        if best_length == 0:
            return False
        for nodes in sequence[:best_length]:
            in_b[nodes] = ~in_b[nodes]
        self.person[members] = np.where(in_b, b, a)
        self.next_label = max(self.next_label, a + 1, b + 1)
        return True


class _Pass:
    """Gains of the moves between two sides, kept up to date as proposals move.

    Side 0 is ``a``, side 1 is ``b``. A swap partner pair never changes sides while both
    are unlocked, so the candidate swaps (same type, opposite sides) are listed once.
    """

    def __init__(self, search: _Search, members: np.ndarray, in_b: np.ndarray,
                 a_is_person: bool, b_is_person: bool):
        types = search.types[members]
        self.types = types
        self.unary = search.unary[members]
        self.cost = search.cost[np.ix_(members, members)]
        self.is_person = np.array([a_is_person, b_is_person])
        self.side = in_b.astype(np.int64)
        self.locked = np.zeros(len(members), bool)
        self.to_side = np.stack([self.cost @ (self.side == 0), self.cost @ (self.side == 1)])
        self.type_count = np.zeros((2, int(types.max()) + 1), np.int64)
        np.add.at(self.type_count, (self.side, types), 1)
        v, w = np.nonzero((types[:, None] == types[None, :])
                          & (self.side[:, None] < self.side[None, :]))
        self.swap_v, self.swap_w, self.swap_cost = v, w, self.cost[v, w]

    def _costs(self) -> tuple[np.ndarray, np.ndarray]:
        """What each member pays on its side now, and would pay joining the other side
        as it stands (0 on the background side)."""
        rows = np.arange(len(self.side))
        here = np.where(self.is_person[self.side], self.unary + self.to_side[self.side, rows],
                        0.0)
        other = 1 - self.side
        there = np.where(self.is_person[other], self.unary + self.to_side[other, rows], 0.0)
        return here, there

    def best_move(self) -> tuple[np.ndarray, float] | None:
        """The best single move or same-type swap among unlocked members, with its gain
        (cost before minus cost after; negative when the move makes things worse)."""
        here, there = self._costs()
        other = 1 - self.side
        clash = self.is_person[other] & (self.type_count[other, self.types] > 0)
        gain = np.where(self.locked | clash, -np.inf, here - there)
        v = int(np.argmax(gain))
        best_gain, best_nodes = float(gain[v]), np.array([v])
        if len(self.swap_v):
            # v and w trade sides; each then shares its new side without the other.
            pv, pw = self.swap_v, self.swap_w
            shared = self.swap_cost * (self.is_person[self.side[pv]].astype(float)
                                       + self.is_person[self.side[pw]])
            swap_gain = here[pv] + here[pw] - there[pv] - there[pw] + shared
            swap_gain[self.locked[pv] | self.locked[pw]] = -np.inf
            s = int(np.argmax(swap_gain))
            if swap_gain[s] > best_gain:
                best_gain, best_nodes = float(swap_gain[s]), np.array([pv[s], pw[s]])
        return None if best_gain == -np.inf else (best_nodes, best_gain)

    def apply(self, nodes: np.ndarray) -> None:
        """Move ``nodes`` to their other side and lock them."""
        for v in nodes:
            old = self.side[v]
            self.to_side[old] -= self.cost[:, v]
            self.to_side[1 - old] += self.cost[:, v]
            self.type_count[old, self.types[v]] -= 1
            self.type_count[1 - old, self.types[v]] += 1
            self.side[v] = 1 - old
        self.locked[nodes] = True

    def join_gain(self) -> float:
        """Gain of merging both sides into one person: both must be non-empty people
        with disjoint joint types."""
        counts = self.type_count
        if not self.is_person.all() or (counts.sum(axis=1) == 0).any() or (
                counts.min(axis=0) > 0).any():
            return -np.inf
        return -float(self.to_side[1][self.side == 0].sum())
