"""Stage-wise training of the reference model (paper Sec. 3.2: "first learn Pose FCN and the
first-stage Part FCN, then the FCRF, and finally the second-stage Part FCN").

Stages, in order, each resumable:

1. ``detector``: CenterNet on whole training images, randomly rescaled, shifted and
   flipped into a 4:3 window, the detector's input size wide.
2. ``fcn``: Pose FCN and Part FCN together, on auto-zoomed crops around jittered GT boxes
   (centre shift, scale, flip), as the detector's boxes will place people at test time.
   The Pose FCN's offset normalisation is fitted first from the GT people of the crops.
3. ``pairwise``: the FCRF's logistic regressions, DeeperCut's way (``fcrf.training``), on
   the proposals of the trained Pose FCN in ``pairwise_passes`` freshly jittered crops of
   every training person: crops the FCNs never saw, framed as imperfect detections frame
   people. Two models from the same balanced pairs, with and without segment features
   (the "w/o seg" ablation of Table 1).
4. ``refine``: the second-stage Part FCN, on the first-stage part logits and the pose the
   FCRF infers in jittered training crops (``refine_passes`` per person), computed once
   and cached.

The output directory is the format ``reference_model.model`` describes; running the same
command again resumes where it stopped, and finished stages are loaded, not retrained.
"""

from __future__ import annotations

import dataclasses
import io
import math
import multiprocessing
import os
import signal
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from pascal_person_pose import atomic
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.errors import InputError
from pascal_person_pose.transforms import hflip_keypoints

from ..autozoom import BoxTransform
from ..backbones import images_to_tensor, load_torchvision_weights
from ..checkpoint import save_checkpoint, seed_everything
from ..config import ModelConfig, config_to_dict
from ..detector import size_to_head
from ..fcrf import PairExamples, PairwiseModel, TrainingBox, pair_examples
from ..losses import detector_loss, part_loss, pose_loss
from ..model import (MODEL_FILE, STATE_DIR, Networks, ReferenceModel, box_pose,
                     feature_params, pairwise_file, proposal_params, stack)
from ..refinement import second_stage_input
from ..targets import (OffsetStats, collate as collate_targets, detector_targets,
                       fit_offset_stats, pose_targets)
from .data import (Crop, DetectorWindows, PersonCrops, RefineExamples, item_rng,
                   training_persons)
from .runtime import Runtime, Session, TrainBudget, TrainLog, fit, to_device

STAGES = ("detector", "fcn", "pairwise", "refine")
REFINE_CACHE = "refine_cache.npz"
DETECTOR_LOG = "detector.json"  # the parallel detector's own log, beside its state

# The paper trained "roughly 3 days" without stating its schedule; these are ours. The tiny
# budget trains the demo (480 synthetic training images of 320x240) on two CPU cores (the
# detector in a process of its own) in the time benchmark/README.md states. On 480 images
# the detector's 1600 steps take about as long as the other stages together; at a score of
# 0.2 they found 71% of the val people at precision 0.60 where 1250 steps found 61% at
# 0.49, and 2000 steps found no more (benchmark/README.md).
BUDGETS: dict[str, TrainBudget] = {
    "paper": TrainBudget(detector_steps=60_000, fcn_steps=60_000, refine_steps=20_000,
                         batch_size=8, detector_batch_size=16, lr=1e-4, detector_lr=1e-4,
                         refine_lr=1e-4, refine_passes=2, checkpoint_every=1000, workers=4),
    "tiny": TrainBudget(detector_steps=1600, fcn_steps=800, refine_steps=600, batch_size=16,
                        detector_batch_size=8),
}


def _detector_stage(session: Session, networks: Networks, dataset: Dataset) -> None:
    net = networks.detector
    multiple = net.backbone.out.stride
    size = math.ceil(session.config.detector.input_size / multiple) * multiple
    # A 4:3 window, the shape of most VOC images (and of the synthetic scenes): a square
    # one spends a quarter of every step on padding.
    height = math.ceil(size * 3 / 4 / multiple) * multiple
    cfg, device = session.config.detector, session.runtime.device

    def collate(items):
        images = images_to_tensor(np.stack([image for image, _ in items]))
        targets = collate_targets([
            detector_targets(boxes, height // net.stride, size // net.stride, net.stride,
                             cfg.min_overlap) for _, boxes in items])
        return images, targets

    def loss_fn(nets, batch):
        images, targets = batch
        output = nets["detector"](images.to(device))
        return detector_loss(output, to_device(targets, device), cfg.offset_weight,
                             cfg.size_weight)

    data = DetectorWindows(dataset, size, height, session.budget.detector_scale_jitter,
                           session.seed)
    # The size head starts at the mean training box (log cells), as the heatmap starts at
    # its prior: regressing from zero takes Adam steps a CPU budget does not have.
    cells = np.concatenate([s.boxes[:, 2:] * size / max(s.width, s.height) / net.stride
                            for s in dataset])
    with torch.no_grad():
        net.size[-1].bias.copy_(size_to_head(torch.from_numpy(cells).float()).mean(0))
    fit(session, "detector", {"detector": net}, data, collate, loss_fn,
        session.budget.detector_steps, session.budget.detector_batch_size,
        session.budget.detector_lr)


