"""Stage-wise training of the reference model (paper Sec. 3.2: "first learn Pose FCN and the
first-stage Part FCN, then the FCRF, and finally the second-stage Part FCN").

Stages, in order, each resumable:

1. ``detector``: CenterNet on whole training images, randomly rescaled, shifted and
   flipped into a square window of the detector's input size.
2. ``fcn``: Pose FCN and Part FCN together, on auto-zoomed crops around jittered GT boxes
   (centre shift, scale, flip), as the detector's boxes will place people at test time.
   The Pose FCN's offset normalisation is fitted first from the GT people of the crops.
3. ``pairwise``: the FCRF's logistic regressions, on the pairs of true proposals (both
   near a GT joint of their type) of the trained Pose FCN in the GT box of every training
   person, labelled same-person from the GT (:func:`true_pair_examples` says why only
   those); two models, with and without segment features (the "w/o seg" ablation of
   Table 1).
4. ``refine``: the second-stage Part FCN, on the first-stage part logits and the pose the
   FCRF infers in jittered training crops (``refine_passes`` crops per person), computed
   once and cached.

Output directory: ``model.pt`` (the four networks and the config: what ``predict`` loads),
``pairwise.npz`` and ``pairwise_noseg.npz``, ``train.json`` (budget, seed, processes,
loss history, seconds per stage), ``state/<stage>.pt`` (resumable states, saved every
``checkpoint_every`` steps) and ``state/refine_cache.npz``. Running the same command again
resumes where it stopped; finished stages are loaded, not retrained.

Determinism: every process seeds torch, numpy and Python with the seed; the data order of
an epoch is ``DistributedSampler(seed, epoch)``, and every crop's augmentation comes from
a generator seeded by ``(seed, stage, epoch, item)``, never from a global generator, so a
run resumed mid-epoch replays the same crops whatever the number of loader workers. The
networks' own randomness (dropout) draws from torch's global generator, which each state
saves. On CPU with one process, resumed training is bit-identical to an uninterrupted run.

Distributed: started by ``torchrun --nproc-per-node N``, each process trains on its shard
of every epoch (``DistributedSampler``) with ``DistributedDataParallel`` (NCCL on GPUs, gloo
on CPUs); ``batch_size`` is per process. The inference of stages 3 and 4 is sharded too and
gathered; process 0 writes every file.

Optimiser: Adam with a linear warm-up over the first 5% of a stage and a cosine decay to
5% of the rate (our choice for short CPU budgets; the paper does not state its solver
settings beyond "roughly 3 days" of training).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler
from torch.utils.data import Dataset as TorchDataset

from pascal_person_pose import atomic, schema
from pascal_person_pose import progress as progress_bar
from pascal_person_pose.dataset import Dataset, Sample
from pascal_person_pose.errors import InputError

from .autozoom import BoxTransform, crop_image, crop_labels
from .backbones import images_to_tensor, load_torchvision_weights
from .checkpoint import load_checkpoint, save_checkpoint, seed_everything
from .config import ModelConfig, ZoomConfig, config_to_dict
from .detector import CenterNet
from .fcrf import (FcrfParams, FeatureParams, PairwiseModel, PartRegions, ProposalParams,
                   ScoreMaps, joint_proposals, pair_features)
from .fcrf.assembly import closest_to_centre
from .fcrf.training import proposal_owners
from .losses import detector_loss, part_loss, pose_loss
from .predict import (MODEL_FILE, TRAIN_LOG, Networks, crop_poses, fcrf_params, feature_params,
                      pairwise_file, proposal_params, run_fcns)
from .refinement import second_stage_input
from .targets import (OffsetStats, collate as collate_targets, detector_targets,
                      fit_offset_stats, pixels_to_grid, pose_targets)

STAGES = ("detector", "fcn", "pairwise", "refine")
_SEED_SALT = {"detector": 0, "fcn": 1}  # per stage, in the seeds of its augmentations
STATE_DIR = "state"
REFINE_CACHE = "refine_cache.npz"
_MIN_BOX_PX = 2.0  # a person the detector window cuts thinner than this is no target


@dataclass(frozen=True)
class TrainBudget:
    """How long and on what each stage trains (``batch_size``: crops per step and process)."""

    detector_steps: int
    fcn_steps: int
    refine_steps: int
    batch_size: int
    detector_batch_size: int
    lr: float = 2e-3  # Pose and Part FCNs
    detector_lr: float = 5e-3
    refine_lr: float = 3e-3
    weight_decay: float = 1e-4
    box_jitter: float = 0.1  # crop centre shift, as a fraction of the box's width/height
    scale_jitter: float = 0.25  # box scale multiplied by exp(U(-s, s))
    detector_scale_jitter: float = 0.25  # image scale multiplied by exp(U(-s, s))
    refine_passes: int = 1  # jittered crops per training person for the second stage
    checkpoint_every: int = 100
    workers: int = 0  # data-loader processes per training process

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            positive = f.name.endswith(("batch_size", "checkpoint_every", "refine_passes"))
            if value < 0 or (positive and value < 1):
                raise InputError(None, f"training budget {f.name} must be "
                                       f"{'>= 1' if positive else '>= 0'}, got {value}")


# The paper trained "roughly 3 days" without stating its schedule; these are ours. The tiny
# budget trains the demo (160 synthetic training images of 320x240) in 7.5 minutes on one
# CPU core (detector 3.7, FCNs 3.2, second stage 0.6).
BUDGETS: dict[str, TrainBudget] = {
    "paper": TrainBudget(detector_steps=60_000, fcn_steps=60_000, refine_steps=20_000,
                         batch_size=8, detector_batch_size=16, lr=1e-4, detector_lr=1e-4,
                         refine_lr=1e-4, refine_passes=2, checkpoint_every=1000, workers=4),
    "tiny": TrainBudget(detector_steps=800, fcn_steps=800, refine_steps=600, batch_size=16,
                        detector_batch_size=8),
}


def learning_rate(step: int, steps: int, base: float) -> float:
    """Linear warm-up over 5% of the stage, then cosine decay to 5% of ``base``."""
    warmup = max(1, steps // 20)
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


# ------------------------------------------------------------------------ processes


@dataclass(frozen=True)
class Runtime:
    """This process: its rank among ``world`` processes and its device."""

    rank: int
    world: int
    device: torch.device

    @classmethod
    def start(cls, device: str = "auto") -> Runtime:
        """Join the process group torchrun describes (``WORLD_SIZE`` > 1), pick the device."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device == "auto":
            device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
        elif device == "cuda":
            device = f"cuda:{local}"
        resolved = torch.device(device)
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        if world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo")
        rank = dist.get_rank() if world > 1 else 0
        return cls(rank, world, resolved)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def gather(self, items: list) -> list:
        """Every process's ``items`` of its shard ``k = rank, rank + world, ...``, in ``k``
        order, on every process."""
        if self.world == 1:
            return items
        shards: list = [None] * self.world
        dist.all_gather_object(shards, items)
        merged = []
        for k in range(max(len(s) for s in shards)):
            merged += [s[k] for s in shards if k < len(s)]
        return merged

    def wrap(self, module: nn.Module) -> nn.Module:
        if self.world == 1:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)


