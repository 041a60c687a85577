"""Geometric transforms that keep image, part map, instance map, masks, joints and boxes
consistent (numpy; the torch adapter applies them before converting to tensors).

Coordinate conventions (the project's, docs/formats.md, section 1): joints are
0-based pixel centres, so pixel ``i`` covers ``[i - 0.5, i + 0.5)``; boxes are COCO
``[x, y, w, h]`` in pixel-edge coordinates, so pixel ``i`` covers ``[i, i + 1)``. Each
transform maps both exactly:

- flip: joint ``x -> W - 1 - x``, box ``x -> W - x - w``; left and right joints swap
  (``schema.FLIP_INDEX``); part ids stay, since the part classes have no side.
- resize: joint ``x -> (x + 0.5) * sx - 0.5``, box ``x -> x * sx``; label maps and masks
  take the nearest source pixel centre (no new label values), the image is interpolated.
- crop: a window that may reach past the border (the outside is padded: image 0, part
  map 255 ignore, instance map 0, masks false); a joint whose pixel leaves the window
  becomes unlabelled (x = y = v = 0); boxes are clipped to the window.

Unlabelled joints (v = 0) stay exactly 0 through every transform. Persons are never
dropped, so ``keypoints[g]``, ``boxes[g]`` and ``masks[g]`` keep matching the dataset's
annotation ``g`` (a person cropped away has an empty mask, a zero-size box and no joint).

Random transforms take the generator as an argument (``transform(arrays, rng)``) instead of
owning one, so that data-loader workers never replay the same augmentations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import cv2
import numpy as np

from pascal_person_pose import schema

if TYPE_CHECKING:
    from pascal_person_pose.dataset import Sample


@dataclass
class SampleArrays:
    """Everything a transform moves, as plain arrays of one image."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    part_map: np.ndarray  # (H, W) uint8 part ids, 255 ignore
    instance_map: np.ndarray  # (H, W) uint8 person instance numbers, 0 none
    masks: np.ndarray  # (G, H, W) bool
    keypoints: np.ndarray  # (G, 14, 3) float64, COCO visibility in column 2
    boxes: np.ndarray  # (G, 4) float32 COCO [x, y, w, h]

    @classmethod
    def from_sample(cls, sample: Sample) -> SampleArrays:
        """Load all pixel data of a dataset sample."""
        return cls(image=sample.image, part_map=sample.part_map,
                   instance_map=sample.instance_map, masks=sample.masks,
                   keypoints=sample.keypoints, boxes=sample.boxes)

    @property
    def width(self) -> int:
        return self.image.shape[1]

    @property
    def height(self) -> int:
        return self.image.shape[0]


Transform = Callable[[SampleArrays, np.random.Generator], SampleArrays]


def _map_labelled(keypoints: np.ndarray, fx: Callable, fy: Callable) -> np.ndarray:
    """Apply coordinate maps to labelled joints only; unlabelled joints stay (0, 0, 0)."""
    out = keypoints.copy()
    labelled = out[..., 2] > 0
    out[..., 0] = np.where(labelled, fx(out[..., 0]), 0)
    out[..., 1] = np.where(labelled, fy(out[..., 1]), 0)
    return out


def hflip_keypoints(keypoints: np.ndarray, width: int) -> np.ndarray:
    """Keypoints ``(..., 14, 3)`` of an image ``width`` pixels wide, mirrored left-right:
    x -> W - 1 - x, and the person's left joints become its right ones."""
    mirrored = _map_labelled(keypoints, lambda x: width - 1 - x, lambda y: y)
    return np.ascontiguousarray(mirrored[..., schema.FLIP_INDEX, :])


def hflip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """COCO boxes ``(N, 4)`` ``[x, y, w, h]`` mirrored left-right: x -> W - x - w."""
    out = np.array(boxes, copy=True)
    out[:, 0] = width - boxes[:, 0] - boxes[:, 2]
    return out


def hflip_image(image: np.ndarray) -> np.ndarray:
    """An image or label map ``(H, W[, C])`` mirrored left-right (a contiguous copy)."""
    if image.dtype == np.uint8:
        return cv2.flip(image, 1)  # numpy's strided copy of an RGB image is ~50x slower
    return np.ascontiguousarray(image[:, ::-1])


def hflip(a: SampleArrays) -> SampleArrays:
    """Mirror left-right; the person's left joints become its right ones."""
    return SampleArrays(
        image=hflip_image(a.image),
        part_map=hflip_image(a.part_map),
        instance_map=hflip_image(a.instance_map),
        masks=np.ascontiguousarray(a.masks[:, :, ::-1]),
        keypoints=hflip_keypoints(a.keypoints, a.width),
        boxes=hflip_boxes(a.boxes, a.width))


def _nearest_source(size: int, new_size: int) -> np.ndarray:
    """For each output pixel, the input pixel whose centre is nearest (pixel-centre aligned)."""
    return np.minimum(((np.arange(new_size) + 0.5) * size / new_size).astype(np.int64), size - 1)


