"""Prediction with the reference model: the image loop and the submission writer.

Per image (paper Fig. 2): detect people -> auto-zoom every box to a crop -> the model's
per-crop inference (``model.ReferenceModel.infer_crops``: FCNs, FCRF, one pose per box,
second stage) -> poses back in image pixels, merged by pose NMS (paper Sec. 4.1); part
probabilities of all boxes averaged in the image (HAZN's merging) and the argmax.

Pose scores: the paper scores a pose by the sum of the log joint probabilities of its 14
joints, a missing joint counting as probability 0.2 (``fcrf.pose_scores``); that sum is
<= 0, and submissions take scores >= 0. The submitted score is ``exp(sum / 14)``, the
geometric mean of the 14 joint probabilities: strictly increasing in the paper's score,
so pose NMS and the AP ranking are unchanged, and it reads as a probability. Each
probability is first multiplied by the detection score of the pose's box
(``fcrf.weighted_by_box``), and the part probabilities of overlapping boxes are averaged
weighted by those scores: the paper's detector kept only boxes above 0.6, so its poses and
parts came from sure boxes; a weaker detector's doubtful boxes must count less (ground-truth
boxes score 1, so the ``gt_boxes`` oracle is not weighted).

Ablations (paper Tables 1 and 3, and the speed claim): ``use_segment_features=False`` uses
the pairwise model trained without f(Ps) ("w/o seg"); ``pose_refinement=False`` takes the
first-stage part probabilities ("w/o pose"); ``gt_boxes=True`` replaces the detector by
the ground-truth boxes (an oracle); ``full_image=True`` runs the FCNs and the FCRF once on
the whole image, with the FCRF's full-image parameters (30 proposals per type, every
person kept) and no boxes, resized so that its median person (of the detector's boxes, or
of the GT boxes with ``gt_boxes``) is at the scale the FCNs were trained at: what a
full-image method such as DeeperCut sees, with the person scale as its only hint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pascal_person_pose import progress as progress_bar
from pascal_person_pose import schema
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.submission import write_submission

from .autozoom import BoxTransform, crop_image, merge_part_scores
from .detector import OracleDetector
from .fcrf import Pose, assemble_image, weighted_by_box
from .model import CROP_BATCH, ReferenceModel, Stopwatch, stack

STAGES = ("detector", "fcn", "fcrf", "refinement", "merge")  # timed per image
MAX_FULL_IMAGE_SIDE = 4096  # pixels: a cap on the full-image ablation's zoom


def submission_score(log_score: float | np.ndarray) -> float | np.ndarray:
    """The paper's pose score (sum of 14 log joint probabilities) as a score in (0, 1]."""
    return np.exp(np.asarray(log_score, np.float64) / schema.NUM_JOINTS)


@dataclass(frozen=True)
class PredictOptions:
    """The switches of the paper's ablations (all off: the full model)."""

    use_segment_features: bool = True
    pose_refinement: bool = True
    full_image: bool = False
    gt_boxes: bool = False

    def label(self) -> str:
        """A short name of the variant, e.g. for a submission's method name."""
        off = [name for name, on in (("w/o seg", not self.use_segment_features),
                                     ("w/o pose", not self.pose_refinement),
                                     ("full image", self.full_image),
                                     ("GT boxes", self.gt_boxes)) if on]
        return ", ".join(off) or "final"


@dataclass
class ImagePrediction:
    """What the model says about one image."""

    keypoints: np.ndarray  # (P, 14, 3) image pixels, column 2 the joint probability
    scores: np.ndarray  # (P,) submission scores in (0, 1] (see the module docstring)
    part_map: np.ndarray  # (H, W) uint8 part ids
    boxes: np.ndarray  # (N, 4) the boxes used, x1, y1, x2, y2 pixel edges
    seconds: dict[str, float] = field(default_factory=dict)  # per stage


def full_image_transform(model: ReferenceModel, boxes: np.ndarray, width: int,
                         height: int) -> BoxTransform:
    """The whole image, resized so that the median of ``boxes`` is auto-zoomed as in
    training (unchanged without boxes), padded to the Pose FCN's stride."""
    zoom = model.config.zoom
    scales = [BoxTransform.around_box(b, zoom.crop_size, zoom.margin).scale for b in boxes]
    scale = float(np.median(scales)) if scales else 1.0
    side = min(round(max(width, height) * scale), MAX_FULL_IMAGE_SIDE)
    return BoxTransform.fit_image(width, height, max(side, 1),
                                  model.networks.pose.backbone.out.stride)


