"""PASCAL-Person-Part label PNGs: part ids 0-6 per pixel, 255 = ignore.

Copies of the release circulate in three encodings, told apart by PIL mode and values:

- ``palette``: mode 'P', the index is the label (VOC palette colours);
- ``gray``: mode 'L', the VOC colours rendered to gray (ITU-R 601 luma), the values of
  ``schema.GRAY_TO_ID`` (38 head, 75 torso, 113 upper arm, 14 lower arm, 52 upper leg,
  89 lower leg);
- ``raw``: mode 'L', the ids 0-6 themselves.

255 is ignore in all three. The two 'L' encodings share only 0 (and 255), so an image that
holds nothing else reads the same under either; it is reported as ``raw``. Any other mode
(RGB, 16-bit, ...) or value is refused: guessing would silently corrupt the ground truth.
"""

from __future__ import annotations

import os
from typing import Literal, get_args

import numpy as np
from PIL import Image

from pascal_person_pose.atomic import atomic_open
from pascal_person_pose.errors import InputError
from pascal_person_pose.schema import GRAY_TO_ID, IGNORE_LABEL, NUM_PARTS, voc_palette
from pascal_person_pose.sources.voc import open_image

Encoding = Literal["palette", "gray", "raw"]
ENCODINGS: tuple[str, ...] = get_args(Encoding)

_IDS = frozenset(range(NUM_PARTS)) | {IGNORE_LABEL}
_GRAYS = frozenset(GRAY_TO_ID) | {IGNORE_LABEL}


def _lut(pairs: dict[int, int]) -> np.ndarray:
    lut = np.zeros(256, np.uint8)
    lut[list(pairs)] = list(pairs.values())
    return lut


_GRAY_TO_LABEL = _lut({**GRAY_TO_ID, IGNORE_LABEL: IGNORE_LABEL})
_LABEL_TO_GRAY = _lut({**{i: g for g, i in GRAY_TO_ID.items()}, IGNORE_LABEL: IGNORE_LABEL})


def _describe(values) -> str:
    values = sorted(int(v) for v in values)
    shown = ", ".join(map(str, values[:10]))
    return f"[{shown}{', ...' if len(values) > 10 else ''}]"


def detect_encoding(values: np.ndarray, mode: str) -> Encoding:
    """The encoding of a label image from its PIL mode and the values it holds (the
    distinct values, or the whole image).

    Raises ValueError (naming the offending values) for anything that is none of the three.
    """
    present = set(np.unique(np.asarray(values)).tolist())
    if mode == "P":
        bad = present - _IDS
        if bad:
            raise ValueError(f"palette indices {_describe(bad)} are not part ids "
                             f"(expected 0-{NUM_PARTS - 1} or {IGNORE_LABEL})")
        return "palette"
    if mode != "L":
        raise ValueError(f"unsupported image mode {mode!r} (expected a palette 'P' or "
                         f"8-bit grayscale 'L' label image)")
    if present <= _IDS:
        return "raw"
    if present <= _GRAYS:
        return "gray"
    unknown = present - _IDS - _GRAYS
    if unknown:
        raise ValueError(f"grayscale values {_describe(unknown)} are neither part ids "
                         f"0-{NUM_PARTS - 1} nor grayscale VOC colours {_describe(_GRAYS)}")
    raise ValueError(f"grayscale values mix part ids {_describe(present - _GRAYS)} with "
                     f"grayscale VOC colours {_describe(present - _IDS)}")


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """The uint8 (H, W) part ids of a label PNG in any of the three encodings."""
    image = open_image(path)
    labels = np.asarray(image)
    present = (np.flatnonzero(np.bincount(labels.ravel(), minlength=256))
               if image.mode in ("P", "L") else np.empty(0, np.int64))
    try:
        encoding = detect_encoding(present, image.mode)
    except ValueError as e:
        raise InputError(path, str(e)) from None
    return _GRAY_TO_LABEL[labels] if encoding == "gray" else labels.copy()


def write_label_png(path: str | os.PathLike, labels: np.ndarray,
                    encoding: Encoding = "palette") -> None:
    """Write part ids (uint8 HxW, 0-6 and 255) as a label PNG in the given encoding."""
    if labels.dtype != np.uint8 or labels.ndim != 2:
        raise ValueError(f"expected a uint8 (H, W) label map, got {labels.shape} {labels.dtype}")
    bad = set(np.flatnonzero(np.bincount(labels.ravel(), minlength=256))) - _IDS
    if bad:
        raise ValueError(f"label values {_describe(bad)} are not part ids")
    if encoding == "palette":
        image = Image.fromarray(labels, "P")
        image.putpalette(voc_palette())
    elif encoding == "gray":
        image = Image.fromarray(_LABEL_TO_GRAY[labels], "L")
    elif encoding == "raw":
        image = Image.fromarray(labels, "L")
    else:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    with atomic_open(path, "wb") as f:
        image.save(f, format="PNG")
