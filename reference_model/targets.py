"""Training targets from ground truth, and the grid geometry their decoders share.

Grid convention: cell ``i`` of a stride-``s`` map covers input pixels ``[i*s, (i+1)*s)``,
so its centre in 0-based pixel-centre coordinates is ``i*s + (s-1)/2``
(:func:`grid_to_pixels`). Targets and decoders use the same two functions, which is what
makes them exact inverses.

Pose FCN targets follow DeeperCut: a cell is positive for joint type ``a`` when a labelled
joint of that type (COCO visibility > 0, occluded included) lies within ``radius`` crop
pixels of the cell centre; where several people's joints qualify, the nearest one owns the
cell. A positive cell regresses (a) the location refinement ``(joint - centre) /
locref_scale`` and (b) for each other type ``b`` labelled for the same person, the offset
``(joint_b - centre - mean_ab) / std_ab`` (DeeperCut's per-pair normalisation, see
:func:`fit_offset_stats`). The 364 offset channels follow ``fcrf.maps``, the one place
their layout is defined: ``2 * (13 * a + k) + axis``, ``k`` indexing ``OTHER_TYPES[a]``
(the 13 other types, ascending), ``axis`` 0 = dx, 1 = dy; they reshape to (14, 13, 2).

Detector targets follow CenterNet at stride 4: a Gaussian peak (exactly 1 at the centre's
cell) of CornerNet's radius per box, the sub-cell offset of the centre and the box size
in cells at that one cell.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence, TypeVar

import numpy as np
import torch

from pascal_person_pose import schema

from .fcrf.maps import NUM_OFFSET_CHANNELS, OFFSET_CHANNEL

J = schema.NUM_JOINTS

# OTHER_TYPES[a, k]: the joint type of the k-th (dx, dy) channel pair of type a.
OTHER_TYPES: np.ndarray = np.array([
    [b for b in np.argsort(OFFSET_CHANNEL[a]) if b != a] for a in range(J)])


def grid_to_pixels(q: np.ndarray | float, stride: int) -> np.ndarray | float:
    """Continuous grid coordinate -> pixel-centre coordinate (cell ``i`` -> its centre)."""
    return (q + 0.5) * stride - 0.5


def pixels_to_grid(x: np.ndarray | float, stride: int) -> np.ndarray | float:
    """Pixel-centre coordinate -> continuous grid coordinate (inverse of grid_to_pixels)."""
    return (x + 0.5) / stride - 0.5


def cell_centres(height: int, width: int, stride: int) -> np.ndarray:
    """``(height, width, 2)`` pixel coordinates (x, y) of every cell centre."""
    ys, xs = np.meshgrid(grid_to_pixels(np.arange(height), stride),
                         grid_to_pixels(np.arange(width), stride), indexing="ij")
    return np.stack([xs, ys], axis=-1).astype(np.float32)


@dataclass(frozen=True)
class OffsetStats:
    """Per-channel mean and std of the 364 pairwise offsets, in crop pixels."""

    mean: np.ndarray  # (364,) float32
    std: np.ndarray  # (364,) float32

    @classmethod
    def uniform(cls, std: float) -> OffsetStats:
        """No prior: zero mean, one scale for every pair (e.g. a quarter of the crop)."""
        return cls(np.zeros(NUM_OFFSET_CHANNELS, np.float32),
                   np.full(NUM_OFFSET_CHANNELS, std, np.float32))


def fit_offset_stats(keypoints: Sequence[np.ndarray], min_std: float = 1.0,
                     default_std: float = 32.0) -> OffsetStats:
    """DeeperCut's normalisation: mean and std of ``joint_b - joint_a`` over all people.

    ``keypoints``: arrays ``(P_i, 14, 3)`` in crop pixels (the training crops' people).
    A pair never labelled together keeps mean 0 and ``default_std``.
    """
    kp = np.concatenate([np.asarray(k, np.float64).reshape(-1, J, 3) for k in keypoints])
    labelled = kp[..., 2] > 0
    pair_ok = labelled[:, :, None] & labelled[:, None, :]  # (P, a, b)
    diff = kp[:, None, :, :2] - kp[:, :, None, :2]  # (P, a, b, 2): joint b - joint a
    count = pair_ok.sum(0)[..., None]
    mean = np.where(count > 0, (diff * pair_ok[..., None]).sum(0) / np.maximum(count, 1), 0)
    var = ((diff - mean) ** 2 * pair_ok[..., None]).sum(0) / np.maximum(count, 1)
    std = np.where(count > 0, np.maximum(np.sqrt(var), min_std), default_std)
    a = np.arange(J)[:, None]
    return OffsetStats(mean[a, OTHER_TYPES].reshape(-1).astype(np.float32),
                       std[a, OTHER_TYPES].reshape(-1).astype(np.float32))


@dataclass
class PoseTargets:
    """Targets of one crop (numpy) or a batch (torch, leading batch axis) on the stride-8 grid."""

    scores: np.ndarray  # (14, h, w) 1 at positive cells
    locref: np.ndarray  # (28, h, w) normalised (dx, dy) per type, channel 2a + axis
    locref_mask: np.ndarray  # (28, h, w) 1 where locref is defined
    offsets: np.ndarray  # (364, h, w) normalised, fcrf.maps channel order
    offsets_mask: np.ndarray  # (364, h, w)


def pose_targets(keypoints: np.ndarray, height: int, width: int, stride: int, radius: float,
                 locref_scale: float, offset_stats: OffsetStats) -> PoseTargets:
    """Pose FCN targets on an ``height`` x ``width`` grid from ``(P, 14, 3)`` crop keypoints."""
    kp = np.asarray(keypoints, np.float32).reshape(-1, J, 3)
    kp = kp[(kp[..., 2] > 0).any(1)]  # people with no labelled joint add nothing
    if not len(kp):
        channels = (J, 2 * J, 2 * J, NUM_OFFSET_CHANNELS, NUM_OFFSET_CHANNELS)
        return PoseTargets(*(np.zeros((c, height, width), np.float32) for c in channels))
    centres = cell_centres(height, width, stride)  # (h, w, 2)
    # Squared distance from every cell to every person's joint of every type.
    d2 = ((centres[None, None] - kp[:, :, None, None, :2]) ** 2).sum(-1)  # (P, 14, h, w)
    d2 = np.where(kp[:, :, 2, None, None] > 0, d2, np.inf)
    positive = d2.min(0) <= radius * radius  # (14, h, w)
    # Only positive cells regress: a handful per joint, so work on their list.
    a, y, x = np.nonzero(positive)
    owner = d2[:, a, y, x].argmin(0)  # the nearest person, per positive cell
    pose = kp[owner]  # (n, 14, 3): the owner's whole pose
    centre = centres[y, x]  # (n, 2)
    locref = np.zeros((J, height, width, 2), np.float32)
    locref[a, y, x] = (pose[np.arange(len(a)), a, :2] - centre) / locref_scale
    others = pose[np.arange(len(a))[:, None], OTHER_TYPES[a]]  # (n, 13, 3)
    mean = offset_stats.mean.reshape(J, J - 1, 2)[a]
    std = offset_stats.std.reshape(J, J - 1, 2)[a]
    labelled = others[..., 2] > 0  # (n, 13)
    offsets = np.zeros((J, J - 1, height, width, 2), np.float32)
    offsets_mask = np.zeros((J, J - 1, height, width), bool)
    offsets[a, :, y, x] = np.where(labelled[..., None],
                                   (others[..., :2] - centre[:, None] - mean) / std, 0)
    offsets_mask[a, :, y, x] = labelled
    pos = positive.astype(np.float32)
    return PoseTargets(
        scores=pos,
        locref=_channels_first(locref).reshape(2 * J, height, width),
        locref_mask=np.repeat(pos, 2, axis=0),
        offsets=_channels_first(offsets).reshape(NUM_OFFSET_CHANNELS, height, width),
        offsets_mask=np.repeat(offsets_mask.reshape(-1, height, width), 2,
                               axis=0).astype(np.float32))


def _channels_first(a: np.ndarray) -> np.ndarray:
    """``(..., h, w, 2)`` -> ``(..., 2, h, w)`` float32 so that axes flatten as 2*k + axis."""
    return np.ascontiguousarray(np.moveaxis(a, -1, -3), dtype=np.float32)


@dataclass
class DetectorTargets:
    """CenterNet targets of one image (numpy) or a batch (torch) on the stride-4 grid."""

    heatmap: np.ndarray  # (1, h, w) Gaussian peaks, exactly 1 at centres
    offset: np.ndarray  # (2, h, w) centre - cell, in cells, at centre cells
    size: np.ndarray  # (2, h, w) box width, height in cells, at centre cells
    mask: np.ndarray  # (1, h, w) 1 at centre cells


def gaussian_radius(width: np.ndarray, height: np.ndarray, min_overlap: float) -> np.ndarray:
    """CornerNet's Gaussian radius, as CornerNet and CenterNet compute it: the corner shift
    that keeps IoU >= ``min_overlap`` in three cases (both corners inside, both outside, one
    of each), the smallest over the cases. Their roots divide by 2 where the quadratic
    formula divides by 2a; that is kept, since the detectors' settings were tuned with it."""
    w, h, m = np.asarray(width, np.float64), np.asarray(height, np.float64), min_overlap
    roots = []
    for a, b, c in ((1.0, h + w, w * h * (1 - m) / (1 + m)),
                    (4.0, 2 * (h + w), (1 - m) * w * h),
                    (4.0 * m, -2 * m * (h + w), (m - 1) * w * h)):
        roots.append((b + np.sqrt(np.maximum(b * b - 4 * a * c, 0))) / 2)
    return np.min(roots, axis=0)


def detector_targets(boxes: np.ndarray, height: int, width: int, stride: int,
                     min_overlap: float) -> DetectorTargets:
    """CenterNet targets for ``(N, 4)`` boxes x1, y1, x2, y2 in pixel-edge coordinates."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    size = (boxes[:, 2:] - boxes[:, :2]) / stride  # (N, 2) in cells
    keep = (size > 0).all(1)
    boxes, size = boxes[keep], size[keep]
    # Box centre as a pixel-centre coordinate, then on the grid.
    q = pixels_to_grid((boxes[:, :2] + boxes[:, 2:]) / 2 - 0.5, stride)
    cell = np.floor(q + 0.5).astype(np.int64)
    inside = ((cell >= 0) & (cell < [width, height])).all(1)
    q, cell, size = q[inside], cell[inside], size[inside]
    radius = np.maximum(np.floor(gaussian_radius(size[:, 0], size[:, 1], min_overlap)), 0)
    sigma = (2 * radius + 1) / 6
    ys, xs = np.arange(height)[:, None], np.arange(width)[None, :]
    dx = xs[None] - cell[:, 0, None, None]
    dy = ys[None] - cell[:, 1, None, None]
    r = radius[:, None, None]
    peaks = np.exp(-(dx * dx + dy * dy) / (2 * sigma[:, None, None] ** 2))
    peaks = np.where((np.abs(dx) <= r) & (np.abs(dy) <= r), peaks, 0)
    heatmap = peaks.max(0) if len(peaks) else np.zeros((height, width))
    offset = np.zeros((2, height, width), np.float32)
    sizes = np.zeros((2, height, width), np.float32)
    mask = np.zeros((1, height, width), np.float32)
    # One object per centre cell: the smallest box keeps it (a large one has other cells
    # of high response; a small one has only this).
    order = np.argsort(size[:, 0] * size[:, 1], kind="stable")
    flat = cell[order, 1] * width + cell[order, 0]
    winners = order[np.unique(flat, return_index=True)[1]]
    cx, cy = cell[winners, 0], cell[winners, 1]
    offset[:, cy, cx] = (q[winners] - cell[winners]).T
    sizes[:, cy, cx] = size[winners].T
    mask[0, cy, cx] = 1
    return DetectorTargets(heatmap[None].astype(np.float32), offset, sizes, mask)


T = TypeVar("T", PoseTargets, DetectorTargets)


def collate(items: Sequence[T]) -> T:
    """Stack per-example numpy targets into one batch of torch tensors (same dataclass)."""
    cls = type(items[0])
    return cls(**{f.name: torch.from_numpy(np.stack([getattr(t, f.name) for t in items]))
                  for f in dataclasses.fields(cls)})
