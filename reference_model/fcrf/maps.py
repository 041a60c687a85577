"""The three score maps of one box and the layout of their channels (the one place it is defined).

* ``Pj`` (h, w, 14): joint probabilities, channels in schema joint order.
* ``Pn`` (h, w, 364): neighbour offsets. Channels ``2 * (13 * a + r)`` and ``+ 1`` hold
  ``dx`` and ``dy`` of the offset, in map pixels, from a pixel of joint type ``a`` to the
  joint of type ``b`` of the same person, where ``r`` is ``b``'s rank among the 13 types
  other than ``a`` (``r = b`` if ``b < a`` else ``b - 1``). So the 26 channels of type
  ``a`` are contiguous, with ``b`` ascending, and ``dx`` before ``dy``
  (``offset_channel(a, b)`` gives the ``dx`` channel).
* ``Ps`` (h, w, 7): part probabilities, channels in schema part order (0 background).

``Pn`` may be coarser than ``Pj`` and ``Ps``: with ``offset_stride`` s, its cell (u, v)
covers map pixels ``[s*u, s*(u+1)) x [s*v, s*(v+1))`` (a network's stride-s grid under
maps upsampled to the crop), and its offsets are still in map pixels. ``Pr``, optional, is
the location refinement on that same grid: (h', w', 14, 2), the displacement that moves a
pixel of joint type ``a`` onto the joint (DeeperCut's locref), in map pixels.

Coordinates are pixel centres, ``x`` right and ``y`` down, 0-based, in map pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pascal_person_pose.schema import NUM_JOINTS, NUM_PARTS

NUM_OFFSET_CHANNELS = NUM_JOINTS * (NUM_JOINTS - 1) * 2


def _offset_channels() -> np.ndarray:
    a, b = np.meshgrid(np.arange(NUM_JOINTS), np.arange(NUM_JOINTS), indexing="ij")
    rank = np.where(b < a, b, b - 1)
    channel = 2 * ((NUM_JOINTS - 1) * a + rank)
    return np.where(a == b, -1, channel)


# OFFSET_CHANNEL[a, b]: the dx channel of the offset from type a to type b (-1 for a == b).
OFFSET_CHANNEL: np.ndarray = _offset_channels()


def offset_channel(a: int, b: int) -> int:
    """The ``dx`` channel of the predicted offset from joint type ``a`` to type ``b``."""
    if a == b:
        raise ValueError(f"no offset channel from joint type {a} to itself")
    return int(OFFSET_CHANNEL[a, b])


@dataclass(frozen=True)
class ScoreMaps:
    """``Pj``, ``Pn``, ``Ps`` (and optionally ``Pr``) of one (resized) box, shapes checked."""

    Pj: np.ndarray
    Pn: np.ndarray
    Ps: np.ndarray
    offset_stride: int = 1
    Pr: np.ndarray | None = None

    def __post_init__(self) -> None:
        expected = {"Pj": NUM_JOINTS, "Ps": NUM_PARTS}
        for name, channels in {**expected, "Pn": NUM_OFFSET_CHANNELS}.items():
            array = getattr(self, name)
            if array.ndim != 3 or array.shape[2] != channels:
                raise ValueError(f"{name} must have shape (h, w, {channels}), got {array.shape}")
        if self.Ps.shape[:2] != self.shape:
            raise ValueError(f"Ps is {self.Ps.shape[:2]} pixels, Pj is {self.shape}")
        if self.Pn.shape[:2] != self.grid_shape:
            raise ValueError(f"Pn is {self.Pn.shape[:2]} cells, expected {self.grid_shape} "
                             f"for {self.shape} pixels at offset stride {self.offset_stride}")
        if self.Pr is not None and self.Pr.shape != self.grid_shape + (NUM_JOINTS, 2):
            raise ValueError(f"Pr must have shape {self.grid_shape + (NUM_JOINTS, 2)}, "
                             f"got {self.Pr.shape}")

    @property
    def shape(self) -> tuple[int, int]:
        """(h, w) in map pixels."""
        return self.Pj.shape[:2]

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(h', w'): the cells of ``Pn`` (and ``Pr``)."""
        s = self.offset_stride
        return -(-self.shape[0] // s), -(-self.shape[1] // s)

    def cell_of(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of the ``Pn`` cell holding each map point ``xy`` (n, 2)."""
        s = self.offset_stride
        h, w = self.grid_shape
        col = np.clip(np.floor((np.asarray(xy[:, 0]) + 0.5) / s), 0, w - 1).astype(np.int64)
        row = np.clip(np.floor((np.asarray(xy[:, 1]) + 0.5) / s), 0, h - 1).astype(np.int64)
        return row, col

    def refinement_at(self, xy: np.ndarray, types: np.ndarray) -> np.ndarray:
        """``Pr`` of joint types ``types`` (n,) at map points ``xy`` (n, 2), interpolated
        bilinearly between cell centres (zeros without ``Pr``)."""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        if self.Pr is None or not len(xy):
            return np.zeros_like(xy)
        s = self.offset_stride
        h, w = self.grid_shape
        # Cell u's centre is map pixel (u + 0.5) * s - 0.5.
        u = np.clip((xy[:, 0] + 0.5) / s - 0.5, 0, w - 1)
        v = np.clip((xy[:, 1] + 0.5) / s - 0.5, 0, h - 1)
        u0, v0 = np.minimum(u.astype(np.int64), w - 1), np.minimum(v.astype(np.int64), h - 1)
        u1, v1 = np.minimum(u0 + 1, w - 1), np.minimum(v0 + 1, h - 1)
        fu, fv = (u - u0)[:, None], (v - v0)[:, None]
        at = lambda row, col: self.Pr[row, col, types]  # noqa: E731
        return ((1 - fv) * ((1 - fu) * at(v0, u0) + fu * at(v0, u1))
                + fv * ((1 - fu) * at(v1, u0) + fu * at(v1, u1)))
