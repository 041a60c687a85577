"""The 14-joint pose annotations: one ``<id>.mat`` per image, distributed by the authors.

Two 1xN cell arrays, one cell per person: ``joints{i}`` is 14x3 (x, y, v) and ``boxes{i}``
is 1x4 (x1, y1, x2, y2), MATLAB 1-based pixel coordinates. Upstream v is 0 (not labelled),
1 (visible) or 2 (occluded); NaN coordinates mean the joint is not in the image.

In memory (API.md) keypoints are 0-based pixel centres with COCO visibility, so reading
subtracts 1 from every coordinate and swaps v 1 <-> 2 (0 stays 0); a joint with v 0 or NaN
coordinates becomes v 0 with x = y = 0. Writing is the exact inverse, with NaN coordinates
and v 0 for unlabelled joints. The swap and the side permutation below are involutions, so
one table serves both directions.

Rows 2-7 of the file are one side and rows 8-13 the other; which is the person's right is
not recorded upstream. ``side_order="right_first"`` (our default and ``schema``'s order)
reads rows 2-7 as the right side; ``"left_first"`` swaps the sides on read and write.
Errors name persons 1-based, as the cells ``joints{i}`` / ``boxes{i}`` are in MATLAB.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from pascal_person_pose.atomic import atomic_open
from pascal_person_pose.errors import InputError
from pascal_person_pose.schema import FLIP_INDEX, NUM_JOINTS
from pascal_person_pose.sources import load_mat, save_mat

SIDE_ORDERS: tuple[str, ...] = ("right_first", "left_first")

# upstream v (0 not labelled, 1 visible, 2 occluded) <-> COCO v (0, 2 visible, 1 occluded)
_SWAP_VISIBILITY = np.array([0, 2, 1])


@dataclass
class PoseFile:
    """The persons of one pose file, in cell order."""

    keypoints: np.ndarray  # (N, 14, 3) float64: 0-based x, y, COCO visibility
    boxes: np.ndarray  # (N, 4) float32: 0-based x1, y1, x2, y2 (inclusive pixels)


def _side_permutation(side_order: str) -> np.ndarray:
    if side_order == "right_first":
        return np.arange(NUM_JOINTS)
    if side_order == "left_first":
        return FLIP_INDEX
    raise ValueError(f"side_order must be one of {SIDE_ORDERS}, got {side_order!r}")


def _cells(path, value: np.ndarray, field: str) -> list[np.ndarray]:
    """The elements of a 1xN (or Nx1) cell array; any empty array means no persons."""
    if value.size == 0:
        return []
    if value.dtype != object or value.ndim != 2 or 1 not in value.shape:
        kind = "cell" if value.dtype == object else value.dtype
        raise InputError(path, f"expected a 1xN cell array, got a "
                         f"{'x'.join(map(str, value.shape))} {kind} array", field=field)
    return list(value.ravel())


def _numeric(path, cell, shape: tuple[int, ...], person: int, field: str) -> np.ndarray:
    if (not isinstance(cell, np.ndarray) or cell.dtype.kind not in "uif"
            or cell.shape != shape):
        got = ("x".join(map(str, cell.shape)) + f" {cell.dtype}"
               if isinstance(cell, np.ndarray) else type(cell).__name__)
        raise InputError(path, f"expected a {'x'.join(map(str, shape))} numeric array, got {got}",
                         record=f"person {person}", field=f"{field}{{{person}}}")
    return cell.astype(np.float64)


def read_pose_mat(path: str | os.PathLike, side_order: str = "right_first") -> PoseFile:
    """The keypoints and boxes of one pose file, converted to the in-memory convention."""
    order = _side_permutation(side_order)
    mat = load_mat(path, ("joints", "boxes"))
    joint_cells = _cells(path, mat["joints"], "joints")
    box_cells = _cells(path, mat["boxes"], "boxes")
    if len(joint_cells) != len(box_cells):
        raise InputError(path, f"{len(joint_cells)} joints cells but {len(box_cells)} boxes "
                         "cells (one of each per person)", field="boxes")
    n = len(joint_cells)
    raw = np.zeros((n, NUM_JOINTS, 3))
    boxes = np.zeros((n, 4))
    for i, (joints, box) in enumerate(zip(joint_cells, box_cells)):
        raw[i] = _numeric(path, joints, (NUM_JOINTS, 3), i + 1, "joints")
        boxes[i] = _numeric(path, box, (1, 4), i + 1, "boxes")[0]

    x, y, v = raw[..., 0], raw[..., 1], raw[..., 2]
    in_image = ~(np.isnan(x) | np.isnan(y))
    bad = in_image & ~(np.isfinite(x) & np.isfinite(y) & np.isin(v, (0, 1, 2)))
    if bad.any():
        i, k = np.argwhere(bad)[0]
        raise InputError(path, f"row {k + 1} is ({x[i, k]:g}, {y[i, k]:g}, {v[i, k]:g}): "
                         "coordinates must be finite or NaN and v 0, 1 or 2",
                         record=f"person {i + 1}", field=f"joints{{{i + 1}}}")
    bad_boxes = ~np.isfinite(boxes).all(axis=1)
    if bad_boxes.any():
        i = int(np.flatnonzero(bad_boxes)[0])
        raise InputError(path, f"box {boxes[i].tolist()} is not finite",
                         record=f"person {i + 1}", field=f"boxes{{{i + 1}}}")

    labelled = in_image & (v > 0)
    keypoints = np.zeros((n, NUM_JOINTS, 3), np.float64)  # MATLAB doubles, kept exact
    keypoints[..., 0] = np.where(labelled, x - 1, 0)
    keypoints[..., 1] = np.where(labelled, y - 1, 0)
    keypoints[..., 2] = _SWAP_VISIBILITY[np.where(labelled, v, 0).astype(np.intp)]
    return PoseFile(keypoints[:, order], (boxes - 1).astype(np.float32))


def write_pose_mat(path: str | os.PathLike, keypoints: np.ndarray, boxes: np.ndarray,
                   side_order: str = "right_first") -> None:
    """Write keypoints (N, 14, 3; COCO visibility) and boxes (N, 4) in the upstream format."""
    order = _side_permutation(side_order)
    keypoints = np.asarray(keypoints, np.float64)
    boxes = np.asarray(boxes, np.float64)
    n = len(keypoints)
    if keypoints.shape != (n, NUM_JOINTS, 3) or boxes.shape != (n, 4):
        raise ValueError(f"expected keypoints (N, {NUM_JOINTS}, 3) and boxes (N, 4), got "
                         f"{keypoints.shape} and {boxes.shape}")
    xy, v = keypoints[:, order, :2], keypoints[:, order, 2]
    if not np.isin(v, (0, 1, 2)).all():
        raise ValueError("keypoint visibilities must be 0, 1 or 2")
    labelled = v > 0
    if not np.isfinite(xy[labelled]).all() or not np.isfinite(boxes).all():
        raise ValueError("labelled keypoints and boxes must have finite coordinates")
    rows = np.empty((n, NUM_JOINTS, 3))
    rows[..., :2] = np.where(labelled[..., None], xy + 1, np.nan)
    rows[..., 2] = _SWAP_VISIBILITY[v.astype(np.intp)]
    joint_cells = np.empty((1, n), dtype=object)
    box_cells = np.empty((1, n), dtype=object)
    for i in range(n):
        joint_cells[0, i] = rows[i]
        box_cells[0, i] = boxes[i][None] + 1
    with atomic_open(path, "wb") as f:
        save_mat(f, {"joints": joint_cells, "boxes": box_cells})