def crop_offset_stats(crops: PersonCrops) -> OffsetStats:
    """DeeperCut's offset normalisation from every person in its own (unjittered) crop,
    mirrored too, since training mirrors half of the crops."""
    size = crops.zoom.crop_size
    people = []
    for image_index, person, box in crops.persons:
        keypoints = crops.dataset.keypoints(crops.dataset.images[image_index]["id"])
        t = BoxTransform.around_box(box, size, crops.zoom.margin)
        own = t.keypoints_to_crop(keypoints[person:person + 1])
        people += [own, hflip_keypoints(own, size)]
    return fit_offset_stats(people)


def _fcn_stage(session: Session, networks: Networks, dataset: Dataset) -> None:
    pose, part = networks.pose, networks.part
    cfg, device, budget = session.config.pose, session.runtime.device, session.budget
    data = PersonCrops(dataset, session.config.zoom, session.seed, "fcn", budget.box_jitter,
                       budget.scale_jitter)
    pose.set_offset_stats(crop_offset_stats(data))  # deterministic: a resumed run agrees
    grid = math.ceil(session.config.zoom.crop_size / pose.stride)
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
        pose_losses = pose_loss(nets["pose"](images), to_device(targets, device),
                                cfg.locref_weight, cfg.offset_weight)
        part_losses = part_loss(nets["part"](images), labels.to(device), part.stride)
        return {"total": pose_losses["total"] + part_losses, "pose": pose_losses["total"],
                "part": part_losses}

    fit(session, "fcn", {"pose": pose, "part": part}, data, collate, loss_fn,
        budget.fcn_steps, budget.batch_size, budget.lr)


def _jittered_passes(session: Session, dataset: Dataset, purpose: str,
                     passes: int) -> list[tuple[PersonCrops, int]]:
    """``passes`` jittered crops of every training person, as (crops, index) pairs."""
    items = []
    for epoch in range(passes):
        crops = PersonCrops(dataset, session.config.zoom, session.seed, purpose,
                            session.budget.box_jitter, session.budget.scale_jitter)
        crops.epoch = epoch
        items += [(crops, k) for k in range(len(crops))]
    return items


def _each_crop(session: Session, model: ReferenceModel, items: list[tuple[PersonCrops, int]],
               what: str, per_crop: Callable[[Crop, Any, int, int], Any]) -> list:
    """``per_crop(crop, fcn maps, k in the batch, position in items)`` of this process's
    share of ``items``, the crops batched through the FCNs, gathered on every process in
    ``items`` order."""
    runtime = session.runtime
    positions = list(range(len(items)))[runtime.rank::runtime.world]
    batch = session.budget.batch_size
    results = []
    for start in session.bar(iterable=range(0, len(positions), batch), desc=what, unit="batch"):
        chunk = positions[start:start + batch]
        crops = [items[p][0][items[p][1]] for p in chunk]
        maps = model.fcn_maps(np.stack([c.image for c in crops]))
        results += [per_crop(c, maps, k, p) for k, (c, p) in enumerate(zip(crops, chunk))]
    return runtime.gather(results)


def _pairwise_stage(session: Session, model: ReferenceModel, dataset: Dataset) -> None:
    paths = [session.out / pairwise_file(s) for s in (True, False)]
    if all(p.is_file() for p in paths):
        return
    start = time.perf_counter()
    config = session.config
    proposals, features = proposal_params(config), feature_params(config)

    def examples(crop: Crop, maps, k: int, position: int) -> PairExamples:
        box = TrainingBox(maps.score_maps(k), crop.keypoints)
        rng = item_rng(session.seed, "pairwise", 0, position)  # the balance's draw
        return pair_examples(box, rng, proposals, features, config.fcrf.pair_distance)

    items = _jittered_passes(session, dataset, "pairwise", session.budget.pairwise_passes)
    found = PairExamples.concatenate(_each_crop(session, model, items, "pairwise", examples))
    if not found.same.any():
        raise InputError(None, "the Pose FCN proposes no pair of true joints (probability "
                               f"> {config.fcrf.proposal_threshold}) on the training crops: "
                               "train the FCNs longer (--fcn-steps)")
    if session.runtime.main:
        for use_segment, path in zip((True, False), paths):
            found.fit(use_segment, features).save(path)
        record = session.log.stage("pairwise")
        record.update(pairs=len(found), same_person=int(found.same.sum()),
                      seconds=record["seconds"] + time.perf_counter() - start)
        session.log.write()
    session.runtime.barrier()