# ------------------------------------------------------------------------------ data


def _item_rng(seed: int, stage: str, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SEED_SALT[stage], epoch, index])


def _edges(coco_boxes: np.ndarray) -> np.ndarray:
    """COCO ``[x, y, w, h]`` -> ``x1, y1, x2, y2`` pixel edges."""
    b = np.asarray(coco_boxes, np.float32).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def _flip_keypoints(keypoints: np.ndarray, width: int) -> np.ndarray:
    """Mirror crop keypoints ``(G, 14, 3)``: x -> width - 1 - x, left and right swapped."""
    out = keypoints.copy()
    labelled = out[..., 2] > 0
    out[..., 0] = np.where(labelled, width - 1 - out[..., 0], 0)
    return out[:, schema.FLIP_INDEX]


@dataclass
class Crop:
    """One auto-zoomed person crop and everything it is trained or labelled with."""

    image_index: int
    transform: BoxTransform
    flipped: bool  # the crop is mirrored after cropping
    image: np.ndarray  # (s, s, 3) uint8
    labels: np.ndarray  # (s, s) uint8 part ids, 255 outside the image
    keypoints: np.ndarray  # (G, 14, 3) every person of the image, crop pixels
    box: np.ndarray  # (4,) the person's box in crop pixel edges


def crop_labels_of(sample: Sample, transform: BoxTransform, flipped: bool) -> np.ndarray:
    """The part labels of a (possibly mirrored) crop."""
    labels = crop_labels(sample.part_map, transform)
    return np.ascontiguousarray(labels[:, ::-1]) if flipped else labels


