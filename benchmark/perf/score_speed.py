"""How fast is `ppp score` on a val-sized split, beside the implementation before issue 10,
pycocotools and faster-coco-eval, each as a whole process, in the same run?

Builds a synthetic case in the canonical format (docs/formats.md) with the size of the
PASCAL-Person-Part val split: 1817 images around 500x375, about 3,500 persons painted with
the 6 part classes, about 10,000 predicted poses (jittered duplicates of every person plus
false positives) and a predicted part map per image. GT part maps are palette PNGs as
``ppp prepare`` writes them, predicted ones as ``write_submission`` writes them. Then it runs, ``--repeat`` times each
(the best run counts: the machine is shared):

- ``ppp score DATA SUB`` of this tree: every metric (pose mAP, ADK, part mIOU, mIOU by size),
  imports, reading and validation included; target <= 2.5 s wall on 2 cores;
- the same command of the tree at ``--baseline-rev`` (default: the commit before issue 10),
  extracted with ``git archive`` into a temporary folder;
- pycocotools' and faster-coco-eval's COCOeval (``iouType="keypoints"``, our 14 sigmas) on
  the same GT and ``pose.json``: load, evaluate, accumulate, summarize (poses only);
- ``--memory``: the peak resident memory of ``ppp score`` on the first N images of the case
  for each N given, to show that memory does not grow with the number of images.

Usage: ``python benchmark/perf/score_speed.py [--images 1817] [--workdir DIR]
[--memory 227 454 908 1817]``; with ``--workdir`` the generated case is kept and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from pascal_person_pose import layout, schema
from pascal_person_pose.sources import person_part
from pascal_person_pose.submission import encode_part_map, write_submission_files

REPO = Path(__file__).resolve().parents[2]
BASELINE_REV = "ad5b214"  # main before issue 10 (float32, 65k-bin part counts)

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
        person_part.write_label_png(canonical.parts(voc_id), parts)  # palette, as prepared
        _write_png(canonical.instances(voc_id), instances)
    coco = {"images": images, "annotations": annotations,
            "categories": [schema.coco_category()], "part_categories": schema.part_categories()}
    canonical.annotations("val").parent.mkdir(parents=True, exist_ok=True)
    canonical.annotations("val").write_text(json.dumps(coco))
    records = [{"image_id": i, "category_id": 1,
                "keypoints": [float(v) for v in np.concatenate(
                    [p * (s[:, None] > 0), s[:, None]], axis=1).ravel()],
                "score": float(s.mean())} for i, p, s in poses]
    pngs = {voc_id: encode_part_map(labels, voc_id) for voc_id, labels in pred_parts.items()}
    write_submission_files(submission, records, pngs, {"method": "jittered ground truth"})
    return {"images": len(images), "persons": len(annotations), "poses": len(records)}


_COCO_SCRIPT = """
import contextlib, io, json, sys
import numpy as np
from {module} import COCO
from {evaluator_module} import {evaluator}
gt_file, dt_file, sigmas = sys.argv[1], sys.argv[2], np.array(json.loads(sys.argv[3]))
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO(gt_file)
    dt = gt.loadRes(dt_file)
    ev = {evaluator}(gt, dt, iouType="keypoints"{sigma_arg})
    ev.params.kpt_oks_sigmas = sigmas
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
print(json.dumps({{"AP": float(ev.stats[0])}}))
"""
PYCOCOTOOLS = _COCO_SCRIPT.format(module="pycocotools.coco",
                                  evaluator_module="pycocotools.cocoeval",
                                  evaluator="COCOeval", sigma_arg="")
FASTER_COCO_EVAL = _COCO_SCRIPT.format(module="faster_coco_eval",
                                       evaluator_module="faster_coco_eval",
                                       evaluator="COCOeval_faster",
                                       sigma_arg=", kpt_oks_sigmas=sigmas")
PPP = "from pascal_person_pose.cli import main; main()"


# Peak RSS of a child includes what it inherited at fork: a big parent (this script holds
# numpy, OpenCV, pycocotools) would inflate it. A bare interpreter forks the measured
# command instead and reports its wait4 usage.
_LAUNCHER = """
import json, os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"status": os.waitstatus_to_exitcode(status), "rss_mb": usage.ru_maxrss / 1024,
               "cpu": usage.ru_utime + usage.ru_stime}, f)
"""


def measure(command: list[str], pythonpath: Path, repeat: int) -> dict:
    """The best wall time over ``repeat`` runs of a whole process, with its CPU seconds (user
    + system, all threads), peak resident memory and stdout."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    best: dict = {}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            usage_file = Path(tmp) / "usage.json"
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, str(usage_file),
                                   *command], env=env, capture_output=True, text=True)
            wall = time.perf_counter() - start
            usage = json.loads(usage_file.read_text())
        if usage["status"]:
            raise RuntimeError(f"{' '.join(command[:4])} failed: {done.stderr[-2000:]}")
        run = {"wall": wall, "cpu": usage["cpu"], "rss_mb": usage["rss_mb"],
               "stdout": done.stdout}
        if not best or wall < best["wall"]:
            best = run
    return best


