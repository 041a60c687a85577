"""Valid inequalities of the box program, and their separation from a fractional point.

Variables (``program``'s docstring): ``x_j`` (proposal ``j`` selected) and ``y_jk``
(``j`` and ``k`` in one person) for pairs of different joint types; a same-type pair has
no variable and stands for the constant 0.

Star inequalities. For a proposal ``j`` and a set ``T`` of other proposals,

    sum_{t in T} y_jt  -  sum_{{t, u} in T} y_tu  <=  x_j                       (S)

(same-type pairs of ``T`` contribute 0). These are Groetschel and Wakabayashi's
2-partition inequalities with ``S = {j}``, with the right-hand side 1 lifted to ``x_j``.

Validity. Take any feasible labelling and its 0/1 point. If ``j`` is background, every
``y_jt`` is 0 and the left side is ``-sum y_tu <= 0 = x_j``. Otherwise let ``M`` be the
members of ``T`` in ``j``'s person, ``m = |M|``: then ``sum_T y_jt = m``; the ``m`` members
of ``M`` share one person, so they have pairwise different types (one joint per type) and
each of their ``m (m - 1) / 2`` pairs has ``y = 1``, while every other pair of ``T``
contributes ``y >= 0``. The left side is at most ``m - m (m - 1) / 2``, which is at most 1
for every integer ``m >= 0`` (it equals ``1 - (m - 1)(m - 2) / 2``), and ``x_j = 1``. So no
feasible labelling violates (S).

Special cases:

* ``T = {i, k}`` of different types: the lifted triangle ``y_ij + y_jk - y_ik <= x_j``,
  stronger than transitivity ``y_ij + y_jk - y_ik <= 1`` whenever ``x_j < 1``;
* ``T = {k} + B`` with ``B`` a set of proposals of one type ``a`` (not ``k``'s type nor
  ``j``'s): ``y_jk + sum_{i in B} (y_ij - y_ik) <= x_j`` (pairs inside ``B`` have no
  variable);
* ``T`` inside one type: the clique row ``sum_{i of type a} y_ij <= x_j``, which the
  relaxation always holds.

Separation (vectorised over all pairs at once):

1. ``T = {k} + B`` exactly: for every ordered pair ``(j, k)`` with ``y_jk > 0`` and every
   type ``a``, the best ``B`` is ``{i of type a : y_ij > y_ik}``; the best type gives the
   pair's most violated cut. Since ``|B| = 1`` is a lifted triangle, this also finds the
   most violated triangle of every pair. (A pair with ``y_jk = 0`` cannot be violated:
   the clique row of ``j`` and ``a`` bounds the sum by ``x_j``.)
2. General ``T``, greedily, when step 1 finds none: from step 1's best sets, add
   proposals of other types one at a time, the largest gain ``y_jt - sum_{u in T} y_tu``
   first, while it is positive. Each added proposal raises the violation, so the result
   is at least as violated as its seed; it cuts fractional points of three or more types
   that no ``{k} + B`` cut does.

Every cut is returned as a row of a sparse matrix over all columns (``x`` first, then one
``y`` per joinable pair in ``Columns`` order) with right-hand side 0.

``separate_triangles`` is the weaker family the solver used before the stars: plain
transitivity ``y_ij + y_jk - y_ik <= 1`` (right-hand side 1), kept as the benchmark's
baseline and an ablation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix

from .program import joinable

TOLERANCE = 1e-6  # smallest violation worth a row


@dataclass(frozen=True)
class Columns:
    """Column numbering of a program: ``x_j`` is column ``j``; the pair ``(j, k)`` of
    different types is column ``index[j, k]`` (``-1`` for same-type pairs)."""

    types: np.ndarray
    first: np.ndarray  # (E,) lower node of each pair column
    second: np.ndarray  # (E,) higher node
    index: np.ndarray  # (n, n) column of each pair, -1 when it has no variable

    @classmethod
    def of(cls, types: np.ndarray) -> Columns:
        n = len(types)
        first, second = np.nonzero(np.triu(joinable(types), 1))
        index = np.full((n, n), -1, dtype=np.int64)
        index[first, second] = index[second, first] = n + np.arange(len(first))
        return cls(np.asarray(types), first, second, index)

    @property
    def nodes(self) -> int:
        return len(self.types)

    @property
    def size(self) -> int:
        return self.nodes + len(self.first)

    def join_matrix(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Node values ``x`` (n,) and the symmetric pair matrix ``Y`` (n, n) of ``z``."""
        n = self.nodes
        join = np.zeros((n, n))
        join[self.first, self.second] = join[self.second, self.first] = z[n:]
        return z[:n], join

    def vector(self, person: np.ndarray) -> np.ndarray:
        """The 0/1 point of a labelling."""
        same = (person[self.first] == person[self.second]) & (person[self.first] >= 0)
        return np.concatenate([person >= 0, same]).astype(np.float64)


