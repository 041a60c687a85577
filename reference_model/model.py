"""The trained reference model: its directory, and what it says about person crops.

A training directory (``ppp-baseline train`` writes it, :meth:`ReferenceModel.load` reads
it, and every file is checked as it is read, so a damaged one ends in one line naming it):

- ``model.pt``: the four networks and their config (``checkpoint`` format);
- ``pairwise.npz`` / ``pairwise_noseg.npz``: the FCRF's pairwise model with and without
  segment features (the "w/o seg" ablation of Table 1);
- ``train.json``: what was trained, on what, how (budget, seed, losses, seconds);
- ``state/``: each stage's resumable state, and the second stage's cached inputs.

Per crop (paper Fig. 2 inside one box, :meth:`ReferenceModel.infer_crops`): the Pose FCN
and the Part FCN run on a batch of auto-zoomed crops; their stride-8 maps are upsampled to
the crop (``Pj`` and ``Ps`` bilinearly; ``Pn`` and the location refinement stay on the
grid, read in the cell of each proposal); the FCRF takes proposals by pixel-level NMS and
assembles people; the box keeps the best-scored one centred inside it (the paper: the one
nearest its centre, Sec. 3.1; see ``fcrf.assembly.box_person``);
the second-stage Part FCN reads the first-stage part probabilities and that pose's label
maps. Distances are the config's ``fcrf`` section, in crop pixels.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from pascal_person_pose import safe_json, schema
from pascal_person_pose.errors import InputError

from .backbones import images_to_tensor
from .checkpoint import load_checkpoint
from .config import ModelConfig
from .detector import CenterNet, CenterNetDetector
from .fcrf import (FULL_IMAGE_PARAMS, FcrfParams, FeatureParams, PairwiseModel, Pose,
                   ProposalParams, ScoreMaps, fcrf_box)
from .fcrf.assembly import box_person
from .part_fcn import PartFCN, upsample
from .pose_fcn import PoseFCN, PoseMaps
from .refinement import RefinementNet, second_stage_input
from .targets import cell_centres

MODEL_FILE = "model.pt"
TRAIN_LOG = "train.json"
STATE_DIR = "state"
CROP_BATCH = 16  # crops per network call: bounds memory on images with many boxes


def pairwise_file(use_segment_features: bool) -> str:
    """File name of the pairwise model with or without segment features."""
    return "pairwise.npz" if use_segment_features else "pairwise_noseg.npz"


def proposal_params(config: ModelConfig, full_image: bool = False) -> ProposalParams:
    """The config's proposal NMS; a whole image takes more proposals per type."""
    per_type = (FULL_IMAGE_PARAMS.proposals.max_per_type if full_image
                else config.fcrf.proposals_per_type)
    return ProposalParams(per_type, config.fcrf.proposal_threshold,
                          config.fcrf.proposal_distance)


def feature_params(config: ModelConfig) -> FeatureParams:
    return FeatureParams(boundary_radius=config.fcrf.boundary_radius)


def fcrf_params(config: ModelConfig, full_image: bool = False) -> FcrfParams:
    """FCRF parameters for a box, or for a whole image (``FULL_IMAGE_PARAMS``)."""
    proposals = proposal_params(config, full_image)
    if full_image:
        return replace(FULL_IMAGE_PARAMS, proposals=proposals,
                       time_limit=config.fcrf.full_image_time_limit)
    return FcrfParams(proposals=proposals, time_limit=config.fcrf.time_limit)