def _refine_cache(session: Session, model: ReferenceModel, dataset: Dataset) -> dict:
    """Second-stage inputs of ``refine_passes`` jittered crops of every training person."""
    path = session.out / STATE_DIR / REFINE_CACHE
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            return {key: saved[key] for key in saved.files}
    start = time.perf_counter()

    def infer(crop: Crop, maps, k: int, position: int):
        poses = stack(box_pose(model.people(maps, k), crop.box))
        t = crop.transform
        return (crop.image_index, (t.x0, t.y0, t.scale, t.width, t.height), crop.flipped,
                maps.part_logits[k].cpu().numpy(),
                poses[0] if len(poses) else np.zeros_like(poses, shape=poses.shape[1:]))

    items = _jittered_passes(session, dataset, "refine", session.budget.refine_passes)
    found = _each_crop(session, model, items, "second-stage poses", infer)
    cache = {"image_index": np.array([f[0] for f in found], np.int64),
             "transform": np.array([f[1] for f in found], np.float64).reshape(-1, 5),
             "flipped": np.array([f[2] for f in found], bool),
             "logits": np.stack([f[3] for f in found]).astype(np.float32),
             "pose": np.stack([f[4] for f in found]).astype(np.float32)}
    if session.runtime.main:
        buffer = io.BytesIO()
        np.savez(buffer, **cache)
        atomic.write_bytes(path, buffer.getvalue())
        session.log.stage("refine")["cache_seconds"] = time.perf_counter() - start
        session.log.write()
    return cache


def _refine_stage(session: Session, model: ReferenceModel, dataset: Dataset) -> None:
    cache = _refine_cache(session, model, dataset)
    stride = model.networks.pose.stride
    refine_config, device = session.config.refine, session.runtime.device

    def collate(items):
        logits = torch.from_numpy(np.stack([logits for logits, _, _ in items]))
        x = second_stage_input(logits, [pose[None] for _, pose, _ in items], refine_config,
                               stride)
        return x, torch.from_numpy(np.stack([labels for _, _, labels in items]))

    def loss_fn(nets, batch):
        x, labels = batch
        loss = part_loss(nets["refine"](x.to(device)), labels.to(device), stride)
        return {"total": loss}

    fit(session, "refine", {"refine": model.networks.refine}, RefineExamples(dataset, cache),
        collate, loss_fn, session.budget.refine_steps, session.budget.batch_size,
        session.budget.refine_lr)


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
          on_step: Callable[[str, int, dict[str, float]], None] | None = None,
          parallel_detector: bool = False) -> Path:
    """Train every stage (up to ``stop_after``) on the train split of ``data`` into ``out``.

    Returns the path of ``model.pt`` (written once the last stage is done) or of the
    stopped stage's state. ``on_step(stage, step, losses)`` is called after every step.
    ``parallel_detector`` trains the detector in a second process while this one trains
    the other stages (nothing but prediction uses the detector): one CPU process, not
    under torchrun; each process keeps this one's torch thread count.
    """
    if stop_after is not None and stop_after not in STAGES:
        raise InputError(None, f"unknown stage {stop_after!r}; choose one of {', '.join(STAGES)}")
    runtime = Runtime.start(device)
    parallel_detector = parallel_detector and stop_after is None
    if parallel_detector and (runtime.world > 1 or runtime.device.type != "cpu"):
        raise InputError(None, "a parallel detector is for one CPU training process "
                               f"(this run: {runtime.world} on {runtime.device})")
    if parallel_detector and on_step is not None:
        raise InputError(None, "on_step would not see the parallel detector's steps")
    out = Path(out)
    dataset = Dataset(data, "train")
    header = {"config": config_to_dict(config), "budget": dataclasses.asdict(budget),
              "seed": seed, "processes": runtime.world, "device": str(runtime.device),
              "data": str(Path(data).resolve()), "train_images": len(dataset)}
    log = TrainLog.open(out, header)
    if not training_persons(dataset):
        raise InputError(dataset.annotation_file, "the train split has no person to train on")
    seed_everything(seed)
    networks = Networks.build(config, seed)
    if imagenet:
        _load_imagenet(networks, imagenet)
    networks.to(runtime.device)
    session = Session(config, budget, out, seed, runtime, log, progress, on_step)
    if parallel_detector:
        detector = _DetectorProcess(config, budget, data, out, seed, imagenet, log.data)
    else:
        _detector_stage(session, networks, dataset)
    if stop_after == "detector":
        return _stopped(session, "detector")
    _fcn_stage(session, networks, dataset)
    if stop_after == "fcn":
        return _stopped(session, "fcn")
    # From here the trained FCNs infer what the later stages learn from.
    model = ReferenceModel(networks, {}, runtime.device)
    _pairwise_stage(session, model, dataset)
    if stop_after == "pairwise":
        runtime.barrier()
        return out / pairwise_file(True)
    model.pairwise[True] = _load_pairwise(out)
    _refine_stage(session, model, dataset)
    if parallel_detector:
        stages = log.data["stages"]
        log.data["stages"] = {"detector": detector.record(),
                              **{k: v for k, v in stages.items() if k != "detector"}}
        _detector_stage(session, networks, dataset)  # loads the finished state
    path = out / MODEL_FILE
    if runtime.main:
        save_checkpoint(path, config, networks.modules(),
                        step=budget.detector_steps + budget.fcn_steps + budget.refine_steps)
        log.write()
    runtime.barrier()
    return path