def clique_rows(columns: Columns) -> csr_matrix:
    """``sum_{i of type a} y_ij - x_j <= 0`` for every node ``j`` and partner type ``a``
    (a person has at most one type-``a`` joint, and pairs need selected nodes)."""
    types, n = columns.types, columns.nodes
    num_types = int(types.max()) + 1 if n else 1
    node = np.concatenate([columns.second, columns.first])
    partner_type = np.concatenate([types[columns.first], types[columns.second]])
    keys, row = np.unique(node * num_types + partner_type, return_inverse=True)
    pair_cols = np.tile(n + np.arange(len(columns.first)), 2)
    r = np.concatenate([row, np.arange(len(keys))])
    c = np.concatenate([pair_cols, keys // num_types])
    v = np.concatenate([np.ones(len(row)), -np.ones(len(keys))])
    return coo_matrix((v, (r, c)), shape=(len(keys), columns.size)).tocsr()


def separate_stars(columns: Columns, z: np.ndarray, limit: int,
                   grow: bool = True) -> csr_matrix:
    """Up to ``limit`` violated star inequalities (S) at the point ``z``, most violated
    first: ``{k} + B`` cuts (step 1), or, when step 1 finds none and ``grow``, greedily
    grown sets of any types (step 2)."""
    x, join = columns.join_matrix(z)
    x, join = x.astype(np.float32), join.astype(np.float32)  # exact at 0/1 points
    apex, partner, best_type, violation = _pair_star_sets(columns, x, join)
    grown = grow and not (violation > TOLERANCE).any()
    if grown:  # grow the sets closest to violation
        order = np.argsort(-violation, kind="stable")[:limit]
    else:
        order = np.argsort(-violation, kind="stable")
        order = order[violation[order] > TOLERANCE][:2 * limit]
    apex, violation = apex[order], violation[order]
    members = _pair_members(columns, join, apex, partner[order], best_type[order])
    if grown:
        members, violation = _grow(columns, join, apex, members, violation)
        order = np.argsort(-violation, kind="stable")
        order = order[violation[order] > TOLERANCE][:2 * limit]
        apex, members = apex[order], members[order]
    keep = _first_of_each(apex, members)[:limit]
    return star_rows(columns, apex[keep], members[keep])


def _pair_star_sets(columns: Columns, x: np.ndarray, join: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Step 1: for every ordered pair ``(j, k)`` with ``y_jk > 0``, the type ``a`` of the
    most violated ``T = {k} + B``: apexes, partners, types and violations (q,) each."""
    types = columns.types
    j, k = np.nonzero(join > TOLERANCE)
    if len(j) == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, np.zeros(0, np.float32)
    # Sum the positive y_ij - y_ik per type of i: columns sorted by type, then reduceat
    # (small BLAS products are slow on a busy machine).
    by_node = np.argsort(types, kind="stable")
    present, starts = np.unique(types[by_node], return_index=True)
    positive = join[j][:, by_node] - join[k][:, by_node]
    np.maximum(positive, 0.0, out=positive)
    by_type = np.add.reduceat(positive, starts, axis=1)
    rows = np.arange(len(j))
    by_type[rows, np.searchsorted(present, types[k])] = -np.inf  # B of k's type: a clique row
    best = np.argmax(by_type, axis=1)
    violation = join[j, k] + by_type[rows, best] - x[j]
    return j, k, present[best], violation


def _pair_members(columns: Columns, join: np.ndarray, apex: np.ndarray, partner: np.ndarray,
                  best_type: np.ndarray) -> np.ndarray:
    """Member masks (q, n) of the step-1 sets ``{k} + {i of type a : y_ij > y_ik}``."""
    members = ((columns.types[None, :] == best_type[:, None])
               & (join[apex] > join[partner]))
    members[np.arange(len(apex)), partner] = True
    return members


def _grow(columns: Columns, join: np.ndarray, apex: np.ndarray, members: np.ndarray,
          violation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 2: add proposals to each set while one has a positive gain
    ``y_jt - sum_{u in T} y_tu``, largest first; each gain adds to the violation."""
    members, violation = members.copy(), violation.copy()
    if len(apex) == 0:
        return members, violation
    rows = np.arange(len(apex))
    own = join[apex]
    own[rows, apex] = 0.0
    inner = np.asarray(csr_matrix(members, dtype=join.dtype) @ join)  # sum_{u in T} y_tu
    for _ in range(int(columns.types.max()) + 1):  # a person's worth of proposals
        gain = own - inner
        gain[members | (own <= 0)] = -np.inf
        best = np.argmax(gain, axis=1)
        step = gain[rows, best]
        grows = step > TOLERANCE
        if not grows.any():
            break
        members[rows[grows], best[grows]] = True
        violation[grows] += step[grows]
        inner[grows] += join[best[grows]]
    return members, violation


def star_values(apex: np.ndarray, members: np.ndarray, x: np.ndarray,
                join: np.ndarray) -> np.ndarray:
    """Violation ``lhs - x_j`` of each star cut at ``(x, join)`` (join has 0 for
    same-type pairs)."""
    if len(apex) == 0:
        return np.zeros(0)
    inside = csr_matrix(members, dtype=np.float64)
    star = np.asarray(inside.multiply(join[apex]).sum(axis=1)).ravel()
    pairs = 0.5 * np.asarray(inside.multiply(inside @ join).sum(axis=1)).ravel()
    return star - pairs - x[apex]


def _first_of_each(apex: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct cut, in order."""
    if len(apex) == 0:
        return np.zeros(0, np.int64)
    key = np.concatenate([apex.astype(">i4").view(np.uint8).reshape(-1, 4),
                          np.packbits(members, axis=1)], axis=1)
    key = np.ascontiguousarray(key).view(np.dtype((np.void, key.shape[1]))).ravel()
    _, first = np.unique(key, return_index=True)
    return np.sort(first)


def star_rows(columns: Columns, apex: np.ndarray, members: np.ndarray) -> csr_matrix:
    """Rows ``sum_T y_jt - sum_{pairs of T} y_tu - x_j <= 0`` (one per cut)."""
    count = len(apex)
    cut, member = np.nonzero(members)
    # Pairs of members within each cut: every member against each later one.
    sizes = np.bincount(cut, minlength=count)
    ends = np.cumsum(sizes)[cut]  # one past the cut's last member, per member
    later = ends - np.arange(len(cut)) - 1
    left = np.repeat(np.arange(len(cut)), later)
    right = left + 1 + np.arange(len(left)) - np.repeat(np.cumsum(later) - later, later)
    pair_cols = columns.index[member[left], member[right]]
    has_pair = pair_cols >= 0
    star_cols = columns.index[apex[cut], member]
    has_star = star_cols >= 0  # a member of the apex's type has no y: the term is 0
    r = np.concatenate([cut[has_star], np.arange(count), cut[left][has_pair]])
    c = np.concatenate([star_cols[has_star], apex, pair_cols[has_pair]])
    v = np.concatenate([np.ones(int(has_star.sum())), -np.ones(count),
                        -np.ones(int(has_pair.sum()))])
    rows = coo_matrix((v, (r, c)), shape=(count, columns.size)).tocsr()
    rows.sum_duplicates()
    return rows


def triangle_rows(columns: Columns, triangles: np.ndarray, lifted: bool = True
                  ) -> tuple[csr_matrix, np.ndarray]:
    """Rows of the triangles ``(i, j, k)`` (apex ``j``, ``i`` and ``k`` joined to it) and
    their right-hand sides: ``y_ij + y_jk - y_ik <= x_j`` when ``lifted`` (the star with
    ``T = {i, k}``), else ``<= 1``. A same-type ``i, k`` has no ``y_ik`` term."""
    i, j, k = np.asarray(triangles, dtype=np.int64).reshape(-1, 3).T
    count = len(j)
    every = np.arange(count)
    ik = columns.index[i, k]
    has_ik = ik >= 0
    r = [every, every, every[has_ik]]
    c = [columns.index[i, j], columns.index[j, k], ik[has_ik]]
    v = [np.ones(count), np.ones(count), -np.ones(int(has_ik.sum()))]
    if lifted:
        r.append(every)
        c.append(j)
        v.append(-np.ones(count))
    rows = coo_matrix((np.concatenate(v), (np.concatenate(r), np.concatenate(c))),
                      shape=(count, columns.size)).tocsr()
    return rows, (np.zeros(count) if lifted else np.ones(count))


def separate_triangles(columns: Columns, z: np.ndarray, limit: int) -> np.ndarray:
    """Up to ``limit`` most violated plain triangles ``y_ij + y_jk - y_ik <= 1`` at ``z``,
    as ``(i, j, k)`` rows (apex ``j``, ``i < k``); apexes are scanned in chunks to bound
    memory. A triangle with a same-type side among its joined ones is never violated."""
    _, join = columns.join_matrix(z)
    m = len(join)
    found, violation = [np.zeros((0, 3), np.int64)], [np.zeros(0)]
    chunk = max(1, 4_000_000 // max(m * m, 1))
    for start in range(0, m, chunk):
        apex = np.arange(start, min(m, start + chunk))
        # excess[c, i, k] = y_i,apex + y_apex,k - y_ik - 1
        excess = join[:, apex].T[:, :, None] + join[apex][:, None, :] - join[None] - 1.0
        c, i, k = np.nonzero(excess > TOLERANCE)
        keep = i < k
        found.append(np.stack([i[keep], apex[c[keep]], k[keep]], axis=1))
        violation.append(excess[c[keep], i[keep], k[keep]])
    triangles = np.concatenate(found)
    order = np.argsort(-np.concatenate(violation), kind="stable")[:limit]
    return triangles[order]
