"""Score a submission against a split: the JSON that ``ppp score`` prints and writes.

The flow is validate, then score, never a partial score: everything that can be checked
without decoding pixels (pose records, file names, missing images) is checked first; the
part maps are then decoded once each, checked and counted in the same pass, and any pixel
problem voids the whole result (:class:`~.submission.InvalidSubmission` names them).

The computation is :class:`~.evaluation.Evaluation` (evaluate, accumulate, summarize);
this module adds the parameters to the result, the optional COCO OKS extra and the
per-image details file. A task the submission leaves out is absent from the output.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from pascal_person_pose.evaluation import Evaluation, write_details
from pascal_person_pose.fingerprint import ground_truth_fingerprint
from pascal_person_pose.metrics.pose_ap import ALPHA, MIN_IOU
from pascal_person_pose.schema import SIZE_THRESHOLDS
from pascal_person_pose.submission import (InvalidSubmission, Submission, read_submission,
                                           validate_submission)

DETAILS_FORMAT = 1  # the version of the --details JSON lines


def evaluation(root: str | os.PathLike, submission: str | os.PathLike | Submission,
               split: str = "val", *, alpha: float = ALPHA, min_iou: float = MIN_IOU,
               size_thresholds: Sequence[float] = SIZE_THRESHOLDS,
               workers: int | None = None, progress: bool = True) -> Evaluation:
    """A validated submission's :class:`Evaluation`, its phases already run.

    Raises :class:`InvalidSubmission` if the submission has any problem. ``progress``
    allows a bar over the part maps (:mod:`.progress`).
    """
    from pascal_person_pose.dataset import Dataset

    dataset = Dataset(root, split)
    sub = submission if isinstance(submission, Submission) else read_submission(submission)
    problems = validate_submission(sub, dataset, check_pixels=False)
    if problems:
        raise InvalidSubmission(problems)
    evaluated = Evaluation(dataset, sub, alpha=alpha, min_iou=min_iou,
                           size_thresholds=size_thresholds, workers=workers, progress=progress)
    evaluated.summarize()
    return evaluated


def score(root: str | os.PathLike, submission: str | os.PathLike | Submission,
          split: str = "val", *, alpha: float = ALPHA, min_iou: float = MIN_IOU,
          size_thresholds: Sequence[float] = SIZE_THRESHOLDS, coco_oks: bool = False,
          workers: int | None = None, progress: bool = True,
          details: str | os.PathLike | None = None, resamples: int | None = None,
          seed: int = 0) -> dict:
    """Score ``submission`` on ``split`` of the canonical dataset at ``root``.

    Returns ``{"pose_ap", "adk", "parts", "parts_by_size", "params"}`` (percentages, full
    precision, None where undefined), plus ``"coco_oks"`` when asked (an extra, see
    :mod:`.metrics.coco_oks`). ``details``: also write the per-image records there (JSON
    lines). ``resamples``: add ``"intervals"`` and ``"bootstrap"`` (:mod:`.bootstrap`),
    resampling images with ``seed``. Raises :class:`InvalidSubmission` if the submission
    has any problem.
    ``workers`` threads decode part maps (default: up to 4); ``progress`` allows a bar.
    """
    evaluated = evaluation(root, submission, split, alpha=alpha, min_iou=min_iou,
                           size_thresholds=size_thresholds, workers=workers,
                           progress=progress)
    result = summary(evaluated, split)
    params = result.pop("params")
    if coco_oks and evaluated.submission.has_pose:
        from pascal_person_pose.metrics.coco_oks import coco_oks_ap

        result["coco_oks"] = coco_oks_ap(evaluated.dataset.coco, evaluated.submission.poses)
    if resamples:
        from pascal_person_pose.bootstrap import intervals

        result["intervals"], result["bootstrap"] = intervals(
            evaluated.statistics, evaluated.summarize(), resamples, seed)
    result["params"] = params
    if details is not None:
        write_details(details, evaluated.images, details_header(evaluated, split))
    return result


def summary(evaluated: Evaluation, split: str) -> dict:
    """The score JSON of an evaluation: its tables and ``params``."""
    images = evaluated.dataset.images
    return {**evaluated.summarize(),
            "params": {"split": split,
                       "ground_truth": ground_truth_fingerprint(evaluated.dataset),
                       **evaluated.params,
                       "pose_images": sum(im.get("pose_annotated", True) for im in images),
                       "images": len(images)}}


def details_header(evaluated: Evaluation, split: str) -> dict:
    """The first line of a details file: what the records are and how they were made."""
    tasks = [t for t, present in (("pose", evaluated.submission.has_pose),
                                  ("parts", evaluated.submission.has_parts)) if present]
    return {"details": DETAILS_FORMAT, "split": split, "tasks": tasks,
            "params": evaluated.params}
