"""Part segmentation IoU over a split, overall and by person size (paper Sec. 4.3, Table 4).

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

:class:`PartCounter` counts one image in one pass: one OpenCV histogram over (GT value,
predicted value, the set of size buckets whose regions hold the pixel) - 256 x 8 x 16 bins
with the table's 4 buckets, no 65,536-bin pair arrays - yields the overall and every
bucket's confusion matrix, and the value checks, together. The work is done by OpenCV calls that release the GIL, so
threads scoring different images run in parallel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np

from pascal_person_pose.metrics.summaries import mean_of_defined, nullable
from pascal_person_pose.schema import (IGNORE_LABEL, NUM_PARTS, PART_NAMES, SIZE_BUCKETS,
                                       SIZE_THRESHOLDS, size_bucket)

LEVELS = 256  # label maps are 8-bit images: ids 0-6 and the ignore label fit in a byte
NUM_BUCKETS = len(SIZE_BUCKETS)
MAX_BUCKETS = 8  # a pixel's set of buckets is a bit mask in one byte
_PRED_CODES = NUM_PARTS + 1  # classes, then "not a legal prediction"
_EXACT_COUNTS = 1 << 24  # OpenCV histograms count in float32: exact below 2**24 pixels


class PartCounts(NamedTuple):
    """The pixel counts of one image (or a sum of images)."""

    confusion: np.ndarray  # (7, 7) int64, rows GT class, columns predicted class
    by_size: np.ndarray  # (B, 7, 7) int64, the confusion within each bucket's regions
    persons: np.ndarray  # (B,) int64, persons per bucket (B = 4 with the table's buckets)


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


def _instance_ids(instances: np.ndarray) -> np.ndarray:
    """The instance map as uint8 ids (renumbered, keeping 0, when ids exceed 255)."""
    instances = np.asarray(instances)
    if instances.dtype == np.uint8:
        return instances
    if not np.issubdtype(instances.dtype, np.integer) or (
            instances.size and instances.min() < 0):
        raise ValueError("instance map must hold non-negative integer ids")
    if not instances.size or instances.max() < LEVELS:
        return instances.astype(np.uint8)
    ids, inverse = np.unique(instances, return_inverse=True)
    if len(ids) > LEVELS:
        raise ValueError(f"instance map holds more than {LEVELS - 1} persons")
    return (inverse.reshape(instances.shape) + (ids[0] != 0)).astype(np.uint8)


def _histogram(codes: np.ndarray, bins: int) -> np.ndarray:
    """Counts of the values 0..bins-1 of a uint8/uint16 array, int64."""
    if codes.size >= _EXACT_COUNTS:
        return np.bincount(codes.ravel(), minlength=bins)
    hist = cv2.calcHist([np.ascontiguousarray(codes)], [0], None, [bins], [0, bins])
    return hist.ravel().astype(np.int64)


def _check_params(num_classes: int, ignore: int) -> None:
    if not (0 < num_classes <= LEVELS and 0 <= ignore < LEVELS):
        raise ValueError(f"num_classes and ignore must fit 8-bit label maps, got {num_classes} "
                         f"and {ignore}")


def _check_thresholds(thresholds: Sequence[float], table: bool) -> tuple[float, ...]:
    """Increasing thresholds: 3 for the table's buckets, else up to 7 (finer curves)."""
    bounds = tuple(float(t) for t in thresholds)
    if table and len(bounds) != NUM_BUCKETS - 1 or np.any(np.diff(bounds) <= 0):
        raise ValueError(f"thresholds must be {NUM_BUCKETS - 1} increasing fractions "
                         f"for the buckets {', '.join(SIZE_BUCKETS)}, got {thresholds}")
    if not 0 < len(bounds) < MAX_BUCKETS:
        raise ValueError(f"thresholds must be 1 to {MAX_BUCKETS - 1} increasing fractions, "
                         f"got {thresholds}")
    return bounds


