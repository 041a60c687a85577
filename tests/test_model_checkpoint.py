"""Configs and checkpoints: round trips, exact resume, safe loading, clear errors."""

import dataclasses
import pickle

import numpy as np
import pytest
import torch

from pascal_person_pose.errors import InputError
from reference_model.checkpoint import load_checkpoint, save_checkpoint, seed_everything
from reference_model.config import (CONFIGS, PAPER, TINY, VGGConfig, config_from_dict,
                                    config_to_dict, get_config)
from reference_model.losses import part_loss
from reference_model.model import Networks
from reference_model.part_fcn import PartFCN


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_round_trip(name):
    config = get_config(name)
    data = config_to_dict(config)
    assert data["part"]["backbone"]["kind"] == "vgg"
    assert isinstance(data["part"]["backbone"]["stages"][0], list)
    assert config_from_dict(data) == config


def test_config_errors_name_the_field():
    with pytest.raises(InputError, match="unknown config 'huge'"):
        get_config("huge")
    data = config_to_dict(TINY)
    data["pose"]["radius_px"] = 3
    with pytest.raises(InputError, match="field config.pose: unknown key 'radius_px'"):
        config_from_dict(data, "ckpt.pt")
    data = config_to_dict(TINY)
    data["detector"]["backbone"]["kind"] = "alexnet"
    with pytest.raises(InputError, match="ckpt.pt, field config.detector.backbone.kind"):
        config_from_dict(data, "ckpt.pt")
    assert PAPER.part.backbone == VGGConfig() and PAPER.pose.backbone.output_stride == 16


# A small Part FCN with dropout, so that the resumed steps depend on the restored RNG too.
CONFIG = dataclasses.replace(TINY, part=dataclasses.replace(
    TINY.part, backbone=VGGConfig(stages=((8,), (8,), (8,), (8,), (8,)), fc_channels=16,
                                  fc6_dilation=2, dropout=0.5)))


def step(model, optimizer, generator, numpy_rng, data):
    images, labels = data
    index = torch.randint(0, len(images), (2,), generator=generator)
    x, y = images[index], labels[index]
    if numpy_rng.random() < 0.5:  # an augmentation drawn from numpy
        x, y = x.flip(-1), y.flip(-1)
    optimizer.zero_grad()
    loss = part_loss(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def test_seeded_networks_start_apart_from_each_other():
    """With a seed, each network's initial weights depend on the seed and on it alone: a
    wider detector leaves the FCNs as they were, and torch's global generator untouched."""
    def weights(networks):
        return {f"{name}.{key}": value for name, module in networks.modules().items()
                for key, value in module.state_dict().items()}

    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = weights(Networks.build(TINY, seed=0))
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(7)  # the global state does not matter
    assert all(torch.equal(v, w) for v, w in zip(a.values(),
                                                 weights(Networks.build(TINY, 0)).values()))
    wider = dataclasses.replace(TINY, detector=dataclasses.replace(
        TINY.detector, neck_channels=2 * TINY.detector.neck_channels))
    b = weights(Networks.build(wider, seed=0))
    others = [k for k in a if not k.startswith("detector.")]
    assert others and all(torch.equal(a[k], b[k]) for k in others)
    c = weights(Networks.build(TINY, seed=1))
    assert not torch.equal(a["pose.backbone.conv1.weight"], c["pose.backbone.conv1.weight"])


def fresh(seed):
    generator = seed_everything(seed)
    model = PartFCN(CONFIG.part)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return model, optimizer, generator, np.random.default_rng(seed)


def test_resume_gives_identical_next_steps(tmp_path):
    data = (torch.randn(6, 3, 32, 32), torch.randint(0, 7, (6, 32, 32)))
    model, optimizer, generator, numpy_rng = fresh(0)
    for _ in range(3):
        step(model, optimizer, generator, numpy_rng, data)
    path = tmp_path / "run" / "last.pt"
    save_checkpoint(path, CONFIG, {"part": model}, {"part": optimizer}, step=3,
                    generator=generator, numpy_rng=numpy_rng)
    expected = [step(model, optimizer, generator, numpy_rng, data) for _ in range(3)]

    resumed, optimizer2, generator2, numpy_rng2 = fresh(1)  # other weights and random states
    checkpoint = load_checkpoint(path)
    assert checkpoint.step == 3 and checkpoint.config == CONFIG
    checkpoint.restore({"part": resumed}, {"part": optimizer2}, generator2, numpy_rng2)
    got = [step(resumed, optimizer2, generator2, numpy_rng2, data) for _ in range(3)]
    assert got == expected
    for a, b in zip(model.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary left


def test_loading_is_safe_and_errors_are_clear(tmp_path):
    with pytest.raises(InputError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"format": pickle.PickleError("code")}, f, protocol=2)
    with pytest.raises(InputError, match="evil.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="field format: not a reference-model checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "truncated.pt").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(InputError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "truncated.pt")

    model = PartFCN(CONFIG.part)
    save_checkpoint(tmp_path / "ok.pt", CONFIG, {"part": model})
    checkpoint = load_checkpoint(tmp_path / "ok.pt")
    with pytest.raises(InputError, match="no module 'pose' in the checkpoint \\(it has part\\)"):
        checkpoint.restore({"pose": model})
    other = PartFCN(TINY.part)
    with pytest.raises(InputError, match="record module part: does not fit"):
        checkpoint.restore({"part": other})