def _resample(labels: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Pick ``rows`` x ``cols`` of the last two axes; two ``np.take`` calls are several
    times faster than one broadcast fancy index and work for maps and mask stacks alike."""
    return np.take(np.take(labels, rows, axis=-2), cols, axis=-1)


def resize(a: SampleArrays, width: int, height: int) -> SampleArrays:
    """Resize to ``width`` x ``height`` pixels (aspect ratio as given)."""
    if width < 1 or height < 1:
        raise ValueError(f"resize to {width}x{height}: both sides must be at least 1 pixel")
    sx, sy = width / a.width, height / a.height
    rows, cols = _nearest_source(a.height, height), _nearest_source(a.width, width)
    shrinking = width * height < a.width * a.height
    image = cv2.resize(a.image, (width, height),
                       interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    boxes = a.boxes * np.array([sx, sy, sx, sy], dtype=np.float32)
    return SampleArrays(
        image=image,
        part_map=_resample(a.part_map, rows, cols),
        instance_map=_resample(a.instance_map, rows, cols),
        masks=_resample(a.masks, rows, cols),
        keypoints=_map_labelled(a.keypoints, lambda x: (x + 0.5) * sx - 0.5,
                                lambda y: (y + 0.5) * sy - 0.5),
        boxes=boxes)


def crop(a: SampleArrays, x: int, y: int, width: int, height: int) -> SampleArrays:
    """Cut the window ``[x, x + width) x [y, y + height)``, padding where it leaves the image."""
    if width < 1 or height < 1:
        raise ValueError(f"crop of {width}x{height}: both sides must be at least 1 pixel")
    # The overlap of window and image, in image and in window coordinates.
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + width, a.width), min(y + height, a.height)
    src = (slice(y0, max(y1, y0)), slice(x0, max(x1, x0)))
    dst = (slice(y0 - y, max(y1, y0) - y), slice(x0 - x, max(x1, x0) - x))

    def window(array: np.ndarray, fill, lead: tuple[int, ...] = (),
               tail: tuple[int, ...] = ()) -> np.ndarray:
        out = np.full(lead + (height, width) + tail, fill, dtype=array.dtype)
        skip = (slice(None),) * len(lead)
        out[skip + dst] = array[skip + src]
        return out

    keypoints = _map_labelled(a.keypoints, lambda u: u - x, lambda v: v - y)
    inside = ((keypoints[..., 0] >= -0.5) & (keypoints[..., 0] < width - 0.5)
              & (keypoints[..., 1] >= -0.5) & (keypoints[..., 1] < height - 0.5))
    keypoints[~inside] = 0
    corners = np.concatenate([a.boxes[:, :2], a.boxes[:, :2] + a.boxes[:, 2:]], axis=1)
    corners = np.clip(corners - np.array([x, y, x, y], dtype=np.float32), 0,
                      np.array([width, height, width, height], dtype=np.float32))
    boxes = np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1)
    return SampleArrays(
        image=window(a.image, 0, tail=(3,)),
        part_map=window(a.part_map, schema.IGNORE_LABEL),
        instance_map=window(a.instance_map, 0),
        masks=window(a.masks, False, lead=(len(a.masks),)),
        keypoints=keypoints,
        boxes=boxes.astype(np.float32))


class Compose:
    """Apply transforms in order, each drawing from the same generator."""

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = list(transforms)

    def __call__(self, a: SampleArrays, rng: np.random.Generator) -> SampleArrays:
        for transform in self.transforms:
            a = transform(a, rng)
        return a

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


@dataclass(frozen=True)
class RandomFlip:
    """Flip left-right with probability ``p``."""

    p: float = 0.5

    def __call__(self, a: SampleArrays, rng: np.random.Generator) -> SampleArrays:
        return hflip(a) if rng.random() < self.p else a


@dataclass(frozen=True)
class RandomScale:
    """Resize by a factor drawn uniformly from ``[low, high]`` (scale augmentation)."""

    low: float = 0.7
    high: float = 1.3

    def __call__(self, a: SampleArrays, rng: np.random.Generator) -> SampleArrays:
        factor = rng.uniform(self.low, self.high)
        return resize(a, max(1, round(a.width * factor)), max(1, round(a.height * factor)))


@dataclass(frozen=True)
class Resize:
    """Resize to a fixed size, e.g. to batch images of different sizes."""

    width: int
    height: int

    def __call__(self, a: SampleArrays, rng: np.random.Generator) -> SampleArrays:
        return resize(a, self.width, self.height)


@dataclass(frozen=True)
class RandomCrop:
    """A ``width`` x ``height`` window at a uniform position; a smaller image is padded
    and placed at a uniform position inside the window."""

    width: int
    height: int

    def __call__(self, a: SampleArrays, rng: np.random.Generator) -> SampleArrays:
        slack_x, slack_y = a.width - self.width, a.height - self.height
        x = int(rng.integers(min(0, slack_x), max(0, slack_x) + 1))
        y = int(rng.integers(min(0, slack_y), max(0, slack_y) + 1))
        return crop(a, x, y, self.width, self.height)

