"""How many people does the trained detector find, and how many of its boxes are people?

Runs the detector of a training directory (``ppp-baseline train``) on every image of a
split and reports, at its configured score threshold and over a sweep of thresholds, the
recall (GT person boxes matched by a box with IoU >= 0.5, PASCAL VOC's greedy one-to-one
matching by score) and the precision (boxes that match a GT box), recall by person size
(Table 4's buckets, instance pixels over image pixels), and boxes per image. The baseline
in the same run is the oracle: GT boxes (recall and precision 1 by construction) and the
trivial count of people per image.

Usage::

    python benchmark/perf/detector_accuracy.py --checkpoint DIR --data ROOT [--split val]
        [--threads 1] [--json OUT]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pascal_person_pose import atomic, schema  # noqa: E402
from pascal_person_pose.dataset import Dataset  # noqa: E402
from reference_model.detector import CenterNetDetector, matched_truth  # noqa: E402
from reference_model.model import ReferenceModel  # noqa: E402

THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = ReferenceModel.load(args.checkpoint, need_segment_features=())
    config = model.config.detector
    everything = CenterNetDetector(model.networks.detector,
                                   dataclasses.replace(config, score_threshold=0.0))
    dataset = Dataset(args.data, args.split)
    images = []
    for sample in dataset:
        boxes, scores = everything.detect(sample.image)
        truth = np.concatenate([sample.boxes[:, :2], sample.boxes[:, :2] + sample.boxes[:, 2:]],
                               axis=1)
        area = sample.masks.reshape(len(truth), -1).sum(1) / (sample.width * sample.height)
        images.append((boxes, scores, truth, area))
    people = sum(len(t) for _, _, t, _ in images)
    rows = []
    for threshold in sorted({*THRESHOLDS, config.score_threshold}):
        found = kept = 0
        for boxes, scores, truth, _ in images:
            keep = scores > threshold
            kept += int(keep.sum())
            found += int(matched_truth(boxes[keep], truth).sum())
        rows.append({"threshold": threshold, "recall": found / max(people, 1),
                     "precision": found / max(kept, 1), "boxes_per_image": kept / len(images)})
    hits, sizes = [], []
    for boxes, scores, truth, area in images:
        hits.append(matched_truth(boxes[scores > config.score_threshold], truth))
        sizes.append(np.digitize(area, schema.SIZE_THRESHOLDS))
    hits, sizes = np.concatenate(hits), np.concatenate(sizes)
    by_size = {name: float(hits[sizes == k].mean()) if (sizes == k).any() else None
               for k, name in enumerate(schema.SIZE_BUCKETS)}
    print(f"{args.checkpoint}: {len(images)} images, {people} people "
          f"({people / len(images):.2f} per image; GT boxes: recall = precision = 1)")
    print(" threshold  recall  precision  boxes/image")
    for row in rows:
        mark = "  <- config" if row["threshold"] == config.score_threshold else ""
        print(f"{row['threshold']:10.2f}  {100 * row['recall']:6.1f}  {100 * row['precision']:9.1f}"
              f"  {row['boxes_per_image']:11.2f}{mark}")
    print("recall by size at the configured threshold: " + ", ".join(
        f"{k} {'-' if v is None else f'{100 * v:.1f}'}" for k, v in by_size.items()))
    if args.json:
        atomic.write_json(args.json, {"checkpoint": args.checkpoint, "split": args.split,
                                      "people": people, "images": len(images), "rows": rows,
                                      "recall_by_size": by_size,
                                      "threshold": config.score_threshold}, indent=2)


if __name__ == "__main__":
    main()
