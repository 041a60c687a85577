"""The three score maps of one box and the layout of their channels (the one place it is defined).

* ``Pj`` (h, w, 14): joint probabilities, channels in schema joint order.
* ``Pn`` (h, w, 364): neighbour offsets. Channels ``2 * (13 * a + r)`` and ``+ 1`` hold
  ``dx`` and ``dy`` of the offset, in map pixels, from a pixel of joint type ``a`` to the
  joint of type ``b`` of the same person, where ``r`` is ``b``'s rank among the 13 types
  other than ``a`` (``r = b`` if ``b < a`` else ``b - 1``). So the 26 channels of type
  ``a`` are contiguous, with ``b`` ascending, and ``dx`` before ``dy``
  (``offset_channel(a, b)`` gives the ``dx`` channel).
* ``Ps`` (h, w, 7): part probabilities, channels in schema part order (0 background).

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
    """``Pj``, ``Pn`` and ``Ps`` of one (resized) box, checked for consistent shapes."""

    Pj: np.ndarray
    Pn: np.ndarray
    Ps: np.ndarray

    def __post_init__(self) -> None:
        expected = {"Pj": NUM_JOINTS, "Pn": NUM_OFFSET_CHANNELS, "Ps": NUM_PARTS}
        shape = None
        for name, channels in expected.items():
            array = getattr(self, name)
            if array.ndim != 3 or array.shape[2] != channels:
                raise ValueError(f"{name} must have shape (h, w, {channels}), got {array.shape}")
            if shape is not None and array.shape[:2] != shape:
                raise ValueError(f"{name} is {array.shape[:2]} pixels, Pj is {shape}")
            shape = array.shape[:2]

    @property
    def shape(self) -> tuple[int, int]:
        """(h, w) in map pixels."""
        return self.Pj.shape[:2]
