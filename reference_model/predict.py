"""End-to-end prediction with the reference model (paper Fig. 2), one image at a time.

Per image: detect people -> auto-zoom every box to a crop -> Pose FCN and Part FCN on the
crops (one batch) -> per crop, the FCRF over joint proposals of ``Pj`` with pairwise terms
from ``Pn`` and ``Ps`` -> the pose nearest the box centre, in image pixels -> second-stage
Part FCN on the part probabilities and that pose's label maps -> part probabilities of all
boxes averaged in the image (HAZN's merging) and the argmax; poses of all boxes merged by
pose NMS (paper Sec. 4.1).

The FCRF works on the networks' stride-8 grid (``PoseMaps.grid_maps``), so the paper's
distances in pixels become grid cells: the proposal NMS distance of 16 px is 2 cells, the
segment features' boundary window of 4 px is rounded up to 1 cell. A proposal sits on a
cell; its joint is placed where that cell's location refinement puts it.

Pose scores: the paper scores a pose by the sum of the log joint probabilities of its 14
joints, a missing joint counting as probability 0.2 (``fcrf.pose_scores``); that sum is
<= 0, and submissions take scores >= 0. The submitted score is ``exp(sum / 14)``, the
geometric mean of the 14 joint probabilities: strictly increasing in the paper's score,
so pose NMS and the AP ranking are unchanged, and it reads as a probability.

Ablations (paper Tables 1 and 3, and the speed claim of Sec. 1):
``use_segment_features=False`` uses the pairwise model trained without f(Ps) ("w/o seg");
``pose_refinement=False`` takes the argmax of the first-stage part probabilities ("w/o
pose"); ``full_image=True`` runs everything on the whole image at its own resolution with
no boxes (as a full-image method such as DeeperCut sees it), with the FCRF's full-image
parameters (30 proposals per type, every assembled person kept); ``gt_boxes=True``
replaces the detector by the ground-truth boxes (an oracle).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from pascal_person_pose import progress as progress_bar
from pascal_person_pose import schema
from pascal_person_pose.errors import InputError

from .autozoom import BoxTransform, crop_image, merge_part_scores
from .backbones import images_to_tensor
from .checkpoint import load_checkpoint
from .config import ModelConfig
from .detector import CenterNet, CenterNetDetector, OracleDetector
from .fcrf import (FULL_IMAGE_PARAMS, FcrfParams, FeatureParams, PairwiseModel, Pose,
                   ProposalParams, assemble_image, fcrf_box)
from .fcrf.assembly import closest_to_centre
from .part_fcn import PartFCN
from .pose_fcn import PoseFCN, PoseMaps
from .refinement import RefinementNet, second_stage_input

MODEL_FILE = "model.pt"
TRAIN_LOG = "train.json"
# Paper Sec. 4.1 and the FCRF's default feature window, in crop pixels.
PROPOSAL_DISTANCE_PX = 16.0
BOUNDARY_RADIUS_PX = 4.0
STAGES = ("detector", "fcn", "fcrf", "refinement", "merge")  # timed per image
_CROP_BATCH = 16  # crops per network call: bounds memory on images with many boxes


def pairwise_file(use_segment_features: bool) -> str:
    """File name of the pairwise model with or without segment features."""
    return "pairwise.npz" if use_segment_features else "pairwise_noseg.npz"


def proposal_params(stride: int, full_image: bool = False) -> ProposalParams:
    """The paper's proposal NMS (6 per type, p > 0.2, 16 px apart) on a stride-``stride`` grid."""
    per_type = FULL_IMAGE_PARAMS.proposals.max_per_type if full_image else 6
    return ProposalParams(max_per_type=per_type, threshold=0.2,
                          min_distance=PROPOSAL_DISTANCE_PX / stride)


def feature_params(stride: int) -> FeatureParams:
    """Segment-feature parameters on a stride-``stride`` grid (window of at least a cell)."""
    return FeatureParams(boundary_radius=max(1, math.ceil(BOUNDARY_RADIUS_PX / stride)))


def fcrf_params(stride: int, full_image: bool = False) -> FcrfParams:
    """FCRF parameters per box, or for a whole image (``fcrf.FULL_IMAGE_PARAMS``)."""
    base = FULL_IMAGE_PARAMS if full_image else FcrfParams()
    return replace(base, proposals=proposal_params(stride, full_image))


