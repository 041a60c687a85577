"""The GPU check script keeps working: its whole path, on the CPU with the tiny config.

The script is run only on machines with a GPU, which CI never has; it once stopped working
(the pairwise stage's new labels needed proposals near true joints) without a test noticing.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmark" / "perf" / "gpu_check.py"


@pytest.mark.slow
def test_gpu_check_trains_every_stage_and_predicts_on_the_cpu(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--config", "tiny",
                          "--fcn-steps", "300", "--workdir", str(tmp_path)],
                         capture_output=True, text=True, timeout=900, cwd=REPO)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "train (tiny config, 1 process(es), cpu)" in run.stdout
    pairs = re.search(r"pairwise +- step\(s\) +[\d.]+ s, (\d+) pairs", run.stdout)
    assert pairs and int(pairs.group(1)) > 0
    assert re.search(r"predict one image \(\d+ GT boxes, timed\): ms detector [\d.]+, "
                     r"fcn [\d.]+, fcrf [\d.]+, refinement [\d.]+, merge [\d.]+", run.stdout)
    log = json.loads((tmp_path / "model" / "train.json").read_text())
    assert [log["stages"][s].get("steps") for s in ("detector", "fcn", "refine")] == [1, 300, 1]
    assert (tmp_path / "model" / "model.pt").is_file()


def test_gpu_check_says_in_one_line_when_torch_sees_no_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    run = subprocess.run([sys.executable, str(SCRIPT), "--device", "cuda", "--workdir",
                          str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert run.returncode == 1
    assert run.stderr.strip() == ("error: torch sees no GPU here; run with --device cpu to "
                                  "check the script")
