"""The evaluation of a submission in three phases, as in pycocotools and lvis-api.

1. :meth:`Evaluation.evaluate` matches and counts image by image and keeps one
   :class:`ImageResult` per image of the split: for each GT person its matched prediction,
   per-joint distances, hits and ADK terms; for each prediction its assignment and which of
   its joints are true positives; the image's part confusion matrices (overall and by
   person size). These are the records ``ppp score --details`` writes.
2. :func:`accumulate` turns records into per-image sufficient statistics
   (:class:`Statistics`): the ranked joint detections, positives, ADK sums, confusion
   matrices. Every table number is a function of their sums over the images, which is what
   lets the bootstrap resample images without re-scoring anything.
3. :func:`summarize` computes the tables of ``ppp score`` from the statistics.

The split numbers are therefore computed from exactly the records (and reading the records
back from a details file gives the same numbers to the last bit, which a test checks). The
pose matching itself is vectorised over the whole split (:mod:`.metrics.pose_ap`,
:mod:`.metrics.adk`); the part maps are decoded and counted on threads
(:class:`.metrics.parts.PartCounter`), in dataset order, so the result does not depend on
the number of threads.

Pose metrics see only the images whose ``pose_annotated`` is not false; part metrics see
every image of the split.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from pascal_person_pose import atomic, safe_json
from pascal_person_pose import progress as progress_bar
from pascal_person_pose.errors import InputError
from pascal_person_pose.metrics.adk import adk_matches, adk_table
from pascal_person_pose.metrics.parts import (NUM_BUCKETS, PartCounter, parts_by_size_result,
                                              parts_result)
from pascal_person_pose.metrics.pose_ap import (ALPHA, MIN_IOU, joint_detections, per_joint_ap,
                                                pose_ap_table)
from pascal_person_pose.schema import NUM_JOINTS, NUM_PARTS, SIZE_BUCKETS, SIZE_THRESHOLDS
from pascal_person_pose.submission import (InvalidSubmission, Problems, Submission, pose_arrays,
                                           read_part_map)

UNMATCHED, SKIPPED = -1, -2  # ImageResult.adk_match codes besides a pose.json index
_ADK_CODES = {UNMATCHED: "unmatched", SKIPPED: "skipped"}


@dataclass
class ImageResult:
    """Everything one image contributes to the scores (the ``--details`` record).

    GT persons (G of them, annotation order) and predictions (P, ``pose.json`` order) are
    empty for an image without pose annotation or a submission without poses; the part
    arrays are None for a submission without part maps.
    """

    image_id: int
    voc_id: str
    pose_annotated: bool
    annotation_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    labelled: np.ndarray = field(default_factory=lambda: np.zeros((0, NUM_JOINTS), bool))
    match: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    distance: np.ndarray = field(default_factory=lambda: np.zeros((0, NUM_JOINTS)))
    hit: np.ndarray = field(default_factory=lambda: np.zeros((0, NUM_JOINTS), bool))
    adk_match: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    adk_term: np.ndarray = field(default_factory=lambda: np.zeros((0, NUM_JOINTS)))
    pose_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pose_person: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    joint_score: np.ndarray = field(default_factory=lambda: np.zeros((0, NUM_JOINTS)))
    tp: np.ndarray = field(default_factory=lambda: np.zeros((0, NUM_JOINTS), bool))
    confusion: np.ndarray | None = None  # (7, 7) int64
    by_size: np.ndarray | None = None  # (4, 7, 7) int64
    persons_by_size: np.ndarray | None = None  # (4,) int64

    def to_json(self) -> dict:
        """The record as plain JSON (NaN as null; -1/-2 ADK codes as words)."""
        out: dict = {"image_id": self.image_id, "voc_id": self.voc_id,
                     "pose_annotated": self.pose_annotated}
        if self.pose_annotated:
            ann = self.annotation_ids.tolist()
            match = {int(k): a for k, a in zip(self.pose_index, self.pose_person)}
            out["persons"] = [
                {"annotation_id": ann[g], "labelled": self.labelled[g].tolist(),
                 "match": _index(self.match[g]), "distance": _floats(self.distance[g]),
                 "hit": self.hit[g].tolist(),
                 "adk_match": _ADK_CODES.get(int(self.adk_match[g]), int(self.adk_match[g])),
                 "adk_term": _floats(self.adk_term[g])} for g in range(len(ann))]
            out["predictions"] = [
                {"index": int(k), "person": _index(match[int(k)]),
                 "score": self.joint_score[p].tolist(), "tp": self.tp[p].tolist()}
                for p, k in enumerate(self.pose_index)]
        if self.confusion is not None:
            out["parts"] = {"confusion": self.confusion.tolist(),
                            "by_size": dict(zip(SIZE_BUCKETS, self.by_size.tolist())),
                            "persons_by_size": dict(zip(SIZE_BUCKETS,
                                                        self.persons_by_size.tolist()))}
        return out

    @classmethod
    def from_json(cls, record: dict) -> ImageResult:
        """The inverse of :meth:`to_json`."""
        result = cls(int(record["image_id"]), record["voc_id"], bool(record["pose_annotated"]))
        persons, predictions = record.get("persons", []), record.get("predictions", [])
        if persons:
            result.annotation_ids = np.array([p["annotation_id"] for p in persons], np.int64)
            result.labelled = np.array([p["labelled"] for p in persons], bool)
            result.match = np.array([_code(p["match"]) for p in persons], np.int64)
            result.distance = np.array([p["distance"] for p in persons], np.float64)
            result.hit = np.array([p["hit"] for p in persons], bool)
            codes = {word: code for code, word in _ADK_CODES.items()}
            result.adk_match = np.array([codes.get(p["adk_match"], p["adk_match"])
                                         for p in persons], np.int64)
            result.adk_term = np.array([p["adk_term"] for p in persons], np.float64)
        if predictions:
            result.pose_index = np.array([p["index"] for p in predictions], np.int64)
            result.pose_person = np.array([_code(p["person"]) for p in predictions], np.int64)
            result.joint_score = np.array([p["score"] for p in predictions], np.float64)
            result.tp = np.array([p["tp"] for p in predictions], bool)
        if "parts" in record:
            parts = record["parts"]
            result.confusion = np.array(parts["confusion"], np.int64)
            result.by_size = np.array([parts["by_size"][b] for b in SIZE_BUCKETS], np.int64)
            result.persons_by_size = np.array([parts["persons_by_size"][b]
                                               for b in SIZE_BUCKETS], np.int64)
        return result


def _index(value) -> int | None:
    return None if value < 0 else int(value)


def _code(value) -> int:
    return -1 if value is None else int(value)


def _floats(values: np.ndarray) -> list:
    return [None if np.isnan(v) else v for v in values.tolist()]


# ------------------------------------------------------------------------------ evaluate


class Evaluation:
    """Scores one submission on one split: ``evaluate()``, ``accumulate()``, ``summarize()``.

    ``dataset`` is a :class:`~.dataset.Dataset` split, ``submission`` a read
    :class:`~.submission.Submission` that passed validation (pixel values are checked while
    counting). ``workers`` threads decode part maps (default: up to 4); ``progress`` allows
    a bar over them (:mod:`.progress`).
    """

    def __init__(self, dataset, submission: Submission, *, alpha: float = ALPHA,
                 min_iou: float = MIN_IOU, size_thresholds: Sequence[float] = SIZE_THRESHOLDS,
                 workers: int | None = None, progress: bool = False):
        self.dataset = dataset
        self.submission = submission
        self.params = {"alpha": alpha, "min_iou": min_iou,
                       "size_thresholds": [float(t) for t in size_thresholds]}
        self._counter = PartCounter(_table_thresholds(size_thresholds))
        self.workers = workers or min(4, os.cpu_count() or 1)
        self.progress = progress
        self.images: list[ImageResult] | None = None
        self.statistics: Statistics | None = None

    def evaluate(self) -> list[ImageResult]:
        """One :class:`ImageResult` per image of the split, in dataset order."""
        images = [ImageResult(int(im["id"]), im["voc_id"], bool(im.get("pose_annotated", True)))
                  for im in self.dataset.images]
        if self.submission.has_pose:
            self._evaluate_poses(images)
        if self.submission.has_parts:
            self._evaluate_parts(images)
        self.images = images
        return images

    def accumulate(self) -> Statistics:
        if self.images is None:
            self.evaluate()
        self.statistics = accumulate(self.images, self.params, self.submission.has_pose,
                                     self.submission.has_parts)
        return self.statistics

    def summarize(self) -> dict:
        """The tables of ``ppp score`` (without ``params``, which the caller completes)."""
        if self.statistics is None:
            self.accumulate()
        return summarize(self.statistics)

    def _evaluate_poses(self, images: list[ImageResult]) -> None:
        """Match every pose of the split at once, then cut the arrays per image."""
        arrays = pose_arrays(self.submission.poses)
        rows = arrays.by_image()
        empty = np.zeros(0, np.intp)
        annotated = [i for i, r in enumerate(images) if r.pose_annotated]
        gt = [self.dataset.keypoints(images[i].image_id) for i in annotated]
        pose_rows = [rows.get(images[i].image_id, empty) for i in annotated]
        pred = [arrays.keypoints[k] for k in pose_rows]
        det = joint_detections(gt, pred, **{k: self.params[k] for k in ("alpha", "min_iou")})
        adk = adk_matches(gt, pred)

        gt_kp, pred_kp = _concat(gt, (0, NUM_JOINTS, 3)), _concat(pred, (0, NUM_JOINTS, 3))
        pose_row = np.concatenate([empty, *pose_rows]).astype(np.int64)
        annotation_ids = np.array([a["id"] for i in annotated
                                   for a in self.dataset.annotations(images[i].image_id)],
                                  np.int64)
        present = pred_kp[:, :, 2] > 0
        matched = np.flatnonzero(det.pred_to_gt >= 0)
        gt_match = np.full(len(gt_kp), -1, np.int64)
        gt_match[det.pred_to_gt[matched]] = pose_row[matched]
        distance = np.full(gt_kp.shape[:2], np.nan)
        distance[det.pred_to_gt[matched]] = np.where(present[matched], det.distance[matched],
                                                     np.nan)
        hit = np.zeros(gt_kp.shape[:2], bool)
        hit[det.pred_to_gt[matched]] = det.hit[matched] & present[matched]
        adk_match = np.where(adk.gt_to_pred >= 0, pose_row[np.maximum(adk.gt_to_pred, 0)]
                             if len(pose_row) else -1, UNMATCHED)
        adk_match[~adk.usable] = SKIPPED
        person = np.where(det.pred_to_gt >= 0,
                          annotation_ids[np.maximum(det.pred_to_gt, 0)]
                          if len(annotation_ids) else -1, -1)

        g_end = np.cumsum([len(g) for g in gt])
        p_end = np.cumsum([len(p) for p in pred])
        for i, g1, p1, n_g, n_p in zip(annotated, g_end, p_end, map(len, gt), map(len, pred)):
            g, p = slice(g1 - n_g, g1), slice(p1 - n_p, p1)
            r = images[i]
            r.annotation_ids, r.labelled = annotation_ids[g], gt_kp[g, :, 2] > 0
            r.match, r.distance, r.hit = gt_match[g], distance[g], hit[g]
            r.adk_match, r.adk_term = adk_match[g].astype(np.int64), adk.term[g]
            r.pose_index, r.pose_person = pose_row[p], person[p].astype(np.int64)
            r.joint_score, r.tp = pred_kp[p, :, 2], det.hit[p] & present[p]

    def _evaluate_parts(self, images: list[ImageResult]) -> None:
        """Decode and count each image's maps on threads; any pixel problem voids the score."""
        problems = Problems()

        def count(index: int):
            labels, found = read_part_map(self.submission, self.dataset.images[index])
            if labels is None:
                return index, found, None
            sample = self.dataset[index]
            try:
                counts = self._counter.count(sample.unchecked_part_map(), labels,
                                             sample.instance_map)
            except ValueError as e:  # the prediction was checked on decoding: the GT is bad
                raise InputError(self.dataset.layout.parts(sample.voc_id), str(e),
                                 record=f"image {sample.voc_id}") from None
            return index, found, counts

        indices = [i for i, r in enumerate(images) if r.voc_id in self.submission.parts]
        counted = progress_bar.bar(_ordered_map(count, indices, self.workers),
                                   desc="score parts", total=len(indices), unit="img",
                                   enabled=self.progress)
        for index, found, counts in counted:
            problems.extend_problems(found)
            if counts is not None:
                # Copies made here, on this thread: small arrays kept from the worker threads'
                # heaps would pin the space of the freed maps around them, and memory would
                # grow with the number of images.
                images[index].confusion, images[index].by_size, \
                    images[index].persons_by_size = (a.copy() for a in counts)
        if problems:
            raise InvalidSubmission(problems)


