"""How fast does ``Dataset`` load and iterate, against pycocotools + PIL doing the same?

Builds a dataset the way a user does: ``synth.write_raw_tree`` writes synthetic scenes in
the raw upstream formats, ``prepare.prepare`` turns them into the canonical dataset. Then,
in this process, on the ``val`` split (file cache warm: one untimed pass first, then the
best of ``--repeat`` passes):

- index: ``Dataset(root, "val")`` (read, validate, index) against ``COCO(json)``;
- full samples: every image with its RGB image, part map, instance map and all person
  masks, through ``Dataset`` against the naive baseline "pycocotools COCO + PIL":
  ``COCO.imgToAnns`` for the persons, ``PIL.Image.open`` for the three files and
  ``COCO.annToMask`` for each person mask;
- poses only: each image's (G, 14, 3) keypoints, through ``Dataset.keypoints`` against the
  same gathered from ``COCO.imgToAnns``;
- for information, ``TorchDataset`` with flip + scale + crop augmentation (no baseline).

Usage: ``python benchmark/perf/dataset_speed.py [--images 400] [--width 500 --height 375]
[--workdir DIR]``; with ``--workdir`` the generated dataset is kept and reused.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from pycocotools.coco import COCO

from pascal_person_pose import layout, schema
from pascal_person_pose.dataset import Dataset


def build(work: Path, images: int, seed: int, width: int, height: int) -> Path:
    """Raw synthetic tree -> canonical dataset (skipped when ``work`` already holds one)."""
    from pascal_person_pose.prepare import prepare
    from pascal_person_pose.synth import write_raw_tree

    root = work / "canonical"
    if not layout.CanonicalLayout(root).annotations("val").exists():
        start = time.perf_counter()
        write_raw_tree(work / "raw", images, seed, width=width, height=height)
        prepare(work / "raw", root, progress=False)
        print(f"built {images} images ({width}x{height}) in {time.perf_counter() - start:.1f} s")
    return root


def load_coco(path: str) -> COCO:
    """``COCO(path)`` without its progress prints."""
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(path)


def best_of(repeat: int, *runs: Callable[[], int]) -> tuple[list[float], int]:
    """Best wall time of each run over ``repeat`` rounds after one untimed warm-up, and the
    count the first run returns. Rounds alternate the runs, so that a change of machine
    load (the machine may be shared) hits all of them alike."""
    count = runs[0]()
    for run in runs[1:]:
        run()
    best = [float("inf")] * len(runs)
    for _ in range(repeat):
        for k, run in enumerate(runs):
            start = time.perf_counter()
            run()
            best[k] = min(best[k], time.perf_counter() - start)
    return best, count


def ours_full(dataset: Dataset) -> int:
    for sample in dataset:
        sample.image, sample.part_map, sample.instance_map, sample.masks
    return len(dataset)


def baseline_full(coco: COCO, canonical: layout.CanonicalLayout) -> int:
    """The same arrays, each sample's kept until the next one as a loader's would be (and as
    ``Sample`` keeps them), so that both reuse freed memory alike."""
    for entry in coco.dataset["images"]:
        voc_id = entry["voc_id"]
        masks = [coco.annToMask(a) for a in coco.imgToAnns[entry["id"]]]
        _ = (np.asarray(Image.open(canonical.image(voc_id)).convert("RGB")),
             np.asarray(Image.open(canonical.parts(voc_id))),
             np.asarray(Image.open(canonical.instances(voc_id))),
             np.stack(masks) if masks else np.zeros((0, entry["height"], entry["width"])))
    return len(coco.dataset["images"])


def ours_poses(dataset: Dataset) -> int:
    for entry in dataset.images:
        dataset.keypoints(entry["id"])
    return len(dataset)


def baseline_poses(coco: COCO) -> int:
    for entry in coco.dataset["images"]:
        np.array([a["keypoints"] for a in coco.imgToAnns[entry["id"]]],
                 dtype=np.float32).reshape(-1, schema.NUM_JOINTS, 3)
    return len(coco.dataset["images"])


def torch_augmented(dataset: Dataset) -> int:
    import torch

    from pascal_person_pose.torch_dataset import TorchDataset
    from pascal_person_pose.transforms import Compose, RandomCrop, RandomFlip, RandomScale

    torch.manual_seed(0)
    adapter = TorchDataset(dataset, Compose([RandomFlip(), RandomScale(0.7, 1.3),
                                             RandomCrop(321, 321)]))
    for k in range(len(adapter)):
        adapter[k]
    return len(adapter)


def measure(root: Path, repeat: int) -> list[tuple[str, float, float | None]]:
    """Rows of (what, Dataset value, baseline value or None), values as printed."""
    annotation_file = str(layout.CanonicalLayout(root).annotations("val"))
    dataset = Dataset(root, "val")
    coco = load_coco(annotation_file)
    print(f"val split: {len(dataset)} images, {len(coco.dataset['annotations'])} persons")

    def load_ours() -> int:
        return len(Dataset(root, "val"))

    def load_baseline() -> int:
        return len(load_coco(annotation_file).imgs)

    (ours_s, base_s), _ = best_of(repeat, load_ours, load_baseline)
    rows = [("index: read + check + index the JSON (ms)", 1000 * ours_s, 1000 * base_s)]
    for name, ours, baseline in (
            ("full samples: image + parts + instances + masks (samples/s)",
             lambda: ours_full(dataset), lambda: baseline_full(coco, dataset.layout)),
            ("poses only (images/s)", lambda: ours_poses(dataset), lambda: baseline_poses(coco))):
        (ours_s, base_s), count = best_of(repeat, ours, baseline)
        rows.append((name, count / ours_s, count / base_s))
    (seconds,), count = best_of(1, lambda: torch_augmented(dataset))
    rows.append(("TorchDataset, flip + scale + crop 321 (samples/s)", count / seconds, None))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="keep the generated dataset here and reuse it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = build(args.workdir or Path(tmp), args.images, args.seed, args.width, args.height)
        rows = measure(root, args.repeat)
    print(f"{'':<62}{'Dataset':>10}{'COCO + PIL':>12}{'speed-up':>10}")
    for name, ours, baseline in rows:
        if baseline is None:
            print(f"{name:<62}{ours:>10.1f}")
            continue
        speedup = baseline / ours if name.endswith("(ms)") else ours / baseline
        print(f"{name:<62}{ours:>10.1f}{baseline:>12.1f}{speedup:>9.2f}x")
    print(f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
