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

FORMAT = "ppp-reference-model/4"  # /2: the FCRF section and batch_norm; /3: fcrf.time_limit and
# full_image_time_limit; /4: the detector regresses log box sizes


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
                except Exception as error:  # torch raises many types for a foreign state
                    message = str(error).splitlines()[0] if str(error) else type(error).__name__
                    raise InputError(self.path, f"does not fit: {message}",
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
    if not isinstance(payload, dict) or not isinstance(payload.get("format"), str) \
            or not payload["format"].startswith("ppp-reference-model/"):
        raise InputError(path, f"not a reference-model checkpoint (expected format {FORMAT})",
                         field="format")
    if payload["format"] != FORMAT:
        raise InputError(path, f"format {payload['format']} is another version of the model "
                               f"(this one reads {FORMAT}): train it again", field="format")
    if isinstance(payload.get("step"), bool) or not isinstance(payload.get("step"), int) \
            or payload["step"] < 0:
        raise InputError(path, "must be an integer >= 0", field="step")
    for key in ("modules", "optimizers"):
        states = payload.get(key)
        if not isinstance(states, dict) or not all(
                isinstance(name, str) and isinstance(state, dict) for name, state in states.items()):
            raise InputError(path, "must map names to state dicts", field=key)
    for name, state in payload["modules"].items():
        for key, value in state.items():
            if not isinstance(key, str) or not isinstance(value, torch.Tensor):
                raise InputError(path, f"{key!r} is not a named tensor", field=f"modules.{name}")
    _check_random_states(payload, path)
    return Checkpoint(config=config_from_dict(payload.get("config"), os.fspath(path)),
                      step=payload["step"], modules=payload["modules"],
                      optimizers=payload["optimizers"], torch_rng=payload.get("torch_rng"),
                      generator=payload.get("generator"), numpy_rng=payload.get("numpy_rng"),
                      path=os.fspath(path))


def _check_random_states(payload: dict, path: str | os.PathLike) -> None:
    """Each saved random state must load into a fresh generator of its kind, so that a
    garbled one fails here, in one line, not halfway through resuming."""
    for key in ("torch_rng", "generator"):
        state = payload.get(key)
        if state is None:
            continue
        try:
            if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8:
                raise TypeError("not a uint8 tensor")
            torch.Generator().set_state(state)
        except Exception as error:  # torch's checks raise RuntimeError, TypeError, ...
            raise InputError(path, f"not a torch random state ({error})".splitlines()[0],
                             field=key) from None
    state = payload.get("numpy_rng")
    if state is not None:
        try:
            if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
                raise TypeError("expected a PCG64 state")
            np.random.Generator(np.random.PCG64()).bit_generator.state = state
        except Exception as error:  # numpy raises TypeError, ValueError, KeyError, ...
            raise InputError(path, f"not a numpy random state ({error})".splitlines()[0],
                             field="numpy_rng") from None
