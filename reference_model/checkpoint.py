"""Checkpoints that resume training exactly and load only data, never code.

A checkpoint is one ``torch.save`` file of plain containers: the config (as a dict), the
step, every module's and optimizer's state dict, and the random states (torch's global
generator, an optional torch data generator, an optional numpy generator for
augmentations). It is read back with ``torch.load(weights_only=True)``, which refuses
pickled objects, so a checkpoint from elsewhere cannot execute anything. Files are written
atomically: a crash mid-save leaves the previous checkpoint intact.

With :func:`seed_everything` at start and the random states restored on resume, the steps
after a resume are bit-identical on CPU to the steps an uninterrupted run takes.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from pascal_person_pose.atomic import atomic_open
from pascal_person_pose.errors import InputError

from .config import ModelConfig, config_from_dict, config_to_dict

FORMAT = "ppp-reference-model/1"


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy's legacy and torch's global generators, ask torch for
    deterministic kernels (warning, not failing, where an op has none), and return a
    fresh torch generator for data order seeded with ``seed``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


@dataclass
class Checkpoint:
    config: ModelConfig
    step: int
    modules: dict[str, dict[str, torch.Tensor]]
    optimizers: dict[str, dict[str, Any]] = field(default_factory=dict)
    torch_rng: torch.Tensor | None = None
    generator: torch.Tensor | None = None
    numpy_rng: dict[str, Any] | None = None
    path: str | None = None

    def restore(self, modules: Mapping[str, nn.Module],
                optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
                generator: torch.Generator | None = None,
                numpy_rng: np.random.Generator | None = None) -> None:
        """Load the saved states into live objects (strictly: every name and key must match)
        and restore the random states saved with them."""
        for kind, saved, live in (("module", self.modules, modules),
                                  ("optimizer", self.optimizers, optimizers or {})):
            for name, obj in live.items():
                if name not in saved:
                    raise InputError(self.path, f"no {kind} {name!r} in the checkpoint "
                                                f"(it has {', '.join(sorted(saved)) or 'none'})")
                try:
                    obj.load_state_dict(saved[name])
                except (RuntimeError, ValueError, KeyError) as error:
                    raise InputError(self.path, f"does not fit: {str(error).splitlines()[0]}",
                                     record=f"{kind} {name}") from None
        if self.torch_rng is not None:
            torch.set_rng_state(self.torch_rng)
        if generator is not None and self.generator is not None:
            generator.set_state(self.generator)
        if numpy_rng is not None and self.numpy_rng is not None:
            numpy_rng.bit_generator.state = self.numpy_rng


def save_checkpoint(path: str | os.PathLike, config: ModelConfig,
                    modules: Mapping[str, nn.Module],
                    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
                    step: int = 0, generator: torch.Generator | None = None,
                    numpy_rng: np.random.Generator | None = None) -> None:
    """Write everything needed to resume at ``step`` (atomically)."""
    payload = {
        "format": FORMAT,
        "config": config_to_dict(config),
        "step": int(step),
        "modules": {name: m.state_dict() for name, m in modules.items()},
        "optimizers": {name: o.state_dict() for name, o in (optimizers or {}).items()},
        "torch_rng": torch.get_rng_state(),
        "generator": None if generator is None else generator.get_state(),
        "numpy_rng": None if numpy_rng is None else numpy_rng.bit_generator.state,
    }
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint safely (``weights_only=True``); bad files raise :class:`InputError`."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(path, "no such checkpoint") from None
    except Exception as error:  # unsafe pickles, truncated or foreign files
        raise InputError(path, f"not a readable checkpoint ({type(error).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(path, f"not a reference-model checkpoint (expected format {FORMAT})",
                         field="format")
    for key, kind in (("step", int), ("modules", dict), ("optimizers", dict)):
        if not isinstance(payload.get(key), kind):
            raise InputError(path, f"must be a {kind.__name__}", field=key)
    return Checkpoint(config=config_from_dict(payload.get("config"), os.fspath(path)),
                      step=payload["step"], modules=payload["modules"],
                      optimizers=payload["optimizers"], torch_rng=payload.get("torch_rng"),
                      generator=payload.get("generator"), numpy_rng=payload.get("numpy_rng"),
                      path=os.fspath(path))
