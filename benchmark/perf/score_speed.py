"""How fast is `ppp score` on a val-sized split, and how does pose scoring compare with COCOeval?

Builds a synthetic case in the canonical format (docs/formats.md) with the size of the
PASCAL-Person-Part val split: 1817 images around 500x375, about 3,500 persons painted with
the 6 part classes, about 10,000 predicted poses (jittered duplicates of every person plus
false positives) and a predicted part map per image. Then, in this process:

- scores it end to end with :func:`pascal_person_pose.scoring.score` (read, validate, pose
  mAP, ADK, part mIOU, mIOU by size), the number the <= 10 s target is about;
- times the phases on their own;
- runs pycocotools' COCOeval (``iouType="keypoints"``, our 14 sigmas) on the same persons
  and predictions (evaluate + accumulate; building its index is not counted) and prints
  the ratio to our pose mAP + ADK (target: at least 3x faster).

Usage: ``python benchmark/perf/score_speed.py [--images 1817] [--workdir DIR]``; with
``--workdir`` the generated case is kept and reused by later runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from pascal_person_pose import layout, schema
from pascal_person_pose.submission import write_submission_files

# A standing person in its box (fractions of width, height), right side on the image's left.
_TEMPLATE = np.array([(0.5, 0.04), (0.5, 0.18), (0.3, 0.2), (0.12, 0.38), (0.12, 0.55),
                      (0.4, 0.55), (0.4, 0.78), (0.4, 0.97), (0.7, 0.2), (0.88, 0.38),
                      (0.88, 0.55), (0.6, 0.55), (0.6, 0.78), (0.6, 0.97)])
_ID = {p.name: p.id for p in schema.PARTS}


def _body(h: int, w: int) -> np.ndarray:
    """Part ids of a body filling an h x w box (0 outside the body), from box fractions."""
    fy, fx = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij")
    out = np.zeros((h, w), dtype=np.uint8)
    centre = np.abs(fx - 0.5)
    out[((fx - 0.5) / 0.16) ** 2 + ((fy - 0.09) / 0.09) ** 2 <= 1] = _ID["head"]
    out[(fy >= 0.18) & (fy < 0.55) & (centre < 0.25)] = _ID["torso"]
    arm = (centre >= 0.25) & (centre < 0.45)
    out[arm & (fy >= 0.18) & (fy < 0.38)] = _ID["upper_arm"]
    out[arm & (fy >= 0.38) & (fy < 0.58)] = _ID["lower_arm"]
    leg = (centre >= 0.03) & (centre < 0.2)
    out[leg & (fy >= 0.55) & (fy < 0.78)] = _ID["upper_leg"]
    out[leg & (fy >= 0.78)] = _ID["lower_leg"]
    return out


def _write_png(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), labels, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"could not write {path}")


def build_case(root: Path, submission: Path, n_images: int, seed: int) -> dict:
    """Write the canonical split ``val`` under ``root`` and a submission directory."""
    rng = np.random.default_rng(seed)
    canonical = layout.CanonicalLayout(root)
    images, annotations, poses, pred_parts = [], [], [], {}
    for k in range(n_images):
        voc_id = f"2008_{k + 1:06d}"
        image_id = layout.image_id(voc_id)
        width, height = (500, 375) if rng.random() < 0.7 else (int(rng.integers(333, 500)),
                                                              int(rng.integers(281, 500)))
        parts = np.zeros((height, width), dtype=np.uint8)
        instances = np.zeros((height, width), dtype=np.uint8)
        people = min(int(rng.poisson(0.93)) + 1, 12)
        boxes = []
        for person in range(1, people + 1):
            h = int(np.exp(rng.uniform(np.log(24), np.log(1.1 * height))))
            w = max(int(h * rng.uniform(0.35, 0.55)), 4)
            x0 = int(rng.integers(-w // 4, width - 3 * w // 4))
            y0 = int(rng.integers(-h // 5, height - h // 2))
            body = _body(h, w)
            ys, xs = slice(max(y0, 0), min(y0 + h, height)), slice(max(x0, 0), min(x0 + w, width))
            crop = body[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
            painted = crop > 0
            parts[ys, xs][painted] = crop[painted]
            instances[ys, xs][painted] = person
            boxes.append((x0, y0, w, h))
        parts[instances == 0] = np.where(rng.random((instances == 0).sum()) < 0.002,
                                         schema.IGNORE_LABEL, 0).astype(np.uint8)
        for person, (x0, y0, w, h) in enumerate(boxes, start=1):
            joints = _TEMPLATE * (w, h) + (x0, y0) + rng.normal(0, 0.015 * h, (14, 2))
            inside = ((joints >= 0) & (joints < (width, height))).all(axis=1)
            visibility = np.where(rng.random(14) < 0.12, 1, 2) * inside * (rng.random(14) > 0.04)
            keypoints = np.concatenate([joints * (visibility[:, None] > 0), visibility[:, None]], 1)
            mask = np.asfortranarray((instances == person).astype(np.uint8))
            rle = mask_utils.encode(mask)
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                "area": int(mask_utils.area(rle)), "iscrowd": 0,
                "segmentation": {"size": [height, width], "counts": rle["counts"].decode()},
                "keypoints": [float(v) for v in keypoints.ravel()],
                "num_keypoints": int((visibility > 0).sum()), "instance": person})
            for _ in range(1 + int(rng.poisson(1.6))):  # detections of this person
                pred = joints + rng.normal(0, rng.choice([0.02, 0.06, 0.2]) * h, (14, 2))
                score = rng.uniform(0.05, 1.0, 14) * (rng.random(14) > 0.1)
                poses.append((image_id, pred, score))
        for _ in range(int(rng.poisson(0.7))):  # false positives
            h = rng.uniform(30, height)
            pred = _TEMPLATE * (0.45 * h, h) + rng.uniform(0, (width - 0.45 * h, height - h))
            poses.append((image_id, pred, rng.uniform(0.01, 0.6, 14) * (rng.random(14) > 0.2)))
        shifted = np.roll(parts, tuple(rng.integers(-3, 4, 2)), axis=(0, 1))
        shifted[shifted == schema.IGNORE_LABEL] = 0
        pred_parts[voc_id] = shifted
        images.append({"id": image_id, "file_name": f"{voc_id}.jpg", "width": width,
                       "height": height, "voc_id": voc_id})
        colours = schema.PART_COLOURS[np.minimum(parts, schema.NUM_PARTS - 1)]
        canonical.image(voc_id).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(canonical.image(voc_id)), colours[..., ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, 80])
        _write_png(canonical.parts(voc_id), parts)
        _write_png(canonical.instances(voc_id), instances)
    coco = {"images": images, "annotations": annotations,
            "categories": [schema.coco_category()], "part_categories": schema.part_categories()}
    canonical.annotations("val").parent.mkdir(parents=True, exist_ok=True)
    canonical.annotations("val").write_text(json.dumps(coco))
    records = [{"image_id": i, "category_id": 1,
                "keypoints": [float(v) for v in np.concatenate(
                    [p * (s[:, None] > 0), s[:, None]], axis=1).ravel()],
                "score": float(s.mean())} for i, p, s in poses]
    pngs = {}
    for voc_id, labels in pred_parts.items():
        ok, data = cv2.imencode(".png", labels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        pngs[voc_id] = data.tobytes()
    write_submission_files(submission, records, pngs, {"method": "jittered ground truth"})
    return {"images": len(images), "persons": len(annotations), "poses": len(records)}


@contextlib.contextmanager
def _timed(timings: dict, name: str):
    """Record wall and CPU seconds (all threads) of a block: on a shared machine the CPU
    time shows the cost, the wall time what a user waits."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    timings[name] = (time.perf_counter() - wall, time.process_time() - cpu)