def baseline_tree(rev: str, into: Path) -> Path:
    """The package as it was at ``rev``, extracted from git into ``into``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "pascal_person_pose"],
                             check=True, capture_output=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def subset(root: Path, submission: Path, n: int, out: Path) -> tuple[Path, Path]:
    """The first ``n`` images of the case (links to its files): for the memory curve."""
    data, sub = out / f"data{n}", out / f"sub{n}"
    if not (sub / "pose.json").exists():
        coco = json.loads(layout.CanonicalLayout(root).annotations("val").read_text())
        coco["images"] = coco["images"][:n]
        ids = {im["id"] for im in coco["images"]}
        coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in ids]
        target = layout.CanonicalLayout(data).annotations("val")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(coco))
        for folder in ("images", "parts", "instances"):
            (data / folder).symlink_to(root / folder)
        (sub / "parts").mkdir(parents=True)
        poses = json.loads((submission / "pose.json").read_text())
        (sub / "pose.json").write_text(json.dumps([p for p in poses if p["image_id"] in ids]))
        for im in coco["images"]:
            name = f"{im['voc_id']}.png"
            (sub / "parts" / name).symlink_to(submission / "parts" / name)
    return data, sub


def case_arguments(description: str) -> argparse.ArgumentParser:
    """The options of every benchmark on the val-sized case: its size, seed and workdir."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--images", type=int, default=1817)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep the generated case here and reuse it")
    return parser


def case(args: argparse.Namespace, tmp: str) -> tuple[Path, Path]:
    """The case's dataset root and submission, built unless ``--workdir`` holds them."""
    work = args.workdir or Path(tmp)
    root, submission = work / "dataset", work / "submission"
    if not (submission / "pose.json").exists():
        start = time.perf_counter()
        sizes = build_case(root, submission, args.images, args.seed)
        print(f"built {sizes} in {time.perf_counter() - start:.1f} s")
    return root, submission


def main() -> None:
    parser = case_arguments(__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline-rev", default=BASELINE_REV,
                        help="the git revision whose `ppp score` is the baseline")
    parser.add_argument("--memory", type=int, nargs="*", default=[],
                        help="image counts for the peak-memory curve of `ppp score`")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, submission = case(args, tmp)
        old = baseline_tree(args.baseline_rev, Path(tmp) / "baseline")
        gt_file = layout.CanonicalLayout(root).annotations("val")
        sigmas = json.dumps(sigma_list())
        score = [sys.executable, "-c", PPP, "score", str(root), str(submission)]
        load_before = os.getloadavg()[0]
        runs = {
            "ppp score, this tree (all metrics)": measure(score, REPO, args.repeat),
            f"ppp score at {args.baseline_rev} (all metrics)":
                measure(score, old, args.repeat),
            "pycocotools COCOeval keypoints (poses only)": measure(
                [sys.executable, "-c", PYCOCOTOOLS, str(gt_file),
                 str(submission / "pose.json"), sigmas], REPO, args.repeat),
            "faster-coco-eval keypoints (poses only)": measure(
                [sys.executable, "-c", FASTER_COCO_EVAL, str(gt_file),
                 str(submission / "pose.json"), sigmas], REPO, args.repeat),
        }
        memory = {}
        for n in args.memory:
            data, sub = subset(root, submission, n, root.parent / "memory")
            memory[n] = measure([sys.executable, "-c", PPP, "score", str(data),
                                          str(sub)], REPO, 1)
        load_after = os.getloadavg()[0]
    ours = runs["ppp score, this tree (all metrics)"]
    print(f"{'whole process, best of ' + str(args.repeat):<50} {'wall':>8} {'CPU':>8} "
          f"{'peak RSS':>9} {'wall vs ours':>13}")
    for name, run in runs.items():
        print(f"{name:<50} {run['wall']:6.2f} s {run['cpu']:6.2f} s {run['rss_mb']:6.0f} MB "
              f"{run['wall'] / ours['wall']:12.2f}x")
    for n, run in memory.items():
        print(f"memory: ppp score on {n:>5} images: peak RSS {run['rss_mb']:6.0f} MB, "
              f"{run['wall']:.2f} s")
    print(f"sanity: {_summary_line(ours['stdout'])}")
    print(f"(target: this tree <= 2.5 s wall; {os.cpu_count()} CPUs, load average "
          f"{load_before:.1f} before, {load_after:.1f} after)")


def sigma_list() -> list[float]:
    from pascal_person_pose.metrics.coco_oks import sigmas

    return sigmas().tolist()


def _summary_line(stdout: str) -> str:
    """The Total AP and mIOU lines of `ppp score`'s tables."""
    lines = stdout.splitlines()
    keep = [lines[i + 2].split() for i, line in enumerate(lines)
            if line.startswith(("Table 1", "Table 3")) and i + 2 < len(lines)]
    return "; ".join(f"{row[-1]}" for row in keep) + " (Table 1 Total, Table 3 Ave.)"


if __name__ == "__main__":
    main()
