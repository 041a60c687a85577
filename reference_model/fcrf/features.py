"""Pairwise features f(Pn) and f(Ps) of proposal pairs (paper Sec. 3.1), vectorised over pairs.

Pairs are unordered proposals of different joint types, oriented from the proposal of
the lower type index ``a`` (``c_i``) to the higher ``b`` (``c_j``); each oriented type
pair ``(a, b)``, ``a < b``, has its own regression (``pair_type_index``).

f(Pn), 4 values: ``|v_ij - v'_ij|``, ``|v_ji - v'_ji|``, the angle between ``v_ij`` and
``v'_ij`` and the angle between ``v_ji`` and ``v'_ji`` (radians in [0, pi]), where
``v_ij = c_j - c_i`` and ``v'_ij`` is the offset to type ``b`` predicted at ``c_i``.

f(Ps), 10 values, from the argmax label map of ``Ps`` and the schema's links (joint -> one or
two parts, skeleton edge -> one part):
(1) for ``c_i`` and each of its parts (second part padded with 0): inside the part, near
its boundary (both part and non-part pixels within ``boundary_radius``, a square window);
(2) the same 4 values for ``c_j``;
(3) the fraction of the segment ``c_i c_j`` inside the edge's part;
(4) the IoU between the oriented rectangle on ``c_i c_j`` (length ``|c_i c_j|``, width
length / ``aspect``) and the edge's part region, where the region is the connected
components of that part which the rectangle overlaps (the limb at hand, not every limb
of that class in the box); both areas are estimated on a grid of samples.
(3) and (4) are 0 when ``a`` and ``b`` are not skeleton neighbours.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
from scipy.ndimage import label as connected_regions
from scipy.sparse import csr_matrix

from pascal_person_pose.schema import (EDGE_PART_ID, JOINT_PART_IDS, NUM_JOINTS, NUM_PARTS,
                                       SKELETON_INDEX)

from .maps import OFFSET_CHANNEL, ScoreMaps
from .proposals import Proposals

NUM_OFFSET_FEATURES = 4
NUM_SEGMENT_FEATURES = 10
NUM_PAIR_TYPES = NUM_JOINTS * (NUM_JOINTS - 1) // 2


def _pair_type_table() -> np.ndarray:
    table = np.full((NUM_JOINTS, NUM_JOINTS), -1, dtype=np.int64)
    a, b = np.triu_indices(NUM_JOINTS, 1)
    table[a, b] = table[b, a] = np.arange(len(a))
    return table


# PAIR_TYPE[a, b]: index 0..90 of the unordered type pair {a, b} (-1 on the diagonal).
PAIR_TYPE: np.ndarray = _pair_type_table()


def _edge_part_table() -> np.ndarray:
    table = np.full((NUM_JOINTS, NUM_JOINTS), -1, dtype=np.int64)
    a, b = np.array(SKELETON_INDEX).T
    table[a, b] = table[b, a] = EDGE_PART_ID
    return table


# EDGE_PART[a, b]: the part class of skeleton edge a-b, -1 for non-neighbours.
EDGE_PART: np.ndarray = _edge_part_table()
# JOINT_PARTS[t]: the one or two parts of joint type t, -1 padded.
JOINT_PARTS: np.ndarray = np.array([list(p) + [-1] * (2 - len(p)) for p in JOINT_PART_IDS])


@dataclass(frozen=True)
class FeatureParams:
    boundary_radius: int = 4  # map pixels: half the side of the "near boundary" window
    segment_samples: int = 16  # points sampled on the segment c_i c_j
    aspect: float = 2.5  # rectangle length : width
    rectangle_samples: tuple[int, int] = (16, 6)  # grid along and across the rectangle

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FeatureParams:
        """The inverse of :meth:`to_dict`; a value of the wrong type raises ``ValueError``."""
        if not isinstance(d, dict) or set(d) != {f.name for f in fields(cls)}:
            raise ValueError(f"expected the keys {sorted(f.name for f in fields(cls))}")
        samples = d["rectangle_samples"]
        integers = [d["boundary_radius"], d["segment_samples"]]
        if isinstance(samples, list) and len(samples) == 2:
            integers += samples
        else:
            raise ValueError("rectangle_samples must be two integers")
        if not all(type(v) is int and v >= 0 for v in integers) or min(integers[1:]) < 1:
            raise ValueError("the radius and sample counts must be integers (counts >= 1)")
        aspect = d["aspect"]
        if type(aspect) not in (int, float) or not 0 < aspect < float("inf"):
            raise ValueError("aspect must be a positive number")
        return cls(d["boundary_radius"], d["segment_samples"], float(aspect), tuple(samples))


@dataclass(frozen=True)
class PartRegions:
    """What the segment features read from one box's part map, computed once per box."""

    labels: np.ndarray  # (h, w) uint8 argmax of Ps
    counts: np.ndarray  # (7, h + 1, w + 1) int32 integral images of each class
    components: np.ndarray  # (h, w) int32: connected region id within its class, 0 = none
    component_area: np.ndarray  # (num_components + 1,) float64, [0] = 0

    @classmethod
    def from_labels(cls, labels: np.ndarray) -> PartRegions:
        labels = np.asarray(labels, dtype=np.uint8)
        onehot = labels[None] == np.arange(NUM_PARTS, dtype=np.uint8)[:, None, None]
        counts = np.zeros((NUM_PARTS,) + tuple(s + 1 for s in labels.shape), dtype=np.int32)
        counts[:, 1:, 1:] = onehot.cumsum(1, dtype=np.int32).cumsum(2, dtype=np.int32)
        components = np.zeros(labels.shape, dtype=np.int32)
        total = 0
        for part in range(1, NUM_PARTS):
            regions, count = connected_regions(onehot[part])
            components += np.where(regions > 0, regions + total, 0).astype(np.int32)
            total += count
        area = np.bincount(components.ravel(), minlength=total + 1).astype(np.float64)
        area[0] = 0.0
        return cls(labels, counts, components, area)

    @classmethod
    def from_scores(cls, Ps: np.ndarray) -> PartRegions:
        """Regions of the argmax label map of part probabilities ``Ps`` (h, w, 7)."""
        return cls.from_labels(np.argmax(Ps, axis=2).astype(np.uint8))

    def _lookup(self, x: np.ndarray, y: np.ndarray, table: np.ndarray,
                outside: int) -> np.ndarray:
        """``table`` at rounded points, ``outside`` for points off the map."""
        h, w = self.labels.shape
        xi, yi = np.rint(x).astype(np.int64), np.rint(y).astype(np.int64)
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        out = np.full(xi.shape, outside, dtype=table.dtype)
        out[inside] = table[yi[inside], xi[inside]]
        return out

    def label_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self._lookup(x, y, self.labels, 255)

    def component_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self._lookup(x, y, self.components, 0)

    def near_boundary(self, x: np.ndarray, y: np.ndarray, part: np.ndarray,
                      radius: int) -> np.ndarray:
        """Whether the square window of half side ``radius`` holds ``part`` and other pixels."""
        h, w = self.labels.shape
        xi, yi = np.rint(x).astype(np.int64), np.rint(y).astype(np.int64)
        x0, x1 = np.clip(xi - radius, 0, w), np.clip(xi + radius + 1, 0, w)
        y0, y1 = np.clip(yi - radius, 0, h), np.clip(yi + radius + 1, 0, h)
        # Four corners per point, read in place: indexing ``counts`` by ``part`` first would
        # copy a whole map per point (GBs for a zoomed whole image of ~400 proposals).
        p, c = np.maximum(part, 0), self.counts
        inside = c[p, y1, x1] - c[p, y0, x1] - c[p, y1, x0] + c[p, y0, x0]
        area = (x1 - x0) * (y1 - y0)
        return (part >= 0) & (inside > 0) & (inside < area)


