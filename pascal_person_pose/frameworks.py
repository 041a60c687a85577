"""The dataset in other frameworks: COCO keypoint evaluation with the right sigmas, the
dataset info that mmpose-style code reads, and detectron2-style keypoint metadata.

Everything here is derived from :mod:`.schema` (names, order, flip partners, skeleton,
colours) and from :mod:`.metrics.coco_oks` (the OKS sigmas), so it cannot drift from what the
toolkit itself uses; docs/frameworks.md shows each in use. None of these frameworks is a
dependency: the COCO evaluators are imported when asked for, and the metadata are plain
dicts and lists that mmpose and detectron2 accept as they are.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from pascal_person_pose import safe_json, schema
from pascal_person_pose.metrics.coco_oks import coco_evaluator, sigmas

COCO_LIBRARIES = ("pycocotools", "faster_coco_eval")

# mmpose's joint loss weights follow COCO's by joint type: distal joints, which are harder
# to localise, weigh more (elbows and knees 1.2, wrists and ankles 1.5). Forehead and neck,
# which COCO lacks, weigh 1 like COCO's other head and trunk points.
JOINT_WEIGHTS_BY_TYPE: dict[str, float] = {
    "Forehead": 1.0, "Neck": 1.0, "Shoulder": 1.0, "Elbow": 1.2, "Wrist": 1.5,
    "Hip": 1.0, "Knee": 1.2, "Ankle": 1.5,
}
PAPER_INFO = {
    "author": "Xia, Fangting and Wang, Peng and Chen, Xianjie and Yuille, Alan L.",
    "title": "Joint Multi-Person Pose Estimation and Semantic Part Segmentation",
    "container": "IEEE Conference on Computer Vision and Pattern Recognition (CVPR)",
    "year": "2017",
    "homepage": "https://arxiv.org/abs/1708.03383",
}


# ---------------------------------------------------------------------------- COCO tools


def coco_keypoint_eval(annotations: str | os.PathLike | dict,
                       results: str | os.PathLike | list[dict], *,
                       library: str = "pycocotools", verbose: bool = True):
    """Run ``library``'s COCO keypoint evaluation (OKS AP) on our ground truth, in one call.

    ``annotations``: a ``person_pose_<split>.json`` file (or its parsed content);
    ``results``: a ``pose.json`` file, a submission directory or ``.zip``, or the records.
    The evaluator gets our 14 sigmas (COCO's 17 defaults fail on 14 joints) and only the
    pose-annotated images, as ``ppp score --coco-oks`` does. Returns the evaluator after
    ``evaluate``, ``accumulate`` and ``summarize`` (``.stats``: AP, AP50, AP75, APm, APl,
    AR, AR50, AR75, ARm, ARl as fractions); ``verbose`` lets the library print its
    summary table.
    """
    if library not in COCO_LIBRARIES:
        raise ValueError(f"library must be one of {', '.join(COCO_LIBRARIES)}, not {library!r}")
    gt = annotations if isinstance(annotations, dict) else safe_json.load(annotations)
    evaluator = coco_evaluator(gt, _pose_records(results), library=library)
    if verbose and library == "faster_coco_eval":
        evaluator.print_function = print  # its default is a logger, silent unless configured
    output = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with output:
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def _pose_records(results: str | os.PathLike | list[dict]) -> list[dict]:
    """The pose records of a ``pose.json`` file, a submission, or a list of records."""
    from pascal_person_pose.submission import read_submission

    if isinstance(results, list):
        return results
    path = Path(results)
    if path.suffix.lower() == ".json":
        return safe_json.load(path)
    poses = read_submission(path).poses
    if poses is None:
        raise ValueError(f"{path}: the submission holds no readable pose.json")
    return poses


# ---------------------------------------------------------------------------- mmpose


def mmpose_dataset_info(dataset_name: str = "pascal_person_pose") -> dict:
    """The ``dataset_info`` dict of an mmpose dataset config (``metainfo``), from the schema.

    Keypoints in schema order with their RGB colours, ``type`` upper/lower (the paper's
    U-Body joints are the upper body), ``swap`` = the flip partner ('' for forehead and
    neck), skeleton links coloured like :mod:`.vis` draws them, joint weights by joint type
    (:data:`JOINT_WEIGHTS_BY_TYPE`) and the OKS sigmas of ``ppp score --coco-oks``.
    """
    upper = set(schema.POSE_AP_COLUMNS["U-Body"])
    joint_type = {name: title for title, names in schema.ADK_COLUMNS.items() for name in names}
    return {
        "dataset_name": dataset_name,
        "paper_info": dict(PAPER_INFO),
        "keypoint_info": {
            joint.index: {"name": joint.name, "id": joint.index, "color": list(joint.colour),
                          "type": "upper" if joint.name in upper else "lower",
                          "swap": "" if joint.flip == joint.name else joint.flip}
            for joint in schema.JOINTS},
        "skeleton_info": {
            k: {"link": (edge.a, edge.b), "id": k, "color": list(schema.SKELETON_COLOURS[k])}
            for k, edge in enumerate(schema.SKELETON)},
        "joint_weights": [JOINT_WEIGHTS_BY_TYPE[joint_type[name]] for name in schema.JOINT_NAMES],
        "sigmas": sigmas().tolist(),
    }


# ---------------------------------------------------------------------------- detectron2


def detectron2_keypoint_metadata() -> dict:
    """Keypoint metadata in detectron2's ``MetadataCatalog`` form, from the schema.

    ``thing_classes``, ``keypoint_names`` (schema order), ``keypoint_flip_map`` (right,
    left name pairs) and ``keypoint_connection_rules`` (name, name, RGB colour per bone).
    Pass it to ``register_coco_instances`` or ``MetadataCatalog.get(name).set(**...)``.
    """
    names = schema.JOINT_NAMES
    return {
        "thing_classes": ["person"],
        "keypoint_names": list(names),
        "keypoint_flip_map": [(names[a], names[b]) for a, b in schema.FLIP_PAIRS],
        "keypoint_connection_rules": [
            (edge.a, edge.b, tuple(schema.SKELETON_COLOURS[k]))
            for k, edge in enumerate(schema.SKELETON)],
    }
