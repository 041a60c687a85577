"""How close do joint proposals from part masks come to the ground truth?

Builds a synthetic dataset the way a user does (``synth.write_raw_tree`` then
``prepare.prepare``), then proposes every joint of every person of both splits from its
part and instance maps alone (``label.proposals.propose_person`` with no labels, so left
and right come from the facing-the-camera rule) and compares each proposal with the
ground truth joint when that joint is labelled visible (v = 2).

Per joint type it prints: the visible GT joints, the share that got a proposal, the mean
distance of those proposals in head sizes (the GT pose's forehead-neck distance, or the
pose-box diagonal / 8 when either is missing, as the metrics do), the share of proposals
within 0.5 head size, and the share of all visible GT joints with a proposal within 0.5
head size (a miss counts as a failure). "mirror-free" repeats the last figure with each
person's proposals mirrored when that fits its GT better: the gap is the cost of the
left/right decision (persons seen from behind).

Usage: ``python benchmark/perf/proposal_accuracy.py [--images 200] [--seed 0]
[--workdir DIR]``; with ``--workdir`` the generated dataset is kept and reused.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from pascal_person_pose import layout, schema
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.label.proposals import propose_person
from pascal_person_pose.metrics.pose_boxes import head_sizes


def build(work: Path, images: int, seed: int) -> Path:
    """Raw synthetic tree -> canonical dataset (skipped when ``work`` already holds one)."""
    from pascal_person_pose.prepare import prepare
    from pascal_person_pose.synth import write_raw_tree

    root = work / "canonical"
    if not layout.CanonicalLayout(root).annotations("val").exists():
        start = time.perf_counter()
        write_raw_tree(work / "raw", images, seed)
        prepare(work / "raw", root, progress=False)
        print(f"built {images} synthetic images in {time.perf_counter() - start:.1f} s")
    return root


def collect(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """GT and proposed joints of every person of both splits, (P, 14, 3) each."""
    gt, proposed = [], []
    for split in layout.SPLITS:
        for sample in Dataset(root, split):
            if not sample.persons:
                continue
            part_map, instance_map = sample.part_map, sample.instance_map
            for person in sample.persons:
                gt.append(person.keypoints)
                proposed.append(propose_person(part_map, instance_map, person.instance))
    return np.stack(gt), np.stack(proposed)


def distances(gt: np.ndarray, proposed: np.ndarray) -> np.ndarray:
    """Proposal-to-GT distance in head sizes, (P, 14); NaN where either is missing."""
    d = np.hypot(*(proposed[..., :2] - gt[..., :2]).transpose(2, 0, 1))
    d /= head_sizes(gt)[:, None]
    return np.where((gt[..., 2] == 2) & (proposed[..., 2] > 0), d, np.nan)


def person_mean(d: np.ndarray) -> np.ndarray:
    """Mean distance per person over its compared joints (inf when there are none)."""
    count = (~np.isnan(d)).sum(axis=1)
    return np.where(count > 0, np.nansum(d, axis=1) / np.maximum(count, 1), np.inf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep the generated dataset here and reuse it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = build(args.workdir or Path(tmp), args.images, args.seed)
        start = time.perf_counter()
        gt, proposed = collect(root)
        seconds = time.perf_counter() - start
    strict = distances(gt, proposed)
    mirrored = distances(gt, proposed[:, schema.FLIP_INDEX])
    use_mirror = person_mean(mirrored) < person_mean(strict)
    mirror_free = np.where(use_mirror[:, None], mirrored, strict)

    visible = gt[..., 2] == 2
    rows = []
    for j, name in enumerate(schema.JOINT_NAMES):
        n = int(visible[:, j].sum())
        found = ~np.isnan(strict[visible[:, j], j])
        d = strict[visible[:, j], j][found]
        free = mirror_free[visible[:, j], j]
        rows.append((name, n, found.mean(), d.mean(), (d <= 0.5).mean(), (d <= 0.5).sum() / n,
                     np.nansum(free <= 0.5) / n))
    all_d = strict[visible & ~np.isnan(strict)]
    total = (("all joints", int(visible.sum()), (~np.isnan(strict[visible])).mean(),
              all_d.mean(), (all_d <= 0.5).mean(), (all_d <= 0.5).sum() / visible.sum(),
              np.nansum(mirror_free[visible] <= 0.5) / visible.sum()),)
    print(f"{len(gt)} persons; proposals for all of them in {seconds:.1f} s "
          f"({1000 * seconds / len(gt):.1f} ms per person, reading the maps included)")
    print(f"{'joint':<12}{'GT vis.':>8}{'proposed':>10}{'mean dist':>11}{'<=0.5 of prop.':>16}"
          f"{'<=0.5 of GT':>13}{'mirror-free':>13}")
    for name, n, share, mean, within, within_gt, free in rows + list(total):
        print(f"{name:<12}{n:>8}{share:>10.1%}{mean:>11.2f}{within:>16.1%}{within_gt:>13.1%}"
              f"{free:>13.1%}")


if __name__ == "__main__":
    main()