def predict_image(model: ReferenceModel, image: np.ndarray,
                  options: PredictOptions = PredictOptions(),
                  gt_boxes: np.ndarray | None = None) -> ImagePrediction:
    """Poses and part map of one RGB uint8 image.

    ``gt_boxes`` (COCO ``[x, y, w, h]``) are used instead of detections when
    ``options.gt_boxes`` is set.
    """
    height, width = image.shape[:2]
    stopwatch = Stopwatch(model.device, STAGES)
    if options.gt_boxes:
        if gt_boxes is None:
            raise ValueError("gt_boxes is set but no ground-truth boxes were given")
        boxes, box_scores = OracleDetector.from_coco(gt_boxes).detect(image)
    else:
        boxes, box_scores = model.detector.detect(image)
    if options.full_image:
        transforms = [full_image_transform(model, boxes, width, height)]
        crop_boxes = None
        box_scores = np.ones(1, np.float32)  # no box: the FCRF's poses as they are
    else:
        zoom = model.config.zoom
        transforms = [BoxTransform.around_box(b, zoom.crop_size, zoom.margin) for b in boxes]
        crop_boxes = np.array([t.boxes_to_crop(b) for t, b in zip(transforms, boxes)],
                              np.float32).reshape(-1, 4)
    stopwatch.lap("detector")

    probabilities, poses = [], []
    for start in range(0, len(transforms), CROP_BATCH):
        chunk = transforms[start:start + CROP_BATCH]
        crops = np.stack([crop_image(image, t) for t in chunk])
        results = model.infer_crops(
            crops, None if crop_boxes is None else crop_boxes[start:start + CROP_BATCH],
            options.use_segment_features, options.pose_refinement, stopwatch)
        for t, result, box_score in zip(chunk, results, box_scores[start:]):
            poses += [weighted_by_box(Pose(t.keypoints_to_image(p.keypoints), p.score),
                                      float(box_score)) for p in result.poses]
            probabilities.append(result.part_probs)

    stride = model.networks.pose.stride
    grids = [t.at_stride(stride) for t in transforms]
    part_map = merge_part_scores(probabilities, grids, height, width, box_scores).argmax(0)
    kept = assemble_image(poses)
    scores = submission_score(np.array([p.score for p in kept], np.float64))
    stopwatch.lap("merge")
    used = np.array([[0, 0, width, height]], np.float32) if options.full_image else boxes
    return ImagePrediction(stack(kept), scores.astype(np.float32),
                           part_map.astype(np.uint8), used.astype(np.float32).reshape(-1, 4),
                           stopwatch.seconds)


@dataclass
class SplitPrediction:
    """What :func:`predict_split` wrote, and how long each stage took in total."""

    path: Path
    images: int
    poses: int
    boxes: int
    seconds: dict[str, float]

    def per_image_ms(self) -> dict[str, float]:
        return {k: 1000 * v / max(self.images, 1) for k, v in self.seconds.items()}


def predict_split(model: ReferenceModel, root: str | os.PathLike, split: str,
                  out: str | os.PathLike, options: PredictOptions = PredictOptions(),
                  meta: dict | None = None, progress: bool = True) -> SplitPrediction:
    """Predict every image of ``split`` and write a submission (directory or .zip)."""
    dataset = Dataset(root, split)
    records, part_maps = [], {}
    seconds = dict.fromkeys(STAGES, 0.0)
    boxes = 0
    for sample in progress_bar.bar(dataset, desc=f"predict {split}", total=len(dataset),
                                   unit="image", enabled=progress):
        result = predict_image(model, sample.image, options, sample.boxes)
        records += [{"image_id": sample.image_id, "keypoints": k.ravel().tolist(),
                     "score": float(s)} for k, s in zip(result.keypoints, result.scores)]
        part_maps[sample.voc_id] = result.part_map
        boxes += len(result.boxes)
        for stage, value in result.seconds.items():
            seconds[stage] += value
    # A submission holds a task only with content: no pose at all leaves pose.json out.
    path = write_submission(out, records or None, part_maps, meta)
    return SplitPrediction(path, len(dataset), len(records), boxes, seconds)