def person_crop(sample: Sample, image_index: int, box: np.ndarray, zoom: ZoomConfig,
                rng: np.random.Generator | None = None, box_jitter: float = 0.0,
                scale_jitter: float = 0.0) -> Crop:
    """The crop of ``box`` (pixel edges); with ``rng``, a jittered and maybe mirrored one."""
    box = np.asarray(box, np.float64)
    flipped = False
    if rng is not None:
        size = box[2:] - box[:2]
        centre = (box[:2] + box[2:]) / 2 + rng.uniform(-box_jitter, box_jitter, 2) * size
        half = size * np.exp(rng.uniform(-scale_jitter, scale_jitter)) / 2
        box = np.concatenate([centre - half, centre + half])
        flipped = bool(rng.random() < 0.5)
    t = BoxTransform.around_box(box, zoom.crop_size, zoom.margin)
    image = crop_image(sample.image, t)
    keypoints = t.keypoints_to_crop(sample.keypoints)
    crop_box = t.boxes_to_crop(box)
    if flipped:
        image = np.ascontiguousarray(image[:, ::-1])
        keypoints = _flip_keypoints(keypoints, t.width)
        crop_box = np.array([t.width - crop_box[2], crop_box[1], t.width - crop_box[0],
                             crop_box[3]], np.float32)
    return Crop(image_index, t, flipped, image, crop_labels_of(sample, t, flipped),
                keypoints, crop_box)


def training_persons(dataset: Dataset) -> list[tuple[int, int, np.ndarray]]:
    """(image index, person index, box edges) of every person of the split whose box has
    a positive size."""
    persons = []
    for index in range(len(dataset)):
        for person, box in enumerate(_edges(dataset[index].boxes)):
            if (box[2:] > box[:2]).all():
                persons.append((index, person, box))
    return persons


class PersonCrops(TorchDataset):
    """Jittered crops of the training persons; ``epoch`` selects the augmentations."""

    def __init__(self, dataset: Dataset, zoom: ZoomConfig, budget: TrainBudget, seed: int,
                 augment: bool = True):
        self.dataset, self.zoom, self.budget = dataset, zoom, budget
        self.seed, self.augment, self.epoch = seed, augment, 0
        self.persons = training_persons(dataset)

    def __len__(self) -> int:
        return len(self.persons)

    def __getitem__(self, index: int) -> Crop:
        image_index, _, box = self.persons[index]
        rng = _item_rng(self.seed, "fcn", self.epoch, index) if self.augment else None
        return person_crop(self.dataset[image_index], image_index, box, self.zoom, rng,
                           self.budget.box_jitter, self.budget.scale_jitter)


