"""Part segmentation IoU over a split, overall and by person size (paper Sec. 4.3; docs/metrics.md).

Both metrics accumulate confusion matrices over every pixel of the split (rows: GT class,
columns: predicted class) and only then take IoU_c = TP / (TP + FP + FN), so a class is
weighed by its pixels across the split, as DeepLab and HAZN evaluate, not by a mean of
per-image IoUs that small or absent parts would make noisy. GT label 255 is ignored;
predictions must be class ids 0-6 everywhere. A class with TP + FP + FN = 0 has no IoU: it
is null and left out of the mean. mIOU averages the 7 classes, background included.

By person size (Table 4, "following HAZN", whose thresholds are not public): a person's size
is its pixel count in the instance map over the image area, bucketed by
``schema.size_bucket`` with explicit thresholds (default ``schema.SIZE_THRESHOLDS``,
XS < 0.5% <= S < 2% <= M < 8% <= L). A person's region is the tight inclusive pixel box of its
instance mask; a bucket's confusion matrix covers the union of its persons' regions in each
image, where pixels of persons from other buckets are ignored (background pixels inside
the region count). A bucket without persons has a null mIOU and count 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from pascal_person_pose.metrics.summaries import mean_of_defined, nullable
from pascal_person_pose.schema import (IGNORE_LABEL, NUM_PARTS, PART_NAMES, SIZE_BUCKETS,
                                       SIZE_THRESHOLDS, size_bucket)

LEVELS = 256  # label maps are 8-bit images: ids 0-6 and the ignore label fit in a byte


def _labels(values: np.ndarray, what: str) -> np.ndarray:
    """The map as uint8, refusing what cannot be an 8-bit label map."""
    values = np.asarray(values)
    if values.dtype == np.uint8:
        return values
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{what} must hold integer label ids, got {values.dtype}")
    if values.size and (values.min() < 0 or values.max() >= LEVELS):
        raise ValueError(f"{what} holds values outside 0-{LEVELS - 1}")
    return values.astype(np.uint8)


def _pair_counts(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Pixel counts of every (GT value, predicted value) pair: one bincount pass."""
    pairs = (gt.astype(np.uint16) << 8) | pred
    return np.bincount(pairs.ravel(), minlength=LEVELS * LEVELS).reshape(LEVELS, LEVELS)


def _confusion(counts: np.ndarray, num_classes: int, ignore: int) -> np.ndarray:
    """The confusion matrix within pair counts, after checking that every value is legal."""
    if counts[:, num_classes:].any():
        raise ValueError(f"prediction holds values outside 0-{num_classes - 1}")
    illegal = np.ones(LEVELS, dtype=bool)
    illegal[:num_classes] = False
    illegal[ignore] = False
    if counts[illegal].any():
        raise ValueError(f"GT map holds values outside 0-{num_classes - 1} and {ignore}")
    cm = counts[:num_classes, :num_classes].astype(np.int64)
    if ignore < num_classes:  # ignoring a class id: its GT pixels are left out
        cm[ignore] = 0
    return cm


def _check_params(num_classes: int, ignore: int) -> None:
    if not (0 < num_classes <= LEVELS and 0 <= ignore < LEVELS):
        raise ValueError(f"num_classes and ignore must fit 8-bit label maps, got {num_classes} "
                         f"and {ignore}")


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int = NUM_PARTS,
                     ignore: int = IGNORE_LABEL) -> np.ndarray:
    """Pixel counts ``(num_classes, num_classes)`` int64, rows GT class, columns predicted.

    Maps are 8-bit label maps of equal shape; GT pixels equal to ``ignore`` are left out.
    """
    _check_params(num_classes, ignore)
    gt, pred = _labels(gt, "GT map"), _labels(pred, "prediction")
    if gt.shape != pred.shape:
        raise ValueError(f"GT map {gt.shape} and prediction {pred.shape} differ in shape")
    return _confusion(_pair_counts(gt, pred), num_classes, ignore)


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU (a fraction) from a confusion matrix; NaN where TP + FP + FN = 0."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    return np.divide(tp, union, out=np.full_like(tp, np.nan), where=union > 0)


def _summary(cm: np.ndarray) -> tuple[dict[str, float | None], float]:
    iou = 100 * iou_from_confusion(cm)
    return {name: nullable(v) for name, v in zip(PART_NAMES, iou)}, mean_of_defined(iou)


