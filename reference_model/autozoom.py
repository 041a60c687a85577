"""Auto-zoom (paper Sec. 3, after HAZN): every person box becomes a fixed-size crop, and
what the networks say about a crop goes back to the image.

A crop is a square window centred on the box, of side ``longer box side * (1 + 2*margin)``
(the margin is context), resized to ``crop_size`` pixels: small people are enlarged and
large ones shrunk, so the networks see people at one scale. Square windows make every crop
the same size, so boxes batch without padding; a window may reach past the image border,
which is filled with the ImageNet mean colour (zero after normalisation) and with the
ignore label in label crops. The "full image instead of boxes" ablation does not zoom:
``reference_model.predict`` runs it on the whole image at the image's own resolution.

Coordinates (as ``pascal_person_pose.transforms``): joints are 0-based pixel centres,
boxes are pixel-edge coordinates (pixel ``i`` spans ``[i, i + 1)``). A :class:`BoxTransform`
is the map ``edge' = (edge - x0) * scale``, which sends a pixel centre ``x`` to
``(x + 0.5 - x0) * scale - 0.5``; it maps points, boxes and keypoints both ways exactly, and
``at_stride(8)`` describes a network's stride-8 grid over the same window, so score maps
are pasted straight from the grid (bilinear) without upsampling them first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from pascal_person_pose import schema

from .backbones import MEAN_RGB


def _pixel_matrix(ax: float, bx: float, ay: float, by: float) -> np.ndarray:
    """cv2 affine matrix (pixel centres) of the edge map ``e' = a*e + b`` per axis."""
    return np.array([[ax, 0.0, 0.5 * ax + bx - 0.5],
                     [0.0, ay, 0.5 * ay + by - 0.5]], dtype=np.float64)


