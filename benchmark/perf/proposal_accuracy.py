"""How close do joint proposals from part masks come to the joints people label?

Two datasets, each built the way a user builds one (``ppp prepare`` on an upstream tree):

- synthetic scenes (``synth.write_raw_tree``), compared with their exact ground truth where
  it is visible (v = 2: an occluded synthetic joint is often wholly hidden behind another
  person, where nobody would place it from the picture);
- real PASCAL-Part persons (``--samples DIR``: PASCAL-Part ``<id>.mat`` files with their
  VOC ``<id>.jpg``, linked, never copied), compared with the joints labelled by eye in
  ``tests/data/upstream_sample_joints.json`` (every labelled joint; without ``--samples``
  this part is skipped).

Every joint of every person is proposed from its maps alone (no labels), so left and right
come from the fine parts. Per joint name and overall it prints the figures of
``label.accuracy``: the share of compared joints with a proposal under the right name,
under either side's name, and within 1 and 0.5 units (the diagonal of the person's mask
box / 8), counting left/right and ignoring it. For the synthetic scenes it adds the share
within 0.5 head sizes (the GT's forehead-neck distance), the figure this benchmark
reported first. The baseline, in the same run: the same proposer on the part classes
alone (``fine_map=None``: segments from connected regions, sides from the facing rule),
its overall figures and the time ratio.

Usage: ``python benchmark/perf/proposal_accuracy.py [--images 200] [--seed 0]
[--workdir DIR] [--samples DIR] [--labels FILE]``; with ``--workdir`` the generated
datasets are kept and reused.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from pascal_person_pose import layout
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.label import accuracy
from pascal_person_pose.label.proposals import propose_person
from pascal_person_pose.metrics.pose_boxes import head_sizes
from pascal_person_pose.prepare import prepare
from pascal_person_pose.synth import write_raw_tree

REPO = Path(__file__).resolve().parents[2]
LABELS = REPO / "tests" / "data" / "upstream_sample_joints.json"


def prepared(raw: Path, root: Path) -> Path:
    if not layout.CanonicalLayout(root).annotations("val").exists():
        prepare(raw, root, progress=False)
    return root


def build_synthetic(work: Path, images: int, seed: int) -> Path:
    """Raw synthetic tree -> canonical dataset (skipped when ``work`` already holds one)."""
    if not (work / "raw").exists():
        write_raw_tree(work / "raw", images, seed)
    return prepared(work / "raw", work / "canonical")


def build_real(work: Path, samples: Path) -> Path:
    """The real samples linked into an upstream tree -> canonical dataset."""
    if not (work / "raw").exists():
        accuracy.link_part_samples(samples, work / "raw")
    return prepared(work / "raw", work / "canonical")


def propose_all(root: Path, fine: bool = True
                ) -> tuple[dict[tuple[str, int], tuple[np.ndarray, np.ndarray, np.ndarray]], float]:
    """``{(voc_id, instance): (GT keypoints, proposals, COCO box)}`` of both splits, and the
    seconds the proposals took (the maps are read before the clock starts)."""
    people, seconds = {}, 0.0
    for split in layout.SPLITS:
        for sample in Dataset(root, split):
            maps = (sample.part_map, sample.instance_map, sample.fine_part_map if fine else None)
            start = time.perf_counter()
            for person in sample.persons:
                proposed = propose_person(maps[0], maps[1], person.instance, fine_map=maps[2])
                people[sample.voc_id, person.instance] = (person.keypoints, proposed, person.bbox)
            seconds += time.perf_counter() - start
    return people, seconds


def report(title: str, truth: np.ndarray, units: np.ndarray, compare: np.ndarray | None,
           proposed: np.ndarray, baseline: np.ndarray) -> None:
    """The per-joint table of the proposals and the overall row of the baseline."""
    print(title)
    print(accuracy.format_table(accuracy.accuracy(truth, proposed, units, compare)))
    rows = accuracy.accuracy(truth, baseline, units, compare)
    print("baseline, part classes only: " + accuracy.format_table(rows[-1:]).splitlines()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep the generated datasets here and reuse them")
    parser.add_argument("--samples", type=Path,
                        help="folder of real PASCAL-Part <id>.mat + <id>.jpg files")
    parser.add_argument("--labels", type=Path, default=LABELS, help="joints labelled on them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        start = time.perf_counter()
        synthetic = build_synthetic(work / f"synthetic-{args.images}-{args.seed}", args.images,
                                    args.seed)
        real = build_real(work / "real", args.samples) if args.samples else None
        print(f"datasets built in {time.perf_counter() - start:.1f} s")
        people, seconds = propose_all(synthetic)
        coarse, coarse_seconds = propose_all(synthetic, fine=False)
        real_people = propose_all(real)[0] if real is not None else {}
        real_coarse = propose_all(real, fine=False)[0] if real is not None else {}

    gt, proposed, boxes = (np.stack(column) for column in zip(*people.values()))
    baseline = np.stack([coarse[k][1] for k in people])
    visible = gt[..., 2] == 2
    report(f"\nsynthetic: {len(gt)} persons, visible joints (v = 2); proposals "
           f"{1000 * seconds / len(gt):.1f} ms per person, part classes only "
           f"{1000 * coarse_seconds / len(gt):.1f} ms ({seconds / coarse_seconds:.2f}x)",
           gt, accuracy.box_units(boxes), visible, proposed, baseline)
    by_head = accuracy.accuracy(gt, proposed, head_sizes(gt), visible, thresholds=(0.5,))[-1]
    print(f"within 0.5 head sizes: {100 * by_head.pck[0.5]:.1f}% "
          f"(left/right ignored: {100 * by_head.pck_any_side[0.5]:.1f}%)")

    if real is None:
        print("\nreal: no --samples folder given, skipped")
        return
    labels = accuracy.read_labels(args.labels)
    missing = sorted(set(labels) - set(real_people))
    if missing:
        raise SystemExit(f"{args.labels}: persons {missing} are not in {args.samples}")
    keys = sorted(labels)
    report(f"\nreal PASCAL-Part samples: {len(keys)} persons, every labelled joint",
           np.stack([labels[k] for k in keys]),
           accuracy.box_units(np.stack([real_people[k][2] for k in keys])), None,
           np.stack([real_people[k][1] for k in keys]), np.stack([real_coarse[k][1] for k in keys]))


if __name__ == "__main__":
    main()