class DetectorWindows(TorchDataset):
    """Training images rescaled (around the detector's input scale), shifted and mirrored
    into a square ``size`` x ``size`` window; items are (window, boxes in window edges)."""

    def __init__(self, dataset: Dataset, size: int, scale_jitter: float, seed: int):
        self.dataset, self.size, self.scale_jitter, self.seed = dataset, size, scale_jitter, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = _item_rng(self.seed, "detector", self.epoch, index)
        sample = self.dataset[index]
        image, boxes = sample.image, _edges(sample.boxes)
        height, width = image.shape[:2]
        if rng.random() < 0.5:
            image = np.ascontiguousarray(image[:, ::-1])
            boxes = np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0],
                              boxes[:, 3]], axis=1)
        scale = self.size / max(width, height) * np.exp(
            rng.uniform(-self.scale_jitter, self.scale_jitter))
        side = self.size / scale  # the window's side in image pixels
        x0 = rng.uniform(min(0.0, width - side), max(0.0, width - side))
        y0 = rng.uniform(min(0.0, height - side), max(0.0, height - side))
        t = BoxTransform(x0, y0, scale, self.size, self.size)
        boxes = np.clip(t.boxes_to_crop(boxes), 0, self.size)
        visible = (boxes[:, 2:] - boxes[:, :2] >= _MIN_BOX_PX).all(1)
        return crop_image(image, t), boxes[visible]


class RefineExamples(TorchDataset):
    """The cached second-stage inputs: first-stage logits, the inferred pose, the labels."""

    def __init__(self, dataset: Dataset, cache: Mapping[str, np.ndarray]):
        self.dataset, self.cache, self.epoch = dataset, cache, 0

    def __len__(self) -> int:
        return len(self.cache["image_index"])

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sample = self.dataset[int(self.cache["image_index"][index])]
        x0, y0, scale, width, height = self.cache["transform"][index]
        t = BoxTransform(float(x0), float(y0), float(scale), int(width), int(height))
        labels = crop_labels_of(sample, t, bool(self.cache["flipped"][index]))
        return self.cache["logits"][index], self.cache["pose"][index], labels


# --------------------------------------------------------------------------- stages


_FREE_BUDGET_KEYS = ("checkpoint_every", "workers")  # may change when a run resumes


def _without(value: Any, keys: tuple[str, ...]) -> Any:
    return {k: v for k, v in value.items() if k not in keys} if isinstance(value, dict) else value


@dataclass
class TrainLog:
    """``train.json``: what was trained, how, and the loss history (rewritten atomically)."""

    path: Path
    data: dict[str, Any]

    @classmethod
    def open(cls, out: Path, header: dict[str, Any]) -> TrainLog:
        """The log of ``out``; a resumed run must train the same config with the same budget."""
        path = out / TRAIN_LOG
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise InputError(path, f"not valid JSON ({error})") from None
            for key in ("config", "budget", "seed"):
                old, new = data.get(key), header[key]
                if key == "budget":
                    old, new = _without(old, _FREE_BUDGET_KEYS), _without(new, _FREE_BUDGET_KEYS)
                if old != new:
                    raise InputError(path, f"this directory was trained with another {key}; "
                                           "resume with the same options or use a new --out",
                                     field=key)
            return cls(path, data)
        return cls(path, {**header, "stages": {}})

    def stage(self, name: str) -> dict[str, Any]:
        return self.data["stages"].setdefault(name, {"seconds": 0.0, "loss": []})

    def write(self) -> None:
        atomic.write_json(self.path, self.data, indent=2)


@dataclass
class _Run:
    """Everything the stages share."""

    config: ModelConfig
    budget: TrainBudget
    networks: Networks
    dataset: Dataset
    out: Path
    seed: int
    runtime: Runtime
    log: TrainLog
    progress: bool
    on_step: Callable[[str, int, dict[str, float]], None] | None

    def state_path(self, stage: str) -> Path:
        return self.out / STATE_DIR / f"{stage}.pt"


def _to(targets, device: torch.device):
    """A dataclass of tensors (``targets.collate``'s output) moved to ``device``."""
    return type(targets)(**{f.name: getattr(targets, f.name).to(device)
                            for f in dataclasses.fields(targets)})


