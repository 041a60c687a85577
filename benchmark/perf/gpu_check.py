"""Does the ``paper`` config train and predict on a GPU? One step of every stage, one image.

For a machine with a GPU (CI never needs one); a few minutes on one. It renders 6 synthetic
images of 500x375 (PASCAL's size), then runs the real code paths of ``ppp-baseline`` on
``--device``:

1. ``train`` with the ``paper`` config, one step of the detector and one of the FCNs
   (ResNet-101 Pose FCN, VGG-16 LargeFOV Part FCN, batch 2, 512-pixel crops), through
   ``torchrun`` with ``--processes N`` > 1 (DDP, NCCL);
2. random networks propose no joints (probability > 0.2), so the check lifts the Pose FCN's
   joint score bias in the saved FCN state to give the FCRF proposals, then resumes
   ``train``: the pairwise stage (the FCNs on jittered crops on the GPU, the FCRF on the
   CPU) and one step of the second stage;
3. ``predict_image`` on one image with GT boxes, timed per stage.

Every figure printed is wall time on this machine, with the CUDA queue drained.

Usage::

    python benchmark/perf/gpu_check.py [--device cuda] [--processes 1] [--workdir DIR]
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

STEPS = ["--detector-steps", "1", "--fcn-steps", "1", "--refine-steps", "1",
         "--batch-size", "2", "--detector-batch-size", "2", "--refine-passes", "1",
         "--checkpoint-every", "1", "--quiet"]


def run_train(data: Path, out: Path, device: str, processes: int, stop_after: str | None):
    """``ppp-baseline train --config paper`` in a child process (torchrun for several)."""
    baseline = str(Path(sys.executable).parent / "ppp-baseline")
    command = [baseline]
    if processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc-per-node", str(processes), "--no-python", baseline]
    command += ["train", "--config", "paper", "--data", str(data), "--out", str(out),
                "--device", device, *STEPS]
    if stop_after:
        command += ["--stop-after", stop_after]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=Path(__file__).resolve().parents[2])
    return time.perf_counter() - start


def lift_joint_scores(state: Path) -> None:
    """Zero the Pose FCN's joint score biases in the FCN state: Pj ~ 0.5, proposals galore."""
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
    first = run_train(work / "data", out, args.device, args.processes, "fcn")
    lift_joint_scores(out / "state" / "fcn.pt")
    second = run_train(work / "data", out, args.device, args.processes, None)
    log = json.loads((out / TRAIN_LOG).read_text())
    print(f"train (paper config, {args.processes} process(es), {log['device']}): "
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
