"""How training runs: processes and devices, the budget, ``train.json``, the shared loop.

Distributed: started by ``torchrun --nproc-per-node N``, each process trains on its shard
of every epoch (``DistributedSampler``) with ``DistributedDataParallel`` (NCCL on GPUs, gloo
on CPUs); ``batch_size`` is per process. Inference inside training is sharded too and
gathered; process 0 writes every file.

Determinism: the data order of an epoch is ``DistributedSampler(seed, epoch)`` and every
item's augmentation comes from a generator seeded by ``(seed, stage, epoch, item)``
(``training.data``), never from a global one, so a run resumed mid-epoch replays the same
batches whatever the number of loader workers. The networks' own randomness (dropout)
draws from torch's global generator, which each state saves. On CPU with one process,
resumed training is bit-identical to an uninterrupted run.

Optimiser: Adam with a linear warm-up over the first 5% of a stage and a cosine decay to
5% of the rate (our choice for short CPU budgets; the paper does not state its solver
settings beyond "roughly 3 days" of training).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler
from torch.utils.data import Dataset as TorchDataset
from tqdm import tqdm

from pascal_person_pose import atomic, safe_json
from pascal_person_pose import progress as progress_bar
from pascal_person_pose.errors import InputError

from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import ModelConfig
from ..model import STATE_DIR, TRAIN_LOG


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
    pairwise_passes: int = 2  # jittered crops per training person for the FCRF's pairs
    refine_passes: int = 1  # jittered crops per training person for the second stage
    checkpoint_every: int = 100
    workers: int = 0  # data-loader processes per training process

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            positive = f.name.endswith(("batch_size", "checkpoint_every", "passes"))
            if value < 0 or (positive and value < 1):
                raise InputError(None, f"training budget {f.name} must be "
                                       f"{'>= 1' if positive else '>= 0'}, got {value}")


# Budget fields that may change when a run resumes (they change how, not what, it trains).
FREE_BUDGET_KEYS = ("checkpoint_every", "workers")


def learning_rate(step: int, steps: int, base: float) -> float:
    """Linear warm-up over 5% of the stage, then cosine decay to 5% of ``base``."""
    warmup = max(1, steps // 20)
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass(frozen=True)
class Runtime:
    """This process: its rank among ``world`` processes and its device."""

    rank: int
    world: int
    device: torch.device

    @classmethod
    def start(cls, device: str = "auto") -> Runtime:
        """Join the process group torchrun describes (``WORLD_SIZE`` > 1), pick the device:
        ``auto`` is this process's GPU when there is one; ``cuda`` becomes ``cuda:LOCAL_RANK``."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda":
            device = f"cuda:{local}"
        try:
            resolved = torch.device(device)
        except RuntimeError:
            raise InputError(None, f"unknown device {device!r}; use auto, cpu, cuda or "
                                   "cuda:N") from None
        if resolved.type == "cuda":
            if not torch.cuda.is_available():
                raise InputError(None, f"device {device} asked for, but torch sees no GPU")
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
        if not path.is_file():
            return cls(path, {**header, "stages": {}})
        data = safe_json.load(path)
        if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
            raise InputError(path, "not a training log: expected an object with stages",
                             field="stages")
        for key in ("config", "budget", "seed"):
            old, new = data.get(key), header[key]
            if key == "budget":
                old, new = _without(old, FREE_BUDGET_KEYS), _without(new, FREE_BUDGET_KEYS)
            if old != new:
                raise InputError(path, f"this directory was trained with another {key}; "
                                       "resume with the same options or use a new --out",
                                 field=key)
        for name, record in data["stages"].items():
            if not (isinstance(record, dict) and isinstance(record.get("seconds"), (int, float))
                    and isinstance(record.get("loss"), list)):
                raise InputError(path, "expected seconds and a loss list",
                                 field=f"stages.{name}")
        return cls(path, data)

    def stage(self, name: str) -> dict[str, Any]:
        return self.data["stages"].setdefault(name, {"seconds": 0.0, "loss": []})

    def write(self) -> None:
        atomic.write_json(self.path, self.data, indent=2)


@dataclass
class Session:
    """What a training run's stages share."""

    config: ModelConfig
    budget: TrainBudget
    out: Path
    seed: int
    runtime: Runtime
    log: TrainLog
    progress: bool
    on_step: Callable[[str, int, dict[str, float]], None] | None

    def state_path(self, stage: str) -> Path:
        return self.out / STATE_DIR / f"{stage}.pt"

    def bar(self, iterable=None, *, desc: str, **options) -> tqdm:
        """A progress bar on the main process (none elsewhere, none with --quiet)."""
        return progress_bar.bar(iterable, desc=desc, enabled=self.progress and self.runtime.main,
                                **options)


def to_device(targets, device: torch.device):
    """A dataclass of tensors (``targets.collate``'s output) moved to ``device``."""
    return type(targets)(**{f.name: getattr(targets, f.name).to(device)
                            for f in dataclasses.fields(targets)})


def fit(session: Session, stage: str, modules: dict[str, nn.Module], data: TorchDataset,
        collate: Callable, loss_fn: Callable, steps: int, batch_size: int, lr: float) -> None:
    """The shared loop: resume from the stage's state, train to ``steps``, save states.

    ``data`` has an ``epoch`` attribute, set before each epoch (it seeds augmentations);
    ``loss_fn(wrapped modules, batch)`` returns a dict of losses with a ``total``.
    """
    runtime, path = session.runtime, session.state_path(stage)
    params = [p for m in modules.values() for p in m.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=session.budget.weight_decay)
    step = 0
    if path.is_file():
        checkpoint = load_checkpoint(path)
        if checkpoint.config != session.config:
            raise InputError(path, "was trained with another config; use a new --out")
        checkpoint.restore(modules, {stage: optimizer})
        step = checkpoint.step
    record = session.log.stage(stage)
    record["loss"] = [entry for entry in record["loss"] if entry[0] <= step]

    def save() -> None:
        if runtime.main:
            save_checkpoint(path, session.config, modules, {stage: optimizer}, step)
            record["steps"] = step
            session.log.write()

    if step >= steps:
        record["steps"] = step
        if not path.is_file():
            save()
        return
    wrapped = {name: runtime.wrap(m) for name, m in modules.items()}
    for m in modules.values():
        m.train()
    sampler = DistributedSampler(data, num_replicas=runtime.world, rank=runtime.rank,
                                 shuffle=True, seed=session.seed, drop_last=False)
    per_epoch = math.ceil(len(sampler) / batch_size)
    log_every = max(1, steps // 100)
    bar = session.bar(total=steps, initial=step, desc=stage, unit="step")
    start, running, count = time.perf_counter(), 0.0, 0
    while step < steps:
        epoch, offset = divmod(step, per_epoch)
        sampler.set_epoch(epoch)
        data.epoch = epoch
        batches = list(BatchSampler(sampler, batch_size, drop_last=False))
        loader = DataLoader(data, batch_sampler=batches[offset:offset + steps - step],
                            collate_fn=collate, num_workers=session.budget.workers,
                            generator=torch.Generator().manual_seed(session.seed))
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
            if session.on_step is not None:
                session.on_step(stage, step, values)
            if step % session.budget.checkpoint_every == 0 or step == steps:
                record["seconds"] += time.perf_counter() - start
                start = time.perf_counter()
                save()
    bar.close()
    for m in modules.values():
        m.eval()
