"""COCO keypoint AP (OKS) of a submission: an extra, NOT the paper's pose metric.

The benchmark's pose metric is the paper's pose mAP (Table 1, :mod:`.pose_ap`). For
readers who think in COCO terms, ``ppp score --coco-oks`` adds COCO's object keypoint
similarity AP, computed by pycocotools' own ``COCOeval`` (``iouType="keypoints"``, COCO's
defaults otherwise: OKS thresholds .50:.05:.95, at most 20 poses per image, COCO's
medium/large areas) on the same ground truth and ``pose.json``, so it is exactly COCO's
number and directly comparable to other COCO-style evaluations.

OKS needs a per-joint falloff sigma. For the 12 joints COCO has we take COCO's sigmas
(shoulders .079, elbows .072, wrists .062, hips .107, knees .087, ankles .089). COCO has no
forehead or neck; CrowdPose, the COCO-style benchmark whose 14 joints include a head top
and a neck, gives both the shoulder sigma .079, and we follow it: both joints are labelled
about as loosely as a shoulder (the forehead is a point on a surface, not a landmark like
an eye, whose sigma .025 would be far too strict).

Images whose ``pose_annotated`` is false are left out, as in the paper's metrics.
"""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np

from pascal_person_pose.schema import JOINT_NAMES

COCO_SIGMAS: dict[str, float] = {
    "forehead": 0.079, "neck": 0.079,
    "r_shoulder": 0.079, "r_elbow": 0.072, "r_wrist": 0.062,
    "r_hip": 0.107, "r_knee": 0.087, "r_ankle": 0.089,
    "l_shoulder": 0.079, "l_elbow": 0.072, "l_wrist": 0.062,
    "l_hip": 0.107, "l_knee": 0.087, "l_ankle": 0.089,
}
STAT_NAMES = ("AP", "AP50", "AP75", "AP_medium", "AP_large",
              "AR", "AR50", "AR75", "AR_medium", "AR_large")
NOTE = ("COCO OKS keypoint AP by pycocotools COCOeval with the sigmas below; an extra for "
        "COCO-style comparison, not the paper's metric (pose mAP, Table 1)")


def sigmas() -> np.ndarray:
    """The 14 sigmas in schema order, as ``COCOeval.params.kpt_oks_sigmas`` wants them."""
    return np.array([COCO_SIGMAS[name] for name in JOINT_NAMES], dtype=np.float64)


def coco_evaluator(coco_gt_dict: dict, poses: list[dict], library: str = "pycocotools"):
    """A ready ``COCOeval`` over the pose-annotated images (call evaluate/accumulate).

    ``library``: ``pycocotools``, or ``faster_coco_eval`` (its C++ ``COCOeval_faster``,
    the same numbers faster; an optional package, imported here).
    """
    if library == "faster_coco_eval":
        from faster_coco_eval import COCO, COCOeval_faster as COCOeval
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt = COCO()
        gt.dataset = coco_gt_dict
        gt.createIndex()
        # loadRes writes bbox, area and id into the records it gets: give it copies.
        dt = gt.loadRes(copy.deepcopy(poses))
    evaluator = COCOeval(gt, dt, iouType="keypoints")
    evaluator.params.kpt_oks_sigmas = sigmas()
    evaluator.params.imgIds = sorted(im["id"] for im in coco_gt_dict["images"]
                                     if im.get("pose_annotated", True))
    return evaluator


def coco_oks_ap(coco_gt_dict: dict, poses: list[dict]) -> dict:
    """COCO keypoint AP/AR in percent (None where COCO reports -1), with sigmas and a note."""
    evaluator = coco_evaluator(coco_gt_dict, poses)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {**{name: (None if v < 0 else 100 * float(v))
               for name, v in zip(STAT_NAMES, evaluator.stats)},
            "sigmas": dict(COCO_SIGMAS), "max_dets": int(evaluator.params.maxDets[-1]),
            "note": NOTE}