def _train_stage(run: _Run, stage: str, modules: dict[str, nn.Module], data: TorchDataset,
                 collate: Callable, loss_fn: Callable, steps: int, batch_size: int,
                 lr: float) -> None:
    """The shared loop: resume from the stage's state, train to ``steps``, save states."""
    runtime, path = run.runtime, run.state_path(stage)
    params = [p for m in modules.values() for p in m.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=run.budget.weight_decay)
    step = 0
    if path.is_file():
        checkpoint = load_checkpoint(path)
        if checkpoint.config != run.config:
            raise InputError(path, "was trained with another config; use a new --out")
        checkpoint.restore(modules, {stage: optimizer})
        step = checkpoint.step
    record = run.log.stage(stage)
    record["loss"] = [entry for entry in record["loss"] if entry[0] <= step]

    def save() -> None:
        if runtime.main:
            save_checkpoint(path, run.config, modules, {stage: optimizer}, step)
            record["steps"] = step
            run.log.write()

    if step >= steps:
        record["steps"] = step
        if not path.is_file():
            save()
        return
    wrapped = {name: runtime.wrap(m) for name, m in modules.items()}
    for m in modules.values():
        m.train()
    sampler = DistributedSampler(data, num_replicas=runtime.world, rank=runtime.rank,
                                 shuffle=True, seed=run.seed, drop_last=False)
    per_epoch = math.ceil(len(sampler) / batch_size)
    log_every = max(1, steps // 100)
    bar = progress_bar.bar(desc=stage, total=steps, initial=step, unit="step",
                           enabled=run.progress and runtime.main)
    start, running, count = time.perf_counter(), 0.0, 0
    while step < steps:
        epoch, offset = divmod(step, per_epoch)
        sampler.set_epoch(epoch)
        data.epoch = epoch
        batches = list(BatchSampler(sampler, batch_size, drop_last=False))
        loader = DataLoader(data, batch_sampler=batches[offset:offset + steps - step],
                            collate_fn=collate, num_workers=run.budget.workers,
                            generator=torch.Generator().manual_seed(run.seed))
        for batch in loader:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, steps, lr)
            losses = loss_fn(wrapped, batch)
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            optimizer.step()
            step += 1
            values = {k: float(v.detach()) for k, v in losses.items()}
            running, count = running + values["total"], count + 1
            if step % log_every == 0 or step == steps:
                record["loss"].append([step, running / count])
                running, count = 0.0, 0
            bar.update()
            bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()}, refresh=False)
            if run.on_step is not None:
                run.on_step(stage, step, values)
            if step % run.budget.checkpoint_every == 0 or step == steps:
                record["seconds"] += time.perf_counter() - start
                start = time.perf_counter()
                save()
    bar.close()
    for m in modules.values():
        m.eval()


def _detector_stage(run: _Run) -> None:
    net: CenterNet = run.networks.detector
    size = math.ceil(run.config.detector.input_size / net.backbone.out.stride) \
        * net.backbone.out.stride
    grid = size // net.stride
    cfg, device = run.config.detector, run.runtime.device

    def collate(items):
        images = images_to_tensor(np.stack([image for image, _ in items]))
        targets = collate_targets([detector_targets(boxes, grid, grid, net.stride,
                                                    cfg.min_overlap) for _, boxes in items])
        return images, targets

    def loss_fn(nets, batch):
        images, targets = batch
        output = nets["detector"](images.to(device))
        return detector_loss(output, _to(targets, device), cfg.offset_weight, cfg.size_weight)

    data = DetectorWindows(run.dataset, size, run.budget.detector_scale_jitter, run.seed)
    # The size head starts at the mean training box, in cells, as the heatmap starts at its
    # prior: an L1 regression from zero to sizes of tens of cells takes Adam thousands of
    # steps, which a CPU budget does not have.
    cells = np.concatenate([s.boxes[:, 2:] * size / max(s.width, s.height) / net.stride
                            for s in run.dataset])
    with torch.no_grad():
        net.size[-1].bias.copy_(torch.from_numpy(cells.mean(0).astype(np.float32)))
    _train_stage(run, "detector", {"detector": net}, data, collate, loss_fn,
                 run.budget.detector_steps, run.budget.detector_batch_size,
                 run.budget.detector_lr)