class PartCounter:
    """Counts one image's pixels for part IoU and IoU by person size, in one pass.

    ``thresholds``: the table's 3 by default; up to 7 for finer size curves.
    """

    def __init__(self, thresholds: Sequence[float] = SIZE_THRESHOLDS,
                 ignore: int = IGNORE_LABEL):
        self.thresholds = _check_thresholds(thresholds, table=False)
        self.buckets = len(self.thresholds) + 1
        self._memberships = 1 << self.buckets
        # _in_bucket[b, m]: the membership set m includes bucket b
        self._in_bucket = (np.arange(self._memberships)[None, :]
                           >> np.arange(self.buckets)[:, None]) & 1
        _check_params(NUM_PARTS, ignore)
        self.ignore = ignore
        self._illegal_gt = np.ones(LEVELS, bool)
        self._illegal_gt[:NUM_PARTS] = self._illegal_gt[ignore] = False

    def count(self, gt_map: np.ndarray, pred_map: np.ndarray,
              instance_map: np.ndarray | None = None) -> PartCounts:
        """The counts of one image; without an instance map, no person (by size stays 0).

        Raises ValueError for maps of different shapes or illegal values.
        """
        gt, pred = _labels(gt_map, "GT map"), _labels(pred_map, "prediction")
        if gt.shape != pred.shape:
            raise ValueError(f"GT map {gt.shape} and prediction {pred.shape} differ in shape")
        membership, persons = None, np.zeros(self.buckets, np.int64)
        if instance_map is not None:
            instances = _instance_ids(instance_map)
            if instances.shape != gt.shape:
                raise ValueError(f"GT map {gt.shape}, prediction {pred.shape} and instance map "
                                 f"{instances.shape} differ in shape")
            membership, persons = self._membership(instances)
        return self._counts(_joint_histogram(gt, pred, membership, self._memberships), persons)

    def _membership(self, instances: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """Each pixel's set of buckets whose regions it counts in (a bit mask; None when the
        image has no person) and the persons per bucket. Only the tight window around all
        persons is visited."""
        left, top, width, height = cv2.boundingRect(instances)
        if not width:
            return None, np.zeros(self.buckets, np.int64)
        rows, cols = slice(top, top + height), slice(left, left + width)
        window = np.ascontiguousarray(instances[rows, cols])
        pixels = _histogram(window, LEVELS)
        ids = np.flatnonzero(pixels[1:]) + 1
        buckets = size_bucket(pixels[ids] / instances.size, self.thresholds)
        membership = np.zeros(instances.shape, np.uint8)
        inside = membership[rows, cols]
        for person, bucket in zip(ids, buckets):
            mask = window if len(ids) == 1 else (window == person).view(np.uint8)
            x, y, w, h = cv2.boundingRect(mask)
            inside[y:y + h, x:x + w] |= np.uint8(1 << bucket)
        # A pixel of a person counts only in its own bucket's regions; background in all.
        readable = np.zeros(LEVELS, np.uint8)
        readable[0] = self._memberships - 1
        readable[ids] = 1 << buckets
        inside &= cv2.LUT(window, readable)
        return membership, np.bincount(buckets, minlength=self.buckets).astype(np.int64)

    def _counts(self, hist: np.ndarray, persons: np.ndarray) -> PartCounts:
        """Confusion matrices and value checks from the (GT, prediction, membership) counts."""
        if hist[:, NUM_PARTS:].any():
            raise ValueError(f"prediction holds values outside 0-{NUM_PARTS - 1}")
        if hist[self._illegal_gt].any():
            raise ValueError(f"GT map holds values outside 0-{NUM_PARTS - 1} and the ignore "
                             "label")
        confusion = hist[:NUM_PARTS, :NUM_PARTS].astype(np.int64)  # (7, 7, memberships)
        if self.ignore < NUM_PARTS:  # ignoring a class id: its GT pixels are left out
            confusion[self.ignore] = 0
        if confusion.shape[2] == 1:  # no person: every pixel is in no bucket's region
            by_size = np.zeros((self.buckets, NUM_PARTS, NUM_PARTS), np.int64)
        else:
            by_size = np.tensordot(self._in_bucket, confusion.transpose(2, 0, 1), axes=1)
        return PartCounts(confusion.sum(axis=2), by_size, persons)


def _joint_histogram(gt: np.ndarray, pred: np.ndarray, membership: np.ndarray | None,
                     memberships: int) -> np.ndarray:
    """Pixel counts ``(256, 8, memberships)`` of (GT value, predicted value, membership set);
    predicted values of 7 and above all count in column 7 (only whether it is empty matters).
    One OpenCV histogram (exact in float32 below 2**24 pixels; numpy beyond)."""
    sets = memberships if membership is not None else 1
    if gt.size < _EXACT_COUNTS:
        images, channels = ([gt, pred], [0, 1]) if membership is None else (
            [gt, pred, membership], [0, 1, 2])
        hist = cv2.calcHist(images, channels, None, [LEVELS, _PRED_CODES, sets][:len(images)],
                            [0, LEVELS, 0, _PRED_CODES, 0, sets][:2 * len(images)])
        hist = hist.reshape(LEVELS, _PRED_CODES, sets)  # float32 counts, exact integers
        if hist.sum(dtype=np.float64) != gt.size:  # calcHist leaves out predictions >= 8
            hist[0, NUM_PARTS, 0] += 1
        return hist
    codes = (gt.astype(np.int64) * _PRED_CODES + np.minimum(pred, NUM_PARTS)) * sets
    if membership is not None:
        codes += membership
    return np.bincount(codes.ravel(), minlength=LEVELS * _PRED_CODES * sets).reshape(
        LEVELS, _PRED_CODES, sets)


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int = NUM_PARTS,
                     ignore: int = IGNORE_LABEL) -> np.ndarray:
    """Pixel counts ``(num_classes, num_classes)`` int64, rows GT class, columns predicted.

    Maps are 8-bit label maps of equal shape; GT pixels equal to ``ignore`` are left out.
    Any ``num_classes`` up to 256 works (the part metrics use 7).
    """
    _check_params(num_classes, ignore)
    if num_classes == NUM_PARTS:
        return PartCounter(ignore=ignore).count(gt, pred).confusion
    gt, pred = _labels(gt, "GT map"), _labels(pred, "prediction")
    if gt.shape != pred.shape:
        raise ValueError(f"GT map {gt.shape} and prediction {pred.shape} differ in shape")
    counts = np.bincount(((gt.astype(np.int64) << 8) | pred).ravel(),
                         minlength=LEVELS * LEVELS).reshape(LEVELS, LEVELS)
    if counts[:, num_classes:].any():
        raise ValueError(f"prediction holds values outside 0-{num_classes - 1}")
    legal = np.zeros(LEVELS, bool)
    legal[:num_classes] = legal[ignore] = True
    if counts[~legal].any():
        raise ValueError(f"GT map holds values outside 0-{num_classes - 1} and {ignore}")
    counts[ignore] = 0
    return counts[:num_classes, :num_classes]


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU (a fraction) from confusion matrices ``(..., C, C)``; NaN where
    TP + FP + FN = 0."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    union = cm.sum(axis=-2) + cm.sum(axis=-1) - tp
    return np.divide(tp, union, out=np.full_like(tp, np.nan), where=union > 0)


