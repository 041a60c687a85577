"""Does the ``paper`` config train and predict on a GPU? Every stage briefly, one image.

For a machine with a GPU (CI never needs one); 98 s on an H200. It renders 6 synthetic
images of 500x375 (PASCAL's size), then runs the real code paths of ``ppp-baseline`` on
``--device``:

1. ``train`` with the ``paper`` config: one detector step and ``--fcn-steps`` steps of the
   FCNs (ResNet-101 Pose FCN, VGG-16 LargeFOV Part FCN, batch 2, 512-pixel crops), through
   ``torchrun`` with ``--processes N`` > 1 (DDP, NCCL);
2. the pairwise stage labels a pair true only when both proposals lie within 17 px of two
   joints of one person, so the Pose FCN must already point at joints: the FCNs overfit
   the 4 training images for a few hundred steps (seconds on a GPU), then the check zeroes
   the Pose FCN's joint score biases in the saved state (more proposals above 0.2, still at
   the learnt peaks) and resumes ``train``: the pairwise stage (the FCNs on jittered crops
   on the device, the FCRF on the CPU) and one step of the second stage;
3. ``predict_image`` on one image with GT boxes, timed per stage.

Every figure printed is wall time on this machine, with the CUDA queue drained.

Usage::

    python benchmark/perf/gpu_check.py [--device cuda] [--processes 1] [--fcn-steps 300]
                                       [--workdir DIR]

``--device cpu --config tiny`` runs the same path on a CPU in a minute
(``tests/test_gpu_check.py`` does, so the script cannot rot unseen).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pascal_person_pose.dataset import Dataset  # noqa: E402
from pascal_person_pose.prepare import prepare  # noqa: E402
from pascal_person_pose.synth import write_raw_tree  # noqa: E402
from reference_model.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from reference_model.model import TRAIN_LOG, Networks, ReferenceModel  # noqa: E402
from reference_model.predict import PredictOptions, predict_image  # noqa: E402

STEPS = ["--detector-steps", "1", "--refine-steps", "1", "--batch-size", "2",
         "--detector-batch-size", "2", "--refine-passes", "1", "--quiet"]


def run_train(data: Path, out: Path, args: argparse.Namespace, stop_after: str | None):
    """``ppp-baseline train`` in a child process (torchrun for several)."""
    baseline = str(Path(sys.executable).parent / "ppp-baseline")
    command = [baseline]
    if args.processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc-per-node", str(args.processes), "--no-python", baseline]
    command += ["train", "--config", args.config, "--data", str(data), "--out", str(out),
                "--device", args.device, "--fcn-steps", str(args.fcn_steps),
                "--checkpoint-every", str(args.fcn_steps), *STEPS]
    if stop_after:
        command += ["--stop-after", stop_after]
    start = time.perf_counter()
    if subprocess.run(command, cwd=Path(__file__).resolve().parents[2]).returncode:
        sys.exit(f"error: {' '.join(command)} failed (its error is above)")
    return time.perf_counter() - start


def lift_joint_scores(state: Path) -> None:
    """Zero the Pose FCN's joint score biases in the FCN state: more proposals above the
    threshold, at the peaks the few steps learnt."""
    checkpoint = load_checkpoint(state)
    networks = Networks.build(checkpoint.config)
    modules = {"pose": networks.pose, "part": networks.part}
    optimizer = torch.optim.Adam([p for m in modules.values() for p in m.parameters()])
    checkpoint.restore(modules, {"fcn": optimizer})
    with torch.no_grad():
        for layer in (networks.pose.score_head.deep, networks.pose.score_head.skip):
            layer.bias.zero_()
    save_checkpoint(state, checkpoint.config, modules, {"fcn": optimizer}, checkpoint.step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--processes", type=int, default=1,
                        help="training processes (torchrun, one GPU each)")
    parser.add_argument("--config", default="paper", choices=["paper", "tiny"],
                        help="tiny: the same path on a CPU in a minute")
    parser.add_argument("--fcn-steps", type=int, default=300,
                        help="FCN steps before the pairwise stage (it needs true proposals)")
    parser.add_argument("--workdir", help="where to write (default: a temporary folder)")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("error: torch sees no GPU here; run with --device cpu to check the script")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="ppp-gpu-check-"))
    start = time.perf_counter()
    write_raw_tree(work / "raw", 6, seed=0, width=500, height=375, val_fraction=0.34)
    prepare(work / "raw", work / "data", workers=1, progress=False)
    print(f"data: 6 synthetic images of 500x375 in {time.perf_counter() - start:.1f} s")
    if args.device.startswith("cuda"):
        print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
              f"{torch.cuda.device_count()} GPU(s)")

    out = work / "model"
    first = run_train(work / "data", out, args, "fcn")
    lift_joint_scores(out / "state" / "fcn.pt")
    second = run_train(work / "data", out, args, None)
    log = json.loads((out / TRAIN_LOG).read_text())
    print(f"train ({args.config} config, {args.processes} process(es), {log['device']}): "
          f"detector + FCNs {first:.1f} s, pairwise + second stage {second:.1f} s wall, "
          "with process start and model building")
    for stage, record in log["stages"].items():
        print(f"  {stage:8s} {record.get('steps', '-')!s:>4} step(s) "
              f"{record['seconds']:7.2f} s" + (f", {record['pairs']} pairs"
                                               if "pairs" in record else ""))

    model = ReferenceModel.load(out, args.device)
    dataset = Dataset(work / "data", "val")
    sample = dataset[0]
    for label in ("warm-up", "timed"):
        result = predict_image(model, sample.image, PredictOptions(gt_boxes=True), sample.boxes)
    timings = ", ".join(f"{stage} {1000 * s:.1f}" for stage, s in result.seconds.items())
    print(f"predict one image ({len(result.boxes)} GT boxes, {label}): ms {timings}; "
          f"total {1000 * sum(result.seconds.values()):.1f} ms")
    if args.device.startswith("cuda"):
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2 ** 30:.2f} GiB "
              "(this process: prediction)")
    print(f"OK in {time.perf_counter() - start:.1f} s; files in {work}")


if __name__ == "__main__":
    main()