class PartIoU:
    """Part IoU over a split: ``update`` per image, then ``result`` (percent)."""

    def __init__(self, ignore: int = IGNORE_LABEL):
        _check_params(NUM_PARTS, ignore)
        self.ignore = ignore
        self.confusion = np.zeros((NUM_PARTS, NUM_PARTS), dtype=np.int64)

    def update(self, gt_map: np.ndarray, pred_map: np.ndarray) -> None:
        self.confusion += confusion_matrix(gt_map, pred_map, NUM_PARTS, self.ignore)

    def result(self) -> dict:
        """``{"per_class": {part: IoU}, "miou", "params"}``; undefined values are None."""
        per_class, miou = _summary(self.confusion)
        return {"per_class": per_class, "miou": nullable(miou),
                "params": {"ignore": self.ignore}}


class PartIoUBySize:
    """Part mIOU per person-size bucket: ``update`` per image, then ``result`` (percent)."""

    def __init__(self, thresholds: Sequence[float] = SIZE_THRESHOLDS,
                 ignore: int = IGNORE_LABEL):
        self.thresholds = tuple(float(t) for t in thresholds)
        if len(self.thresholds) != len(SIZE_BUCKETS) - 1 or np.any(
                np.diff(self.thresholds) <= 0):
            raise ValueError(f"thresholds must be {len(SIZE_BUCKETS) - 1} increasing fractions "
                             f"for the buckets {', '.join(SIZE_BUCKETS)}, got {thresholds}")
        _check_params(NUM_PARTS, ignore)
        self.ignore = ignore
        self.confusion = np.zeros((len(SIZE_BUCKETS), NUM_PARTS, NUM_PARTS), dtype=np.int64)
        self.counts = np.zeros(len(SIZE_BUCKETS), dtype=np.int64)

    def update(self, gt_map: np.ndarray, pred_map: np.ndarray, instance_map: np.ndarray) -> None:
        """Add one image: its part maps and its instance map (0 = no person, 1..N persons).

        Only the pixels inside some bucket's regions are read (and checked), so a
        person-free image or small persons cost little.
        """
        gt, pred = _labels(gt_map, "GT map"), _labels(pred_map, "prediction")
        instances = np.asarray(instance_map)
        if not gt.shape == pred.shape == instances.shape:
            raise ValueError(f"GT map {gt.shape}, prediction {pred.shape} and instance map "
                             f"{instances.shape} differ in shape")
        if not np.issubdtype(instances.dtype, np.integer) or (
                instances.size and instances.min() < 0):
            raise ValueError("instance map must hold non-negative integer ids")

        pixels = np.bincount(instances.ravel(), minlength=1)
        persons = np.flatnonzero(pixels[1:]) + 1
        bucket_of = np.full(len(pixels), -1, dtype=np.intp)  # id 0 (no person) stays -1
        bucket_of[persons] = size_bucket(pixels[persons] / instances.size, self.thresholds)

        confusion = np.zeros_like(self.confusion)
        boxes = ndimage.find_objects(instances)
        for bucket in np.unique(bucket_of[persons]):
            members = [boxes[p - 1] for p in persons[bucket_of[persons] == bucket]]
            top, left = (min(box[axis].start for box in members) for axis in (0, 1))
            bottom, right = (max(box[axis].stop for box in members) for axis in (0, 1))
            window = (slice(top, bottom), slice(left, right))
            region = np.zeros((bottom - top, right - left), dtype=bool)
            for rows, cols in members:
                region[rows.start - top:rows.stop - top, cols.start - left:cols.stop - left] = True
            readable = (bucket_of == bucket) | (bucket_of < 0)  # per id: not another bucket's
            scored = region & readable[instances[window]]
            counts = _pair_counts(gt[window][scored], pred[window][scored])
            confusion[bucket] = _confusion(counts, NUM_PARTS, self.ignore)
        self.confusion += confusion
        self.counts += np.bincount(bucket_of[persons], minlength=len(SIZE_BUCKETS))

    def result(self) -> dict:
        """``{"XS", "S", "M", "L": mIOU or None, "counts", "thresholds", "params"}``."""
        out: dict = {}
        for name, cm, count in zip(SIZE_BUCKETS, self.confusion, self.counts):
            out[name] = nullable(_summary(cm)[1]) if count else None
        out["counts"] = {name: int(c) for name, c in zip(SIZE_BUCKETS, self.counts)}
        out["thresholds"] = list(self.thresholds)
        out["params"] = {"thresholds": list(self.thresholds), "ignore": self.ignore}
        return out
