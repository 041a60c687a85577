"""Score a submission against a split: the JSON of docs/metrics.md.

The flow is validate, then score, never a partial score: everything that can be checked
without decoding pixels (pose records, file names, missing images) is checked first; the
part maps are then decoded once each, checked and accumulated in the same pass, and any
pixel problem voids the whole result (:class:`~.submission.InvalidSubmission` names them).

Pose metrics see only the images whose ``pose_annotated`` is not false; part metrics see
every image of the split. A task the submission leaves out is absent from the output. The
metric modules report their own parameters; here they are gathered under one ``params``
so every section holds exactly its documented keys.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pascal_person_pose import progress as progress_bar
from pascal_person_pose.fingerprint import ground_truth_fingerprint
from pascal_person_pose.metrics.pose_ap import ALPHA, MIN_IOU
from pascal_person_pose.schema import NUM_JOINTS, SIZE_THRESHOLDS
from pascal_person_pose.submission import (InvalidSubmission, PoseArrays, Problems, Submission,
                                           pose_arrays, read_part_map, read_submission,
                                           validate_submission)

POSE_AP_KEYS = ("per_joint", "table")
ADK_KEYS = ("per_joint", "table", "unmatched_gt", "skipped_gt")
PARTS_KEYS = ("per_class", "miou")
PARTS_BY_SIZE_KEYS = ("XS", "S", "M", "L", "counts", "thresholds")


def score(root: str | os.PathLike, submission: str | os.PathLike | Submission,
          split: str = "val", *, alpha: float = ALPHA, min_iou: float = MIN_IOU,
          size_thresholds: Sequence[float] = SIZE_THRESHOLDS, coco_oks: bool = False,
          workers: int | None = None, progress: bool = True) -> dict:
    """Score ``submission`` on ``split`` of the canonical dataset at ``root``.

    Returns ``{"pose_ap", "adk", "parts", "parts_by_size", "params"}`` (percentages, full
    precision, None where undefined), plus ``"coco_oks"`` when asked (an extra, see
    :mod:`.coco_oks`). Raises :class:`InvalidSubmission` if the submission has any problem.
    ``workers`` threads decode part maps ahead of the accumulation (default: up to 4);
    ``progress`` allows a bar over them (:mod:`.progress`).
    """
    from pascal_person_pose.dataset import Dataset

    dataset = Dataset(root, split)
    sub = submission if isinstance(submission, Submission) else read_submission(submission)
    problems = validate_submission(sub, dataset, check_pixels=False)
    if problems:
        raise InvalidSubmission(problems)
    result: dict = {}
    if sub.has_pose:
        result.update(score_poses(dataset, pose_arrays(sub.poses), alpha=alpha, min_iou=min_iou))
    if sub.has_parts:
        result.update(score_parts(dataset, sub, size_thresholds, workers=workers,
                                  progress=progress))
    if coco_oks and sub.has_pose:
        from pascal_person_pose.metrics.coco_oks import coco_oks_ap

        result["coco_oks"] = coco_oks_ap(dataset.coco, sub.poses)
    result["params"] = {"split": split, "ground_truth": ground_truth_fingerprint(dataset),
                        "alpha": alpha, "min_iou": min_iou,
                        "size_thresholds": [float(t) for t in size_thresholds],
                        "pose_images": sum(im.get("pose_annotated", True)
                                           for im in dataset.images),
                        "images": len(dataset)}
    return result


def pose_inputs(dataset, poses: PoseArrays) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per pose-annotated image: GT keypoints and predictions (``pose.json`` order)."""
    rows = poses.by_image()
    empty = np.zeros((0, NUM_JOINTS, 3))
    gt, pred = [], []
    for im in dataset.images:
        if im.get("pose_annotated", True):
            gt.append(dataset.keypoints(im["id"]))
            idx = rows.get(im["id"])
            pred.append(empty if idx is None else poses.keypoints[idx])
    return gt, pred


def score_poses(dataset, poses: PoseArrays, *, alpha: float = ALPHA,
                min_iou: float = MIN_IOU) -> dict:
    """``{"pose_ap", "adk"}`` sections of a validated submission's poses."""
    from pascal_person_pose.metrics.adk import adk
    from pascal_person_pose.metrics.pose_ap import pose_ap

    gt, pred = pose_inputs(dataset, poses)
    ap = pose_ap(gt, pred, alpha=alpha, min_iou=min_iou)
    distances = adk(gt, pred)
    return {"pose_ap": {k: ap[k] for k in POSE_AP_KEYS},
            "adk": {k: distances[k] for k in ADK_KEYS}}


def score_parts(dataset, submission: Submission,
                size_thresholds: Sequence[float] = SIZE_THRESHOLDS, *,
                workers: int | None = None, progress: bool = True) -> dict:
    """``{"parts", "parts_by_size"}``: each PNG (prediction, GT parts, instances) read once.

    Threads decode a few images ahead of the accumulation, which runs in dataset order, so
    the result does not depend on the number of threads and memory stays bounded.
    """
    from pascal_person_pose.metrics.parts import PartIoU, PartIoUBySize

    overall, by_size = PartIoU(), PartIoUBySize(size_thresholds)
    problems = Problems()

    def load(index: int):
        image = dataset.images[index]
        labels, found = read_part_map(submission, image)
        if labels is None:
            return found, None
        sample = dataset[index]
        return found, (sample.part_map, labels, sample.instance_map)

    indices = [i for i, im in enumerate(dataset.images) if im["voc_id"] in submission.parts]
    threads = workers or min(4, os.cpu_count() or 1)
    decoded = progress_bar.bar(_ordered_map(load, indices, threads), desc="score parts",
                               total=len(indices), unit="img", enabled=progress)
    for found, maps in decoded:
        problems.extend_problems(found)
        if maps is not None and not problems:
            overall.update(maps[0], maps[1])
            by_size.update(*maps)
    if problems:
        raise InvalidSubmission(problems)
    parts, sizes = overall.result(), by_size.result()
    return {"parts": {k: parts[k] for k in PARTS_KEYS},
            "parts_by_size": {k: sizes[k] for k in PARTS_BY_SIZE_KEYS}}


def _ordered_map(fn: Callable, items: Sequence, threads: int) -> Iterator:
    """``map(fn, items)`` computed by ``threads`` threads at most ``2 * threads`` ahead."""
    with ThreadPoolExecutor(threads) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