def submission_score(log_score: float | np.ndarray) -> float | np.ndarray:
    """The paper's pose score (sum of 14 log joint probabilities) as a score in (0, 1]."""
    return np.exp(np.asarray(log_score, np.float64) / schema.NUM_JOINTS)


@dataclass
class Networks:
    """The four networks of one config."""

    config: ModelConfig
    detector: CenterNet
    pose: PoseFCN
    part: PartFCN
    refine: RefinementNet

    @classmethod
    def build(cls, config: ModelConfig) -> Networks:
        """Freshly initialised networks (torch's global generator decides the weights)."""
        return cls(config, CenterNet(config.detector), PoseFCN(config.pose),
                   PartFCN(config.part), RefinementNet(config.refine))

    def modules(self) -> dict[str, torch.nn.Module]:
        """The networks by the names checkpoints store them under."""
        return {"detector": self.detector, "pose": self.pose, "part": self.part,
                "refine": self.refine}


def _train_data(log: Path) -> str:
    """The dataset a training directory was trained on, as its ``train.json`` records it."""
    try:
        return str(json.loads(log.read_text(encoding="utf-8"))["data"])
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown data"


@torch.no_grad()
def run_fcns(pose: PoseFCN, part: PartFCN, crops: np.ndarray,
             device: torch.device) -> tuple[list[PoseMaps], torch.Tensor]:
    """Pose maps and first-stage part logits ``(B, 7, h, w)`` (on ``device``) of uint8 crops."""
    pose.eval()
    part.eval()
    x = images_to_tensor(crops).to(device)
    return pose.decode(pose(x)), part(x)


def crop_poses(maps: PoseMaps, part_probs: np.ndarray, pairwise: PairwiseModel,
               params: FcrfParams) -> list[Pose]:
    """Every person the FCRF assembles in one crop, in crop pixels, best first.

    ``part_probs`` ``(7, h, w)``: the crop's part probabilities on the same grid as
    ``maps``. Each selected proposal (a grid cell) becomes the joint its cell's location
    refinement predicts; column 2 is the joint's probability, the score the paper's sum of
    log joint probabilities.
    """
    Pj, Pn = maps.grid_maps()
    result = fcrf_box(Pj, Pn, np.moveaxis(part_probs, 0, -1), pairwise, params)
    poses = []
    for pose in result.poses:
        keypoints = pose.keypoints.copy()
        present = np.flatnonzero(keypoints[:, 2] > 0)
        cx, cy = np.rint(keypoints[present, :2]).astype(np.int64).T
        keypoints[present, :2] = maps.joints[present, cy, cx]
        poses.append(Pose(keypoints, pose.score))
    return poses


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


