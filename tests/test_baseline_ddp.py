"""Multi-process training through torchrun: two CPU processes (gloo) for a couple of steps
(about 6 s on an idle 2-core machine)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from canonical_fixture import write_canonical_dataset
from reference_model.checkpoint import load_checkpoint


def test_torchrun_two_cpu_processes(tmp_path):
    data = write_canonical_dataset(tmp_path / "data")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", "--no-python",
               str(Path(sys.executable).parent / "ppp-baseline"), "train", "--config", "tiny",
               "--data", str(data["root"]), "--out", str(out), "--device", "cpu",
               "--threads", "1", "--detector-steps", "2", "--fcn-steps", "2",
               "--batch-size", "2", "--detector-batch-size", "1", "--stop-after", "fcn",
               "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    log = json.loads((out / "train.json").read_text())
    assert log["processes"] == 2
    assert log["stages"]["detector"]["steps"] == 2 and log["stages"]["fcn"]["steps"] == 2
    state = load_checkpoint(out / "state" / "fcn.pt")
    assert state.step == 2
    # DDP keeps torchvision-style names: the state loads into a plain network.
    assert not any(k.startswith("module.") for k in state.modules["pose"])
    assert all(torch.isfinite(v).all() for v in state.modules["pose"].values()
               if v.is_floating_point())