def crop_offset_stats(crops: PersonCrops) -> OffsetStats:
    """DeeperCut's offset normalisation from every person in its own (unjittered) crop,
    mirrored too, since training mirrors half of the crops."""
    size = crops.zoom.crop_size
    people = []
    for image_index, person, box in crops.persons:
        keypoints = crops.dataset.keypoints(crops.dataset.images[image_index]["id"])
        t = BoxTransform.around_box(box, size, crops.zoom.margin)
        own = t.keypoints_to_crop(keypoints[person:person + 1])
        people += [own, _flip_keypoints(own, size)]
    return fit_offset_stats(people)


def _fcn_stage(run: _Run) -> None:
    pose, part = run.networks.pose, run.networks.part
    cfg, device = run.config.pose, run.runtime.device
    data = PersonCrops(run.dataset, run.config.zoom, run.budget, run.seed)
    pose.set_offset_stats(crop_offset_stats(data))  # deterministic: a resumed run agrees
    grid = math.ceil(run.config.zoom.crop_size / pose.stride)
    stats = pose.offset_stats

    def collate(crops: list[Crop]):
        targets = collate_targets([pose_targets(c.keypoints, grid, grid, pose.stride,
                                                cfg.radius, cfg.locref_scale, stats)
                                   for c in crops])
        return (images_to_tensor(np.stack([c.image for c in crops])),
                torch.from_numpy(np.stack([c.labels for c in crops])), targets)

    def loss_fn(nets, batch):
        images, labels, targets = batch
        images = images.to(device)
        pose_losses = pose_loss(nets["pose"](images), _to(targets, device), cfg.locref_weight,
                                cfg.offset_weight)
        part_losses = part_loss(nets["part"](images), labels.to(device), part.stride)
        return {"total": pose_losses["total"] + part_losses, "pose": pose_losses["total"],
                "part": part_losses}

    _train_stage(run, "fcn", {"pose": pose, "part": part}, data, collate, loss_fn,
                 run.budget.fcn_steps, run.budget.batch_size, run.budget.lr)


def _shard_inference(run: _Run, crops: list[tuple[PersonCrops, int]], what: str,
                     per_crop: Callable[[Crop, Any, np.ndarray], Any]) -> list:
    """``per_crop(crop, pose maps, part logits)`` of this process's share of ``crops``
    ((dataset, index) pairs), batched through the FCNs, gathered on every process."""
    runtime = run.runtime
    mine = crops[runtime.rank::runtime.world]
    batch = run.budget.batch_size
    results = []
    for start in progress_bar.bar(range(0, len(mine), batch), desc=what, unit="batch",
                                  enabled=run.progress and runtime.main):
        items = [data[k] for data, k in mine[start:start + batch]]
        maps, logits = run_fcns(run.networks.pose, run.networks.part,
                                np.stack([c.image for c in items]), runtime.device)
        logits = logits.cpu().numpy()
        results += [per_crop(c, m, lg) for c, m, lg in zip(items, maps, logits)]
    return runtime.gather(results)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(0, keepdims=True))
    return e / e.sum(0, keepdims=True)


@dataclass(frozen=True)
class PairExamples:
    """Labelled proposal pairs of one or more boxes (the pairwise regressions' data)."""

    pair_type: np.ndarray  # (N,)
    offset: np.ndarray  # (N, 4) f(Pn)
    segment: np.ndarray  # (N, 10) f(Ps)
    same: np.ndarray  # (N,) bool