def run(root: Path, submission: Path) -> dict:
    from pascal_person_pose.metrics.coco_oks import coco_evaluator
    from pascal_person_pose.dataset import Dataset
    from pascal_person_pose.metrics.adk import adk
    from pascal_person_pose.metrics.pose_ap import pose_ap
    from pascal_person_pose.scoring import pose_inputs, score, score_parts
    from pascal_person_pose.submission import pose_arrays, read_submission, validate_submission

    timings: dict = {}
    with _timed(timings, "score end to end"):
        result = score(root, submission)
    with _timed(timings, "  load dataset + read + validate"):
        dataset = Dataset(root, "val")
        sub = read_submission(submission)
        validate_submission(sub, dataset, check_pixels=False)
        arrays = pose_arrays(sub.poses)
    with _timed(timings, "  pose mAP + ADK"):
        gt, pred = pose_inputs(dataset, arrays)
        pose_ap(gt, pred)
        adk(gt, pred)
    with _timed(timings, "  part mIOU + by size (PNG decoding included)"):
        score_parts(dataset, sub)
    evaluator = coco_evaluator(dataset.coco, sub.poses)
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints its progress
        with _timed(timings, "pycocotools COCOeval keypoints (evaluate + accumulate)"):
            evaluator.evaluate()
            evaluator.accumulate()
    ours = timings["  pose mAP + ADK"]
    coco = timings["pycocotools COCOeval keypoints (evaluate + accumulate)"]
    return {"timings": timings, "ratio": (coco[0] / ours[0], coco[1] / ours[1]),
            "total_ap": result["pose_ap"]["table"]["Total"], "miou": result["parts"]["miou"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1817)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep the generated case here and reuse it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        root, submission = work / "dataset", work / "submission"
        if not (submission / "pose.json").exists():
            start = time.perf_counter()
            sizes = build_case(root, submission, args.images, args.seed)
            print(f"built {sizes} in {time.perf_counter() - start:.1f} s")
        load_before = os.getloadavg()[0]
        report = run(root, submission)
    print(f"{'':<58} {'wall':>8} {'CPU':>8}")
    for name, (wall, cpu) in report["timings"].items():
        print(f"{name:<58} {wall:6.2f} s {cpu:6.2f} s")
    wall, cpu = report["ratio"]
    print(f"COCOeval / (pose mAP + ADK): {wall:.1f}x wall, {cpu:.1f}x CPU")
    print(f"(sanity: Total AP {report['total_ap']:.1f}, mIOU {report['miou']:.1f}; "
          f"{os.cpu_count()} CPUs, load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after)")


if __name__ == "__main__":
    main()