def miou(cm: np.ndarray) -> np.ndarray:
    """Mean IoU in percent of confusion matrices ``(..., C, C)`` over their defined classes."""
    iou = 100 * iou_from_confusion(cm)
    defined = ~np.isnan(iou)
    count = defined.sum(axis=-1)
    total = np.where(defined, iou, 0).sum(axis=-1)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


def parts_result(confusion: np.ndarray) -> dict:
    """``{"per_class": {part: IoU}, "miou"}`` in percent from a split's confusion matrix."""
    iou = 100 * iou_from_confusion(confusion)
    return {"per_class": {name: nullable(v) for name, v in zip(PART_NAMES, iou)},
            "miou": nullable(mean_of_defined(iou))}


def parts_by_size_result(by_size: np.ndarray, persons: np.ndarray,
                         thresholds: Sequence[float]) -> dict:
    """``{"XS", "S", "M", "L": mIOU or None, "counts", "thresholds"}`` from summed counts."""
    out: dict = {name: nullable(float(miou(cm))) if count else None
                 for name, cm, count in zip(SIZE_BUCKETS, by_size, persons)}
    out["counts"] = {name: int(c) for name, c in zip(SIZE_BUCKETS, persons)}
    out["thresholds"] = [float(t) for t in thresholds]
    return out


class PartIoU:
    """Part IoU over a split: ``update`` per image, then ``result`` (percent)."""

    def __init__(self, ignore: int = IGNORE_LABEL):
        self._counter = PartCounter(ignore=ignore)
        self.ignore = ignore
        self.confusion = np.zeros((NUM_PARTS, NUM_PARTS), dtype=np.int64)

    def update(self, gt_map: np.ndarray, pred_map: np.ndarray) -> None:
        self.confusion += self._counter.count(gt_map, pred_map).confusion

    def result(self) -> dict:
        """``{"per_class": {part: IoU}, "miou", "params"}``; undefined values are None."""
        return {**parts_result(self.confusion), "params": {"ignore": self.ignore}}


class PartIoUBySize:
    """Part mIOU per person-size bucket: ``update`` per image, then ``result`` (percent)."""

    def __init__(self, thresholds: Sequence[float] = SIZE_THRESHOLDS,
                 ignore: int = IGNORE_LABEL):
        self._counter = PartCounter(_check_thresholds(thresholds, table=True), ignore)
        self.thresholds = self._counter.thresholds
        self.ignore = ignore
        self.confusion = np.zeros((NUM_BUCKETS, NUM_PARTS, NUM_PARTS), dtype=np.int64)
        self.counts = np.zeros(NUM_BUCKETS, dtype=np.int64)

    def update(self, gt_map: np.ndarray, pred_map: np.ndarray, instance_map: np.ndarray) -> None:
        """Add one image: its part maps and its instance map (0 = no person, 1..N persons)."""
        counts = self._counter.count(gt_map, pred_map, instance_map)
        self.confusion += counts.by_size
        self.counts += counts.persons

    def result(self) -> dict:
        """``{"XS", "S", "M", "L": mIOU or None, "counts", "thresholds", "params"}``."""
        return {**parts_by_size_result(self.confusion, self.counts, self.thresholds),
                "params": {"thresholds": list(self.thresholds), "ignore": self.ignore}}