def true_pair_examples(maps: ScoreMaps, keypoints: np.ndarray, proposals: ProposalParams,
                       features: FeatureParams) -> PairExamples:
    """The pairs of one box whose two proposals are both true joints, labelled same-person.

    A proposal is true when a GT joint of its type lies within half the proposal distance
    (``fcrf.training.proposal_owners``). Pairs with a false proposal are left out: whether
    a proposal is a joint at all is the unary's job, and with them the regressions learn
    the base rate of false proposals too, which keeps P_ij of most true same-person pairs
    below 0.5, so the program splits every person into fragments (on synthetic val with
    the tiny config: PCKh@0.5 of the box's pose 0.10 with them, 0.52 without).
    """
    found = joint_proposals(maps.Pj, proposals)
    pairs = pair_features(found, maps.Pn, PartRegions.from_scores(maps.Ps), features)
    owner = proposal_owners(found, keypoints, proposals.min_distance / 2)
    both = (owner[pairs.i] >= 0) & (owner[pairs.j] >= 0)
    return PairExamples(pairs.pair_type[both], pairs.offset[both], pairs.segment[both],
                        (owner[pairs.i] == owner[pairs.j])[both])


def _pairwise_stage(run: _Run) -> None:
    paths = [run.out / pairwise_file(s) for s in (True, False)]
    if all(p.is_file() for p in paths):
        return
    start = time.perf_counter()
    stride = run.networks.pose.stride
    proposals, features = proposal_params(stride), feature_params(stride)
    data = PersonCrops(run.dataset, run.config.zoom, run.budget, run.seed, augment=False)

    def examples(crop: Crop, maps, logits):
        Pj, Pn = maps.grid_maps()
        keypoints = crop.keypoints.copy()
        keypoints[..., :2] = pixels_to_grid(keypoints[..., :2], stride)
        score_maps = ScoreMaps(Pj, Pn, np.moveaxis(_softmax(logits), 0, -1))
        return true_pair_examples(score_maps, keypoints, proposals, features)

    found = _shard_inference(run, [(data, k) for k in range(len(data))], "pairwise", examples)
    same = np.concatenate([e.same for e in found]) if found else np.zeros(0, bool)
    if not len(same):
        raise InputError(None, "the Pose FCN proposes no pair of true joints (probability "
                               "> 0.2) on the training boxes: train the FCNs longer "
                               "(--fcn-steps)")
    if run.runtime.main:
        pair_type = np.concatenate([e.pair_type for e in found])
        offset = np.concatenate([e.offset for e in found])
        segment = np.concatenate([e.segment for e in found])
        for use_segment, path in zip((True, False), paths):
            PairwiseModel.fit(pair_type, offset, segment if use_segment else None, same,
                              use_segment, features).save(path)
        record = run.log.stage("pairwise")
        record.update(pairs=int(len(same)), same_person=int(same.sum()),
                      seconds=record["seconds"] + time.perf_counter() - start)
        run.log.write()
    run.runtime.barrier()


def _refine_cache(run: _Run, pairwise: PairwiseModel, params: FcrfParams) -> dict:
    """Second-stage inputs of ``refine_passes`` jittered crops of every training person."""
    path = run.out / STATE_DIR / REFINE_CACHE
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            return {key: saved[key] for key in saved.files}
    start = time.perf_counter()
    base = PersonCrops(run.dataset, run.config.zoom, run.budget, run.seed)
    data = []
    for epoch in range(run.budget.refine_passes):
        crops = copy.copy(base)
        crops.epoch = 10_000 + epoch  # epochs of their own, unlike any FCN training epoch
        data += [(crops, k) for k in range(len(crops))]

    def infer(crop: Crop, maps, logits):
        poses = crop_poses(maps, _softmax(logits), pairwise, params)
        best = closest_to_centre(poses, crop.box)
        pose = np.zeros((schema.NUM_JOINTS, 3), np.float32) if best is None else best.keypoints
        t = crop.transform
        return (crop.image_index, (t.x0, t.y0, t.scale, t.width, t.height), crop.flipped,
                logits, pose)

    found = _shard_inference(run, data, "second-stage poses", infer)
    cache = {"image_index": np.array([f[0] for f in found], np.int64),
             "transform": np.array([f[1] for f in found], np.float64).reshape(-1, 5),
             "flipped": np.array([f[2] for f in found], bool),
             "logits": np.stack([f[3] for f in found]).astype(np.float32),
             "pose": np.stack([f[4] for f in found]).astype(np.float32)}
    if run.runtime.main:
        buffer = io.BytesIO()
        np.savez(buffer, **cache)
        atomic.write_bytes(path, buffer.getvalue())
        run.log.stage("refine")["cache_seconds"] = time.perf_counter() - start
        run.log.write()
    return cache