def _table_thresholds(thresholds: Sequence[float]) -> tuple[float, ...]:
    if len(thresholds) != NUM_BUCKETS - 1:
        raise ValueError(f"size thresholds must be {NUM_BUCKETS - 1} increasing fractions, "
                         f"got {list(thresholds)}")
    return tuple(thresholds)


def _concat(arrays: list[np.ndarray], empty_shape: tuple[int, ...]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(empty_shape)


def _ordered_map(fn: Callable, items: Sequence, threads: int) -> Iterator:
    """``map(fn, items)`` computed by ``threads`` threads at most ``4 * threads`` ahead, so
    memory stays bounded whatever the number of images."""
    with ThreadPoolExecutor(threads) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 4 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


# ---------------------------------------------------------------------------- accumulate


@dataclass(frozen=True)
class PoseStatistics:
    """Per image, what pose mAP and ADK sum over; detections in split order."""

    det_image: np.ndarray  # (E,) image position of each present predicted joint
    det_joint: np.ndarray  # (E,) its joint type
    det_score: np.ndarray  # (E,) its score
    det_tp: np.ndarray  # (E,) bool
    positives: np.ndarray  # (I, 14) labelled GT joints
    adk_total: np.ndarray  # (I, 14) sums of ADK terms
    adk_count: np.ndarray  # (I, 14) numbers of ADK terms
    unmatched: np.ndarray  # (I,) usable GT poses matched to no prediction
    skipped: np.ndarray  # (I,) GT poses without forehead and neck


@dataclass(frozen=True)
class PartStatistics:
    """Per image, the confusion matrices the part tables sum over."""

    confusion: np.ndarray  # (I, 7, 7)
    by_size: np.ndarray  # (I, 4, 7, 7)
    persons: np.ndarray  # (I, 4)


@dataclass(frozen=True)
class Statistics:
    """Per-image sufficient statistics of every table number of one submission."""

    image_ids: np.ndarray  # (I,) the split's images, in dataset order
    pose: PoseStatistics | None
    parts: PartStatistics | None
    params: dict


def accumulate(images: Sequence[ImageResult], params: dict, has_pose: bool = True,
               has_parts: bool = True) -> Statistics:
    """The sufficient statistics of per-image records (from :meth:`Evaluation.evaluate` or
    read back from a details file)."""
    n = len(images)
    pose = parts = None
    if has_pose:
        counts = np.array([len(r.pose_index) for r in images], np.intp)
        scores = _concat([r.joint_score for r in images], (0, NUM_JOINTS))
        tp = np.concatenate([np.zeros((0, NUM_JOINTS), bool), *(r.tp for r in images)])
        pose_at, joint = np.nonzero(scores > 0)  # split order: image, prediction, joint
        terms = [r.adk_term for r in images]
        pose = PoseStatistics(
            det_image=np.repeat(np.arange(n), counts)[pose_at], det_joint=joint,
            det_score=scores[pose_at, joint], det_tp=tp[pose_at, joint],
            positives=np.array([r.labelled.sum(axis=0) for r in images],
                               np.int64).reshape(n, NUM_JOINTS),
            adk_total=np.array([np.nansum(t, axis=0) for t in terms]).reshape(n, NUM_JOINTS),
            adk_count=np.array([(~np.isnan(t)).sum(axis=0) for t in terms],
                               np.int64).reshape(n, NUM_JOINTS),
            unmatched=np.array([(r.adk_match == UNMATCHED).sum() for r in images], np.int64),
            skipped=np.array([(r.adk_match == SKIPPED).sum() for r in images], np.int64))
    if has_parts:
        missing = np.zeros((NUM_PARTS, NUM_PARTS), np.int64)
        parts = PartStatistics(
            confusion=np.array([missing if r.confusion is None else r.confusion
                                for r in images]).reshape(n, NUM_PARTS, NUM_PARTS),
            by_size=np.array([np.zeros((NUM_BUCKETS, NUM_PARTS, NUM_PARTS), np.int64)
                              if r.by_size is None else r.by_size for r in images]
                             ).reshape(n, NUM_BUCKETS, NUM_PARTS, NUM_PARTS),
            persons=np.array([np.zeros(NUM_BUCKETS, np.int64) if r.persons_by_size is None
                              else r.persons_by_size for r in images]).reshape(n, NUM_BUCKETS))
    return Statistics(np.array([r.image_id for r in images], np.int64), pose, parts,
                      dict(params))


# ----------------------------------------------------------------------------- summarize


def summarize(stats: Statistics) -> dict:
    """The score tables (percent, None where undefined) of a submission's statistics."""
    result: dict = {}
    if stats.pose is not None:
        pose = stats.pose
        ap = per_joint_ap(pose.det_joint, pose.det_score, pose.det_tp, pose.positives.sum(0))
        result["pose_ap"] = pose_ap_table(ap)
        result["adk"] = {**adk_table(pose.adk_total.sum(0), pose.adk_count.sum(0)),
                         "unmatched_gt": int(pose.unmatched.sum()),
                         "skipped_gt": int(pose.skipped.sum())}
    if stats.parts is not None:
        result["parts"] = parts_result(stats.parts.confusion.sum(0))
        result["parts_by_size"] = parts_by_size_result(stats.parts.by_size.sum(0),
                                                       stats.parts.persons.sum(0),
                                                       stats.params["size_thresholds"])
    return result


# ------------------------------------------------------------------------------- details


def write_details(path: str | os.PathLike, images: Iterable[ImageResult], header: dict) -> None:
    """Write the records as JSON lines, atomically: ``header`` first (``{"details": ...}``
    with the parameters), then one line per image in dataset order."""
    with atomic.atomic_open(path, "w") as f:
        f.write(json.dumps(header, allow_nan=False) + "\n")
        for image in images:
            f.write(json.dumps(image.to_json(), allow_nan=False) + "\n")


def read_details(path: str | os.PathLike) -> tuple[dict, list[ImageResult]]:
    """The header and the records of a details file written by :func:`write_details`."""
    lines = safe_json.read_bytes(path).splitlines()
    header = safe_json.loads(lines[0], path) if lines else {}
    if not isinstance(header, dict) or "details" not in header:
        raise InputError(path, "not a details file of `ppp score --details` (no header line)")
    return header, [ImageResult.from_json(safe_json.loads(line, path))
                    for line in lines[1:] if line.strip()]