class _DetectorProcess:
    """The detector stage, started in a process of its own (``train(parallel_detector=True)``).

    A daemon spawned process: if this one fails, the detector does not outlive it.
    """

    def __init__(self, config: ModelConfig, budget: TrainBudget, data: str | os.PathLike,
                 out: Path, seed: int, imagenet: Mapping[str, str | os.PathLike] | None,
                 log_data: dict[str, Any]):
        self.out = out
        context = multiprocessing.get_context("spawn")
        self.result = context.SimpleQueue()
        self.process = context.Process(
            target=_detector_alone, daemon=True,
            args=(config, budget, data, out, seed, imagenet, log_data, torch.get_num_threads(),
                  self.result))
        self.process.start()

    def record(self) -> dict[str, Any]:
        """Wait for the detector; its ``train.json`` record, or its error raised here."""
        while self.result.empty() and self.process.is_alive():
            time.sleep(0.5)
        if self.result.empty():  # killed (out of memory, a signal) before it could say
            code = self.process.exitcode
            how = (f"was killed by signal {-code} ({signal.Signals(-code).name}: out of "
                   "memory, or stopped from outside)" if code < 0
                   else f"exited with code {code}")
            raise ChildProcessError(f"the detector's training process {how} before it "
                                    f"finished; the states written so far are in {self.out}: "
                                    "run the same command again to resume")
        outcome, value = self.result.get()
        self.process.join()
        if outcome == "error":
            raise value
        return value


def _detector_alone(config: ModelConfig, budget: TrainBudget, data: str | os.PathLike,
                    out: Path, seed: int, imagenet: Mapping[str, str | os.PathLike] | None,
                    log_data: dict[str, Any], threads: int, result: Any) -> None:
    """The detector stage in a process of its own (``train(parallel_detector=True)``),
    from the same initial weights as in one process. Puts ``("ok", its log record)`` on
    ``result`` (``train.json`` is the parent's to write) or ``("error", the exception)``."""
    try:
        torch.set_num_threads(threads)
        seed_everything(seed)
        networks = Networks.build(config, seed)
        if imagenet:
            _load_imagenet(networks, imagenet)
        log = TrainLog(out / STATE_DIR / DETECTOR_LOG, log_data)
        session = Session(config, budget, out, seed, Runtime.start("cpu"), log, False, None)
        _detector_stage(session, networks, Dataset(data, "train"))
        result.put(("ok", log.stage("detector")))
    except InputError as error:
        result.put(("error", error))
    except BaseException:  # noqa: BLE001 - anything else reaches the parent as its traceback
        result.put(("error", RuntimeError(f"the detector's process failed:\n"
                                          f"{traceback.format_exc()}")))


def _stopped(session: Session, stage: str) -> Path:
    session.runtime.barrier()
    return session.state_path(stage)


def _load_pairwise(out: Path) -> PairwiseModel:
    return PairwiseModel.load(out / pairwise_file(True))