@dataclass(frozen=True)
class PairFeatures:
    """The oriented pairs of one box and their features."""

    i: np.ndarray  # (N,) proposal of the lower joint type
    j: np.ndarray  # (N,) proposal of the higher joint type
    pair_type: np.ndarray  # (N,) PAIR_TYPE of the two types
    offset: np.ndarray  # (N, 4) f(Pn)
    segment: np.ndarray | None  # (N, 10) f(Ps), None when not computed


def oriented_pairs(proposals: Proposals) -> tuple[np.ndarray, np.ndarray]:
    """All proposal pairs of different types, ``i`` of the lower type index."""
    t = proposals.types
    i, j = np.nonzero(t[:, None] < t[None, :])
    return i, j


def offset_features(proposals: Proposals, maps: ScoreMaps, i: np.ndarray,
                    j: np.ndarray) -> np.ndarray:
    """f(Pn) (N, 4) of oriented pairs ``(i, j)``; ``v'`` is read in the ``Pn`` cell of the
    source proposal."""
    xy, t = proposals.xy, proposals.types
    v_ij = xy[j] - xy[i]
    row, col = maps.cell_of(xy)

    def predicted(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        channel = OFFSET_CHANNEL[t[src], t[dst]]
        r, c = row[src], col[src]
        return np.stack([maps.Pn[r, c, channel], maps.Pn[r, c, channel + 1]],
                        axis=1).astype(np.float64)

    v_ij_pred, v_ji_pred = predicted(i, j), predicted(j, i)
    return np.stack([np.hypot(*(v_ij - v_ij_pred).T), np.hypot(*(-v_ij - v_ji_pred).T),
                     _angle(v_ij, v_ij_pred), _angle(-v_ij, v_ji_pred)], axis=1)


def _angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Unsigned angle between row vectors (0 when either is zero)."""
    cross = u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]
    dot = (u * v).sum(axis=1)
    return np.abs(np.arctan2(cross, dot))


def segment_features(proposals: Proposals, regions: PartRegions, i: np.ndarray,
                     j: np.ndarray, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """f(Ps) (N, 10) of oriented pairs ``(i, j)``."""
    xy, t = proposals.xy, proposals.types
    # (1), (2): inside / near boundary of each joint part, computed once per proposal.
    parts = JOINT_PARTS[t]  # (n, 2)
    px = np.repeat(xy[:, 0], 2)
    py = np.repeat(xy[:, 1], 2)
    part = parts.ravel()
    inside = (regions.label_at(px, py) == part) & (part >= 0)
    near = regions.near_boundary(px, py, part, params.boundary_radius)
    per_proposal = np.stack([inside, near], axis=1).reshape(len(t), 4).astype(np.float64)
    out = np.zeros((len(i), NUM_SEGMENT_FEATURES))
    out[:, 0:4] = per_proposal[i]
    out[:, 4:8] = per_proposal[j]
    # (3), (4) for skeleton neighbours only.
    edge_part = EDGE_PART[t[i], t[j]]
    linked = np.flatnonzero(edge_part >= 0)
    if len(linked):
        a, b, p = xy[i[linked]], xy[j[linked]], edge_part[linked]
        out[linked, 8] = _segment_fraction(regions, a, b, p, params.segment_samples)
        out[linked, 9] = _rectangle_iou(regions, a, b, p, params)
    return out


def _segment_fraction(regions: PartRegions, a: np.ndarray, b: np.ndarray, part: np.ndarray,
                      samples: int) -> np.ndarray:
    """Fraction of ``samples`` evenly spaced points of each segment ``a b`` inside ``part``."""
    s = (np.arange(samples) + 0.5) / samples
    points = a[:, None, :] + s[None, :, None] * (b - a)[:, None, :]
    return (regions.label_at(points[..., 0], points[..., 1]) == part[:, None]).mean(axis=1)


def _rectangle_iou(regions: PartRegions, a: np.ndarray, b: np.ndarray, part: np.ndarray,
                   params: FeatureParams) -> np.ndarray:
    """IoU of each oriented rectangle on ``a b`` with the overlapped components of ``part``."""
    along, across = params.rectangle_samples
    axis = b - a
    length = np.hypot(axis[:, 0], axis[:, 1])
    normal = np.stack([-axis[:, 1], axis[:, 0]], axis=1) / params.aspect
    s = (np.arange(along) + 0.5) / along - 0.5
    r = (np.arange(across) + 0.5) / across - 0.5
    grid_s, grid_r = (g.ravel() for g in np.meshgrid(s, r, indexing="ij"))
    centre = 0.5 * (a + b)
    points = (centre[:, None, :] + grid_s[None, :, None] * axis[:, None, :]
              + grid_r[None, :, None] * normal[:, None, :])
    x, y = points[..., 0], points[..., 1]
    hit = regions.label_at(x, y) == part[:, None]
    component = np.where(hit, regions.component_at(x, y), 0)
    rect_area = length * length / params.aspect
    intersection = hit.mean(axis=1) * rect_area
    rows = np.repeat(np.arange(len(part)), component.shape[1])
    touched = csr_matrix((np.ones(component.size), (rows, component.ravel())),
                         shape=(len(part), len(regions.component_area)))
    touched.data[:] = 1.0  # duplicates were summed: each component counts once
    region_area = touched @ regions.component_area
    union = rect_area + region_area - intersection
    return np.divide(intersection, union, out=np.zeros_like(union), where=union > 0)


def pair_features(proposals: Proposals, maps: ScoreMaps, regions: PartRegions | None,
                  params: FeatureParams = FeatureParams(),
                  pairs: tuple[np.ndarray, np.ndarray] | None = None) -> PairFeatures:
    """Features of the oriented pairs ``pairs`` of ``proposals`` (default: every pair);
    f(Ps) only when ``regions`` are given."""
    i, j = oriented_pairs(proposals) if pairs is None else pairs
    t = proposals.types
    segment = None if regions is None else segment_features(proposals, regions, i, j, params)
    return PairFeatures(i, j, PAIR_TYPE[t[i], t[j]], offset_features(proposals, maps, i, j),
                        segment)