@dataclass
class Networks:
    """The four networks of one config."""

    config: ModelConfig
    detector: CenterNet
    pose: PoseFCN
    part: PartFCN
    refine: RefinementNet

    @classmethod
    def build(cls, config: ModelConfig, seed: int | None = None) -> Networks:
        """Freshly initialised networks. With ``seed``, each network draws its weights from
        a generator of its own (seeded by ``seed`` and its position), so that a change to
        one network's architecture leaves the others' initial weights, and torch's global
        generator, as they were; without, the global generator decides."""
        builders = (lambda: CenterNet(config.detector), lambda: PoseFCN(config.pose),
                    lambda: PartFCN(config.part), lambda: RefinementNet(config.refine))
        if seed is None:
            return cls(config, *(build() for build in builders))
        networks = []
        for position, build in enumerate(builders):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(np.random.SeedSequence((seed, position))
                                      .generate_state(1)[0]))
                networks.append(build())
        return cls(config, *networks)

    def modules(self) -> dict[str, torch.nn.Module]:
        """The networks by the names checkpoints store them under."""
        return {"detector": self.detector, "pose": self.pose, "part": self.part,
                "refine": self.refine}

    def to(self, device: torch.device) -> Networks:
        for module in self.modules().values():
            module.to(device)
        return self


class Stopwatch:
    """Seconds per named stage, waiting for the device before each reading."""

    def __init__(self, device: torch.device, stages: Sequence[str]):
        self.device = device
        self.seconds = dict.fromkeys(stages, 0.0)
        self.clock = time.perf_counter()

    def lap(self, stage: str) -> None:
        """Charge the time since the last lap to ``stage``."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.seconds[stage] += now - self.clock
        self.clock = now


@dataclass
class FcnMaps:
    """What the two first-stage FCNs say about a batch of crops."""

    pose: list[PoseMaps]  # per crop, on the stride-8 grid
    part_logits: torch.Tensor  # (B, 7, h, w) on the grid, on the networks' device
    joint_probs: np.ndarray  # (B, H, W, 14) Pj upsampled to the crop
    part_probs: np.ndarray  # (B, H, W, 7) Ps upsampled to the crop

    def score_maps(self, k: int) -> ScoreMaps:
        """The FCRF's input for crop ``k``: crop-pixel ``Pj`` and ``Ps``; ``Pn`` and the
        location refinement on the grid, in crop pixels."""
        maps = self.pose[k]
        _, h, w = maps.scores.shape
        offsets = np.moveaxis(maps.offsets, (2, 3), (0, 1)).reshape(h, w, -1)
        refinement = np.moveaxis(maps.joints - cell_centres(h, w, maps.stride), 0, 2)
        return ScoreMaps(self.joint_probs[k], offsets, self.part_probs[k], maps.stride,
                         refinement)


@dataclass
class CropResult:
    """What the model says about one crop, in crop coordinates."""

    poses: list[Pose]  # the box's pose (none or one), or every person of a whole image
    part_probs: np.ndarray  # (7, h, w) final part probabilities on the stride-8 grid


class ReferenceModel:
    """Trained networks and pairwise models on one device."""

    def __init__(self, networks: Networks, pairwise: dict[bool, PairwiseModel],
                 device: str | torch.device = "cpu", train_data: str = "unknown data"):
        self.train_data = train_data  # where the training split came from, for meta.json
        self.device = torch.device(device)
        self.networks = networks.to(self.device)
        for module in networks.modules().values():
            module.eval()
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
        networks = build_networks(checkpoint.config, directory / MODEL_FILE)
        checkpoint.restore(networks.modules())
        pairwise = {}
        for use_segment in need_segment_features:
            path = directory / pairwise_file(use_segment)
            if not path.is_file():
                raise InputError(path, "pairwise model missing: training stopped before the "
                                       "FCRF stage; resume `ppp-baseline train`")
            pairwise[use_segment] = PairwiseModel.load(path)
            if pairwise[use_segment].use_segment_features != use_segment:
                raise InputError(path, f"use_segment_features is "
                                       f"{not use_segment}, expected {use_segment}",
                                 field="use_segment_features")
        return cls(networks, pairwise, device, train_data(directory))

    @torch.no_grad()
    def fcn_maps(self, crops: np.ndarray) -> FcnMaps:
        """The first-stage FCNs on uint8 crops ``(B, H, W, 3)``."""
        pose, part = self.networks.pose, self.networks.part
        pose.eval()
        part.eval()
        x = images_to_tensor(crops).to(self.device)
        height, width = crops.shape[1:3]
        output, logits = pose(x), part(x)
        joint_probs = torch.sigmoid(upsample(output.scores, height, width, pose.stride))
        part_probs = torch.softmax(upsample(logits, height, width, part.stride), dim=1)
        return FcnMaps(pose.decode(output), logits,
                       joint_probs.permute(0, 2, 3, 1).cpu().numpy(),
                       part_probs.permute(0, 2, 3, 1).cpu().numpy())

    def people(self, maps: FcnMaps, k: int, use_segment_features: bool = True,
               full_image: bool = False) -> list[Pose]:
        """Every person the FCRF assembles in crop ``k``, crop pixels, best first."""
        return fcrf_box(maps.score_maps(k), self.pairwise[use_segment_features],
                        fcrf_params(self.config, full_image)).poses

    @torch.no_grad()
    def second_stage(self, part_logits: torch.Tensor,
                     poses: Sequence[np.ndarray]) -> np.ndarray:
        """Part probabilities ``(B, 7, h, w)`` of the second stage, from the first stage's
        logits and each crop's poses ``(P, 14, 3)`` in crop pixels."""
        refine = self.networks.refine
        refine.eval()
        x = second_stage_input(part_logits, poses, self.config.refine, self.networks.pose.stride)
        return torch.softmax(refine(x), dim=1).cpu().numpy()

    def infer_crops(self, crops: np.ndarray, boxes: np.ndarray | None,
                    use_segment_features: bool = True, pose_refinement: bool = True,
                    stopwatch: Stopwatch | None = None) -> list[CropResult]:
        """Poses and part probabilities of uint8 crops ``(B, H, W, 3)``.

        ``boxes`` ``(B, 4)``: each crop's box in crop pixel edges; the best-scored pose
        centred inside it is kept. ``None``: the crops are whole images, every person is kept.
        """
        stopwatch = stopwatch or Stopwatch(self.device, ("fcn", "fcrf", "refinement"))
        maps = self.fcn_maps(crops)
        stopwatch.lap("fcn")
        poses = []
        for k in range(len(crops)):
            people = self.people(maps, k, use_segment_features, full_image=boxes is None)
            poses.append(people if boxes is None else box_pose(people, boxes[k]))
        stopwatch.lap("fcrf")
        if pose_refinement:
            part_probs = self.second_stage(maps.part_logits, [stack(p) for p in poses])
        else:
            part_probs = torch.softmax(maps.part_logits, dim=1).cpu().numpy()
        stopwatch.lap("refinement")
        return [CropResult(p, probs) for p, probs in zip(poses, part_probs)]


