"""How long does the reference model take per image, stage by stage, with and without boxes?

Runs :func:`reference_model.predict.predict_image` on the first ``--images``
images of a split (after one warm-up image) and reports the mean milliseconds per image of
each stage: detector, FCNs (Pose + Part FCN on the auto-zoomed crops), FCRF (proposals,
pairwise terms, the integer program), refinement (second-stage Part FCN) and merge (part
score averaging, pose NMS), for the paper's per-box inference and for the full-image
ablation (one FCRF over the whole image, paper Sec. 1: "forty times faster" with boxes).

- ``--checkpoint DIR``: a trained model (``ppp-baseline train``): every stage is real.
- ``--config paper|tiny``: randomly initialised networks, for timing the networks of a
  config without training it (e.g. ``paper`` on a GPU). A random detector finds no one,
  so this mode uses the ground-truth boxes; its FCRF numbers (proposals from random maps,
  a pairwise model that joins nothing) are not representative, the networks' are.

Usage::

    python benchmark/perf/inference_speed.py --checkpoint DIR --data ROOT [--split val]
        [--images 20] [--device cpu|cuda] [--threads 1] [--json OUT]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pascal_person_pose import atomic
from pascal_person_pose.dataset import Dataset
from reference_model.config import get_config
from reference_model.fcrf import PairwiseModel
from reference_model.fcrf.features import NUM_OFFSET_FEATURES, NUM_PAIR_TYPES
from reference_model.model import Networks, ReferenceModel
from reference_model.predict import STAGES, PredictOptions, predict_image


def untrained_model(config_name: str, device: str) -> ReferenceModel:
    """Random networks and pairwise models that join nothing (P = 0.5 everywhere)."""
    torch.manual_seed(0)
    pairwise = {}
    for use_segment in (True, False):
        shape = (NUM_PAIR_TYPES, NUM_OFFSET_FEATURES)
        empty = PairwiseModel(np.zeros((NUM_PAIR_TYPES, 0)), np.zeros(shape), np.ones(shape),
                              use_segment)
        pairwise[use_segment] = PairwiseModel(np.zeros((NUM_PAIR_TYPES, empty.num_inputs)),
                                              empty.lo, empty.hi, use_segment)
    return ReferenceModel(Networks.build(get_config(config_name)), pairwise, device)


def time_mode(model: ReferenceModel, dataset: Dataset, images: int,
              options: PredictOptions) -> dict:
    """Mean ms per image of every stage, boxes and poses per image, over ``images`` images."""
    samples = [dataset[i] for i in range(min(images + 1, len(dataset)))]
    predict_image(model, samples[0].image, options, samples[0].boxes)  # warm-up
    seconds = dict.fromkeys(STAGES, 0.0)
    boxes = poses = 0
    start = time.perf_counter()
    for sample in samples[1:]:
        result = predict_image(model, sample.image, options, sample.boxes)
        for stage, value in result.seconds.items():
            seconds[stage] += value
        boxes += len(result.boxes)
        poses += len(result.keypoints)
    wall = time.perf_counter() - start
    n = max(len(samples) - 1, 1)
    return {"ms_per_image": {k: 1000 * v / n for k, v in seconds.items()},
            "total_ms_per_image": 1000 * wall / n, "boxes_per_image": boxes / n,
            "poses_per_image": poses / n, "images": n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="training directory of `ppp-baseline train`")
    source.add_argument("--config", choices=["paper", "tiny"],
                        help="random networks of this config (network timings only)")
    parser.add_argument("--data", required=True, help="canonical dataset root")
    parser.add_argument("--split", default="val")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", help="also write the timings here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.checkpoint:
        model = ReferenceModel.load(args.checkpoint, args.device)
        modes = {"boxes": PredictOptions(), "full image": PredictOptions(full_image=True)}
    else:
        model = untrained_model(args.config, args.device)
        modes = {"GT boxes": PredictOptions(gt_boxes=True),
                 "full image": PredictOptions(full_image=True)}
    dataset = Dataset(args.data, args.split)
    results = {name: time_mode(model, dataset, args.images, options)
               for name, options in modes.items()}

    print(f"{model.config.name} config on {model.device}, torch threads "
          f"{torch.get_num_threads()}, {next(iter(results.values()))['images']} images "
          f"of {args.data} ({args.split})")
    header = ["mode", *STAGES, "total", "boxes/img", "poses/img"]
    print(" | ".join(f"{h:>10}" for h in header))
    for name, r in results.items():
        cells = [name, *(f"{r['ms_per_image'][s]:.1f}" for s in STAGES),
                 f"{r['total_ms_per_image']:.1f}", f"{r['boxes_per_image']:.2f}",
                 f"{r['poses_per_image']:.2f}"]
        print(" | ".join(f"{c:>10}" for c in cells))
    print("(milliseconds per image)")
    if len(results) == 2:
        boxes, full = results.values()
        ratio = full["ms_per_image"]["fcrf"] / max(boxes["ms_per_image"]["fcrf"], 1e-9)
        print(f"FCRF time, full image / boxes: {ratio:.2f}x")
    if args.json:
        atomic.write_json(args.json, {"config": model.config.name, "device": str(model.device),
                                      "threads": torch.get_num_threads(), "modes": results},
                          indent=2)


if __name__ == "__main__":
    main()