@dataclass(frozen=True)
class BoxTransform:
    """The similarity map between image pixels and a ``width`` x ``height`` crop."""

    x0: float  # image edge coordinate of the crop's left edge
    y0: float
    scale: float  # crop pixels per image pixel
    width: int
    height: int

    @classmethod
    def around_box(cls, box: Sequence[float] | np.ndarray, size: int,
                   margin: float) -> BoxTransform:
        """The square ``size`` x ``size`` crop centred on ``box`` (x1, y1, x2, y2 edges)."""
        x1, y1, x2, y2 = (float(v) for v in box)
        side = max(x2 - x1, y2 - y1, 1.0) * (1 + 2 * margin)
        return cls((x1 + x2 - side) / 2, (y1 + y2 - side) / 2, size / side, size, size)

    @classmethod
    def fit_image(cls, width: int, height: int, longer_side: int,
                  multiple: int = 1) -> BoxTransform:
        """The whole image, resized so its longer side is ``longer_side`` and padded right and
        below to a multiple of ``multiple`` pixels (a detector's input)."""
        scale = longer_side / max(width, height)

        def padded(n: int) -> int:
            return int(math.ceil(max(1, round(n * scale)) / multiple) * multiple)

        return cls(0.0, 0.0, scale, padded(width), padded(height))

    def at_stride(self, stride: int) -> BoxTransform:
        """The same window seen by a stride-``stride`` grid (cell = ``stride`` crop pixels)."""
        return BoxTransform(self.x0, self.y0, self.scale / stride,
                            -(-self.width // stride), -(-self.height // stride))

    @property
    def window(self) -> np.ndarray:
        """The crop's extent in image edge coordinates: x1, y1, x2, y2."""
        return np.array([self.x0, self.y0, self.x0 + self.width / self.scale,
                         self.y0 + self.height / self.scale])

    @property
    def matrix(self) -> np.ndarray:
        """``(2, 3)`` affine map of pixel centres, image -> crop (cv2 convention)."""
        s = self.scale
        return _pixel_matrix(s, -self.x0 * s, s, -self.y0 * s)

    def points_to_crop(self, xy: np.ndarray) -> np.ndarray:
        """Pixel-centre points ``(..., 2)`` image -> crop."""
        origin = np.array([self.x0, self.y0])
        return ((np.asarray(xy, np.float64) + 0.5 - origin) * self.scale - 0.5).astype(np.float32)

    def points_to_image(self, uv: np.ndarray) -> np.ndarray:
        """Pixel-centre points ``(..., 2)`` crop -> image."""
        origin = np.array([self.x0, self.y0])
        return ((np.asarray(uv, np.float64) + 0.5) / self.scale + origin - 0.5).astype(np.float32)

    def boxes_to_crop(self, boxes: np.ndarray) -> np.ndarray:
        """Edge-coordinate boxes ``(..., 4)`` x1, y1, x2, y2, image -> crop."""
        origin = np.array([self.x0, self.y0, self.x0, self.y0])
        return ((np.asarray(boxes, np.float64) - origin) * self.scale).astype(np.float32)

    def boxes_to_image(self, boxes: np.ndarray) -> np.ndarray:
        """Edge-coordinate boxes ``(..., 4)``, crop -> image."""
        origin = np.array([self.x0, self.y0, self.x0, self.y0])
        return (np.asarray(boxes, np.float64) / self.scale + origin).astype(np.float32)

    def keypoints_to_crop(self, keypoints: np.ndarray) -> np.ndarray:
        """``(..., 14, 3)`` keypoints image -> crop; a joint with third column 0 stays (0, 0, 0)."""
        return self._keypoints(keypoints, self.points_to_crop)

    def keypoints_to_image(self, keypoints: np.ndarray) -> np.ndarray:
        """``(..., 14, 3)`` keypoints crop -> image; a joint with third column 0 stays (0, 0, 0)."""
        return self._keypoints(keypoints, self.points_to_image)

    @staticmethod
    def _keypoints(keypoints: np.ndarray, points) -> np.ndarray:
        out = np.array(keypoints, dtype=np.float32)
        present = out[..., 2] > 0
        out[..., :2] = np.where(present[..., None], points(out[..., :2]), 0)
        return out

    def covered(self, height: int, width: int) -> tuple[slice, slice]:
        """The image pixels whose centres lie inside the window (rows, columns)."""
        x1, y1, x2, y2 = self.window

        def pixels(start: float, stop: float, n: int) -> slice:
            # Pixel i is inside when start <= i + 0.5 < stop.
            first = min(max(math.ceil(start - 0.5), 0), n)
            return slice(first, min(max(math.ceil(stop - 0.5), first), n))

        return pixels(y1, y2, height), pixels(x1, x2, width)


def crop_image(image: np.ndarray, transform: BoxTransform,
               fill: tuple[int, int, int] = MEAN_RGB) -> np.ndarray:
    """The ``(height, width, 3)`` crop of an RGB image (bilinear; area-averaged when shrinking,
    so that shrunk people do not alias)."""
    height, width = image.shape[:2]
    t = transform
    if t.scale < 1:
        small_w, small_h = max(1, round(width * t.scale)), max(1, round(height * t.scale))
        image = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
        sx, sy = small_w / width, small_h / height  # edge scale image -> small image
        matrix = _pixel_matrix(t.scale / sx, -t.x0 * t.scale, t.scale / sy, -t.y0 * t.scale)
    else:
        matrix = t.matrix
    return cv2.warpAffine(image, matrix, (t.width, t.height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(int(v) for v in fill))


def crop_labels(labels: np.ndarray, transform: BoxTransform,
                fill: int = schema.IGNORE_LABEL) -> np.ndarray:
    """The crop of a label map (nearest pixel centre; outside the image: ``fill``)."""
    return cv2.warpAffine(labels, transform.matrix, (transform.width, transform.height),
                          flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=int(fill))


def _bilinear_weights(source: np.ndarray, size: int) -> np.ndarray:
    """``(len(source), size)`` matrix sampling a length-``size`` signal at the pixel-centre
    coordinates ``source`` (linear interpolation, edge values beyond the ends)."""
    source = np.clip(source, 0, size - 1)
    left = np.minimum(np.floor(source).astype(np.int64), size - 1)
    right = np.minimum(left + 1, size - 1)
    frac = source - left
    weights = np.zeros((len(source), size), np.float32)
    rows = np.arange(len(source))
    np.add.at(weights, (rows, left), 1 - frac)
    np.add.at(weights, (rows, right), frac)
    return weights


def paste_maps(maps: np.ndarray, transform: BoxTransform, height: int,
               width: int) -> tuple[np.ndarray, tuple[slice, slice]]:
    """Resample crop maps ``(C, h, w)`` (h, w = the transform's size) into image pixels.

    The map is axis-aligned, so bilinear resampling is separable: two small interpolation
    matrices, exact for any channel count. Returns the maps over the covered image region
    ``(C, rows, cols)`` and that region, so that callers accumulate into full-size arrays
    without allocating one per box.
    """
    maps = np.asarray(maps, np.float32)
    if maps.shape[1:] != (transform.height, transform.width):
        raise ValueError(f"maps of size {maps.shape[1:]} do not match the transform's "
                         f"{(transform.height, transform.width)}")
    rows, cols = transform.covered(height, width)
    ys = np.arange(rows.start, rows.stop, dtype=np.float64)
    xs = np.arange(cols.start, cols.stop, dtype=np.float64)
    wy = _bilinear_weights((ys + 0.5 - transform.y0) * transform.scale - 0.5, transform.height)
    wx = _bilinear_weights((xs + 0.5 - transform.x0) * transform.scale - 0.5, transform.width)
    return wy @ maps @ wx.T, (rows, cols)


def merge_part_scores(scores: Sequence[np.ndarray], transforms: Sequence[BoxTransform],
                      height: int, width: int,
                      weights: Sequence[float] | None = None) -> np.ndarray:
    """Image-level part probabilities ``(7, H, W)`` from per-box probabilities.

    Each box's maps are pasted over its whole window (the context too: a detection box
    may cut off a limb the crop still saw) and averaged where windows overlap (HAZN's
    score averaging), weighted by ``weights`` (the boxes' detection scores: where a doubtful
    box overlaps a sure one, the sure one decides); a pixel no window covers is background
    with probability 1.
    """
    weights = np.ones(len(scores)) if weights is None else np.asarray(weights, np.float64)
    total = np.zeros((schema.NUM_PARTS, height, width), np.float32)
    count = np.zeros((height, width), np.float32)
    for maps, transform, weight in zip(scores, transforms, weights, strict=True):
        pasted, (rows, cols) = paste_maps(maps, transform, height, width)
        total[:, rows, cols] += weight * pasted
        count[rows, cols] += weight
    merged = total / np.where(count > 0, count, 1)
    merged[0][count == 0] = 1.0
    return merged