def box_pose(people: Sequence[Pose], box: np.ndarray) -> list[Pose]:
    """The paper's one pose per box (none or one): the best-scored person centred inside
    the box (``fcrf.assembly.box_person``; the paper: the one nearest its centre)."""
    best = box_person(people, box)
    return [] if best is None else [best]


def stack(poses: Sequence[Pose]) -> np.ndarray:
    """Keypoints ``(P, 14, 3)`` of poses (``(0, 14, 3)`` for none)."""
    return (np.stack([p.keypoints for p in poses]).astype(np.float32) if poses
            else np.zeros((0, schema.NUM_JOINTS, 3), np.float32))


def build_networks(config: ModelConfig, source: str | os.PathLike) -> Networks:
    """The networks of a config read from ``source``; one that cannot build is bad input."""
    try:
        return Networks.build(config)
    except (ValueError, RuntimeError) as error:
        raise InputError(source, f"its config does not build the networks ({error})",
                         field="config") from None


def train_data(directory: Path) -> str:
    """The dataset a training directory was trained on, as its ``train.json`` says."""
    try:
        log = safe_json.load(directory / TRAIN_LOG)
    except InputError:  # no log, or a damaged one: the data is only named in meta.json
        return "unknown data"
    data = log.get("data") if isinstance(log, dict) else None
    return data if isinstance(data, str) else "unknown data"