class ReferenceModel:
    """Trained networks and pairwise models on one device; :meth:`predict` runs Fig. 2."""

    def __init__(self, networks: Networks, pairwise: dict[bool, PairwiseModel],
                 device: str | torch.device = "cpu", train_data: str = "unknown data"):
        self.train_data = train_data  # where the training split came from, for meta.json
        self.device = torch.device(device)
        self.networks = networks
        for module in networks.modules().values():
            module.to(self.device).eval()
        self.config = networks.config
        self.pairwise = pairwise
        self.detector = CenterNetDetector(networks.detector, self.config.detector)

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str | torch.device = "cpu",
             need_segment_features: tuple[bool, ...] = (True, False)) -> ReferenceModel:
        """Load what ``ppp-baseline train`` wrote into ``directory``."""
        directory = Path(directory)
        if not (directory / MODEL_FILE).is_file():
            raise InputError(directory / MODEL_FILE,
                             "no trained model here; run `ppp-baseline train` first")
        checkpoint = load_checkpoint(directory / MODEL_FILE)
        networks = Networks.build(checkpoint.config)
        checkpoint.restore(networks.modules())
        pairwise = {}
        for use_segment in need_segment_features:
            path = directory / pairwise_file(use_segment)
            if not path.is_file():
                raise InputError(path, "pairwise model missing: training stopped before the "
                                       "FCRF stage; resume `ppp-baseline train`")
            pairwise[use_segment] = PairwiseModel.load(path)
        return cls(networks, pairwise, device, _train_data(directory / TRAIN_LOG))

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def predict(self, image: np.ndarray, options: PredictOptions = PredictOptions(),
                gt_boxes: np.ndarray | None = None) -> ImagePrediction:
        """Poses and part map of one RGB uint8 image.

        ``gt_boxes`` (COCO ``[x, y, w, h]``) are used instead of detections when
        ``options.gt_boxes`` is set.
        """
        height, width = image.shape[:2]
        stride = self.networks.pose.stride
        seconds = dict.fromkeys(STAGES, 0.0)
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            self._sync()
            now = time.perf_counter()
            seconds[stage] += now - clock
            clock = now

        if options.full_image:
            transforms = [BoxTransform.fit_image(width, height, max(width, height),
                                                 self.networks.pose.backbone.out.stride)]
            boxes = np.array([[0, 0, width, height]], np.float32)
        else:
            if options.gt_boxes:
                if gt_boxes is None:
                    raise ValueError("gt_boxes is set but no ground-truth boxes were given")
                boxes, _ = OracleDetector.from_coco(gt_boxes).detect(image)
            else:
                boxes, _ = self.detector.detect(image)
            zoom = self.config.zoom
            transforms = [BoxTransform.around_box(b, zoom.crop_size, zoom.margin) for b in boxes]
        lap("detector")

        params = fcrf_params(stride, options.full_image)
        pairwise = self.pairwise[options.use_segment_features]
        probabilities = []
        image_poses: list[Pose] = []
        for start in range(0, len(transforms), _CROP_BATCH):
            chunk = transforms[start:start + _CROP_BATCH]
            crops = np.stack([crop_image(image, t) for t in chunk])
            maps, logits = run_fcns(self.networks.pose, self.networks.part, crops, self.device)
            part_probs = torch.softmax(logits, dim=1).cpu().numpy()
            lap("fcn")
            chunk_poses = []
            for k, t in enumerate(chunk):
                poses = crop_poses(maps[k], part_probs[k], pairwise, params)
                in_image = [Pose(t.keypoints_to_image(p.keypoints), p.score) for p in poses]
                if not options.full_image:  # the paper keeps one pose per box
                    best = closest_to_centre(in_image, boxes[start + k])
                    keep = [i for i, q in enumerate(in_image) if q is best]
                    poses, in_image = [poses[i] for i in keep], [in_image[i] for i in keep]
                image_poses += in_image
                chunk_poses.append(np.stack([p.keypoints for p in poses]) if poses
                                   else np.zeros((0, schema.NUM_JOINTS, 3), np.float32))
            lap("fcrf")
            if options.pose_refinement:
                refine = self.networks.refine
                with torch.no_grad():
                    x = second_stage_input(logits, chunk_poses, self.config.refine, stride)
                    part_probs = torch.softmax(refine(x), dim=1).cpu().numpy()
            probabilities += list(part_probs)
            lap("refinement")

        grids = [t.at_stride(stride) for t in transforms]
        part_map = merge_part_scores(probabilities, grids, height, width).argmax(0)
        kept = assemble_image(image_poses)
        keypoints = (np.stack([p.keypoints for p in kept]) if kept
                     else np.zeros((0, schema.NUM_JOINTS, 3), np.float32))
        scores = submission_score(np.array([p.score for p in kept], np.float64))
        lap("merge")
        return ImagePrediction(keypoints.astype(np.float32), scores.astype(np.float32),
                               part_map.astype(np.uint8), boxes.astype(np.float32), seconds)


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
    from pascal_person_pose.dataset import Dataset
    from pascal_person_pose.submission import write_submission

    dataset = Dataset(root, split)
    records, part_maps = [], {}
    seconds = dict.fromkeys(STAGES, 0.0)
    boxes = 0
    for sample in progress_bar.bar(dataset, desc=f"predict {split}", total=len(dataset),
                                   unit="image", enabled=progress):
        result = model.predict(sample.image, options, sample.boxes)
        records += [{"image_id": sample.image_id, "keypoints": k.ravel().tolist(),
                     "score": float(s)} for k, s in zip(result.keypoints, result.scores)]
        part_maps[sample.voc_id] = result.part_map
        boxes += len(result.boxes)
        for stage, value in result.seconds.items():
            seconds[stage] += value
    # A submission holds a task only with content: no pose at all leaves pose.json out.
    path = write_submission(out, records or None, part_maps, meta)
    return SplitPrediction(path, len(dataset), len(records), boxes, seconds)