def _refine_stage(run: _Run) -> None:
    stride = run.networks.pose.stride
    pairwise = PairwiseModel.load(run.out / pairwise_file(True))
    cache = _refine_cache(run, pairwise, fcrf_params(stride))
    refine_config, device = run.config.refine, run.runtime.device

    def collate(items):
        logits = torch.from_numpy(np.stack([logits for logits, _, _ in items]))
        x = second_stage_input(logits, [pose[None] for _, pose, _ in items], refine_config,
                               stride)
        return x, torch.from_numpy(np.stack([labels for _, _, labels in items]))

    def loss_fn(nets, batch):
        x, labels = batch
        loss = part_loss(nets["refine"](x.to(device)), labels.to(device), stride)
        return {"total": loss}

    _train_stage(run, "refine", {"refine": run.networks.refine},
                 RefineExamples(run.dataset, cache), collate, loss_fn,
                 run.budget.refine_steps, run.budget.batch_size, run.budget.refine_lr)


def _load_imagenet(networks: Networks, weights: Mapping[str, str | os.PathLike]) -> None:
    """torchvision ImageNet weights into the backbones they fit (``resnet`` -> detector and
    Pose FCN, ``vgg`` -> Part FCN)."""
    targets = {"resnet": (networks.detector.backbone, networks.pose.backbone),
               "vgg": (networks.part.backbone,)}
    for kind, path in weights.items():
        for backbone in targets[kind]:
            load_torchvision_weights(backbone, path)


def train(config: ModelConfig, budget: TrainBudget, data: str | os.PathLike,
          out: str | os.PathLike, seed: int = 0, device: str = "auto",
          stop_after: str | None = None, imagenet: Mapping[str, str | os.PathLike] | None = None,
          progress: bool = True,
          on_step: Callable[[str, int, dict[str, float]], None] | None = None) -> Path:
    """Train every stage (up to ``stop_after``) on the train split of ``data`` into ``out``.

    Returns the path of ``model.pt`` (written once the last stage is done) or of the
    stopped stage's state. ``on_step(stage, step, losses)`` is called after every step.
    """
    if stop_after is not None and stop_after not in STAGES:
        raise InputError(None, f"unknown stage {stop_after!r}; choose one of {', '.join(STAGES)}")
    runtime = Runtime.start(device)
    out = Path(out)
    dataset = Dataset(data, "train")
    header = {"config": config_to_dict(config), "budget": dataclasses.asdict(budget),
              "seed": seed, "processes": runtime.world, "device": str(runtime.device),
              "data": str(Path(data).resolve()), "train_images": len(dataset)}
    log = TrainLog.open(out, header)
    seed_everything(seed)
    networks = Networks.build(config)
    if imagenet:
        _load_imagenet(networks, imagenet)
    for module in networks.modules().values():
        module.to(runtime.device)
    run = _Run(config, budget, networks, dataset, out, seed, runtime, log, progress, on_step)
    if not training_persons(dataset):
        raise InputError(dataset.annotation_file, "the train split has no person to train on")
    stages = {"detector": _detector_stage, "fcn": _fcn_stage, "pairwise": _pairwise_stage,
              "refine": _refine_stage}
    for name, stage in stages.items():
        stage(run)
        if name == stop_after:
            runtime.barrier()
            return out / pairwise_file(True) if name == "pairwise" else run.state_path(name)
    path = out / MODEL_FILE
    if runtime.main:
        save_checkpoint(path, config, networks.modules(),
                        step=budget.detector_steps + budget.fcn_steps + budget.refine_steps)
        log.write()
    runtime.barrier()
    return path
