"""A deliberately plain, loop-by-loop reading of docs/metrics.md, for cross-checking only.

It shares no code with ``pascal_person_pose.metrics``: poses are walked as lists of
(x, y, c) triples, the assignment edits an IoU matrix the way MPII's ``assignGTmulti`` does,
AP and the confusion matrices are accumulated one entry and one pixel at a time. Slow on
purpose; tests run it on small random cases and demand the same numbers.

Below the reference: the random cases and hand-made poses the metric tests share (numpy
only generates them).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import strategies as st

from pascal_person_pose.schema import (ADK_COLUMNS, JOINT_NAMES, NUM_PARTS, POSE_AP_COLUMNS,
                                       SIZE_BUCKETS)

NAN = float("nan")


def as_triples(pose) -> list[tuple[float, float, float]]:
    return [(float(x), float(y), float(c)) for x, y, c in pose]


def box(pose) -> tuple[float, float, float, float] | None:
    xs = [x for x, y, c in as_triples(pose) if c > 0]
    ys = [y for x, y, c in as_triples(pose) if c > 0]
    if not xs:
        return None
    return min(xs), min(ys), max(xs), max(ys)


def iou(a, b) -> float:
    if a is None or b is None:
        return 0.0
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = inter_w * inter_h
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inter / (area_a + area_b - inter)


def head_size(pose) -> float:
    joints = as_triples(pose)
    forehead, neck = joints[0], joints[1]
    if forehead[2] > 0 and neck[2] > 0:
        return math.sqrt((forehead[0] - neck[0]) ** 2 + (forehead[1] - neck[1]) ** 2)
    b = box(pose)
    if b is None:
        return NAN
    return math.sqrt((b[2] - b[0] + 1) ** 2 + (b[3] - b[1] + 1) ** 2) / 8


def assign(gts, preds, min_iou) -> list[int]:
    """Per prediction the local index of its GT, or -1 (MPII assignGTmulti on an IoU matrix)."""
    m = [[iou(box(p), box(g)) for g in gts] for p in preds]
    for row in m:
        if not row:
            continue
        best = 0
        for j in range(len(row)):
            if row[j] > row[best]:
                best = j
        for j in range(len(row)):
            if j != best:
                row[j] = 0.0
    result = [-1] * len(preds)
    for j in range(len(gts)):
        best = -1
        for i in range(len(preds)):
            if best == -1 or m[i][j] > m[best][j]:
                best = i
        if best != -1 and m[best][j] > min_iou:
            result[best] = j
    return result


def voc_ap(entries: list[tuple[float, bool]], positives: int) -> float:
    if positives == 0:
        return NAN
    ranked = sorted(entries, key=lambda e: -e[0])  # Python's sort is stable
    recalls, precisions = [0.0], [0.0]
    tp = fp = 0
    for _, hit in ranked:
        if hit:
            tp += 1
        else:
            fp += 1
        recalls.append(tp / positives)
        precisions.append(tp / (tp + fp))
    recalls.append(1.0)
    precisions.append(0.0)
    for i in range(len(precisions) - 2, -1, -1):
        precisions[i] = max(precisions[i], precisions[i + 1])
    ap = 0.0
    for i in range(1, len(recalls)):
        if recalls[i] != recalls[i - 1]:
            ap += (recalls[i] - recalls[i - 1]) * precisions[i]
    return ap


def mean_defined(values) -> float:
    defined = [v for v in values if not math.isnan(v)]
    return sum(defined) / len(defined) if defined else NAN


def pose_ap(gt_images, pred_images, alpha=0.5, min_iou=0.0) -> tuple[list[float], dict]:
    """Per-joint AP (percent, NaN undefined) and the table, image by image, joint by joint."""
    entries = [[] for _ in JOINT_NAMES]
    positives = [0] * len(JOINT_NAMES)
    for gts, preds in zip(gt_images, pred_images):
        for g in gts:
            for j, (_, _, v) in enumerate(as_triples(g)):
                if v > 0:
                    positives[j] += 1
        match = assign(gts, preds, min_iou)
        for p, target in zip(preds, match):
            for j, (x, y, s) in enumerate(as_triples(p)):
                if s <= 0:
                    continue
                hit = False
                if target >= 0:
                    gx, gy, gv = as_triples(gts[target])[j]
                    distance = math.sqrt((x - gx) ** 2 + (y - gy) ** 2)
                    hit = gv > 0 and distance <= alpha * head_size(gts[target])
                entries[j].append((s, hit))
    per_joint = [100 * voc_ap(entries[j], positives[j]) for j in range(len(JOINT_NAMES))]
    table = {col: mean_defined([per_joint[JOINT_NAMES.index(n)] for n in names])
             for col, names in POSE_AP_COLUMNS.items()}
    return per_joint, table


def adk(gt_images, pred_images) -> tuple[list[float], dict, int, int]:
    """Per-joint ADK, table, unmatched and skipped GT counts, one GT pose at a time."""
    distances = [[] for _ in JOINT_NAMES]
    unmatched = skipped = 0
    for gts, preds in zip(gt_images, pred_images):
        for g in gts:
            gj = as_triples(g)
            if gj[0][2] <= 0 or gj[1][2] <= 0:
                skipped += 1
                continue
            scale = math.sqrt((gj[0][0] - gj[1][0]) ** 2 + (gj[0][1] - gj[1][1]) ** 2) / 2
            if scale == 0:
                skipped += 1
                continue
            best, best_iou = None, 0.0
            for p in preds:
                overlap = iou(box(p), box(g))
                if overlap > best_iou:
                    best, best_iou = p, overlap
            if best is None:
                unmatched += 1
                continue
            for j, ((x, y, s), (gx, gy, gv)) in enumerate(zip(as_triples(best), gj)):
                if gv > 0 and s > 0:
                    distances[j].append(math.sqrt((x - gx) ** 2 + (y - gy) ** 2) / scale)
    per_joint = [100 * sum(d) / len(d) if d else NAN for d in distances]
    table = {}
    for col, names in ADK_COLUMNS.items():
        pooled = [d for n in names for d in distances[JOINT_NAMES.index(n)]]
        table[col] = 100 * sum(pooled) / len(pooled) if pooled else NAN
    table["Ave."] = mean_defined(list(table.values()))
    return per_joint, table, unmatched, skipped


def confusion(pairs, ignore=255) -> list[list[int]]:
    """One confusion matrix over the pixels of all (gt, pred) map pairs."""
    cm = [[0] * NUM_PARTS for _ in range(NUM_PARTS)]
    for gt, pred in pairs:
        for r in range(len(gt)):
            for c in range(len(gt[r])):
                if int(gt[r][c]) != ignore:
                    cm[int(gt[r][c])][int(pred[r][c])] += 1
    return cm


def ious(cm) -> list[float]:
    out = []
    for k in range(NUM_PARTS):
        tp = cm[k][k]
        fp = sum(cm[i][k] for i in range(NUM_PARTS)) - tp
        fn = sum(cm[k][i] for i in range(NUM_PARTS)) - tp
        out.append(100 * tp / (tp + fp + fn) if tp + fp + fn else NAN)
    return out


def miou_by_size(images, thresholds, ignore=255) -> tuple[dict, dict]:
    """mIOU per bucket and person counts; ``images`` is a list of (gt, pred, instances)."""
    cms = {b: [[0] * NUM_PARTS for _ in range(NUM_PARTS)] for b in SIZE_BUCKETS}
    counts = {b: 0 for b in SIZE_BUCKETS}
    for gt, pred, inst in images:
        h, w = len(inst), len(inst[0])
        pixels: dict[int, list[tuple[int, int]]] = {}
        for r in range(h):
            for c in range(w):
                if int(inst[r][c]) > 0:
                    pixels.setdefault(int(inst[r][c]), []).append((r, c))
        bucket = {}
        for person, where in pixels.items():
            fraction = len(where) / (h * w)
            k = 0
            while k < len(thresholds) and fraction >= thresholds[k]:
                k += 1
            bucket[person] = SIZE_BUCKETS[k]
            counts[SIZE_BUCKETS[k]] += 1
        for name in SIZE_BUCKETS:
            members = [p for p in pixels if bucket[p] == name]
            for r in range(h):
                for c in range(w):
                    inside = any(
                        min(rr for rr, _ in pixels[p]) <= r <= max(rr for rr, _ in pixels[p])
                        and min(cc for _, cc in pixels[p]) <= c <= max(cc for _, cc in pixels[p])
                        for p in members)
                    owner = int(inst[r][c])
                    if not inside or (owner > 0 and bucket[owner] != name):
                        continue
                    if int(gt[r][c]) != ignore:
                        cms[name][int(gt[r][c])][int(pred[r][c])] += 1
    result = {name: (mean_defined(ious(cms[name])) if counts[name] else NAN)
              for name in SIZE_BUCKETS}
    return result, counts


def pose_nms(poses, scores, head=0.65, upper=0.5, lower=0.5, whole=0.4) -> list[int]:
    """Greedy pose NMS with the four group boxes, pair by pair."""
    head_joints = POSE_AP_COLUMNS["Head"]
    groups = [(head_joints, head), (POSE_AP_COLUMNS["U-Body"], upper),
              (POSE_AP_COLUMNS["Hip"] + POSE_AP_COLUMNS["Knee"] + POSE_AP_COLUMNS["Ankle"], lower),
              (JOINT_NAMES, whole)]

    def grown(pose, names):
        b = box([pose[JOINT_NAMES.index(n)] for n in names])
        if b is None:
            return None
        half = head_size(pose) / 2
        return b[0] - half, b[1] - half, b[2] + half, b[3] + half

    order = sorted(range(len(poses)), key=lambda i: -float(scores[i]))
    kept: list[int] = []
    for i in order:
        duplicate = False
        for k in kept:
            for names, limit in groups:
                if iou(grown(poses[i], names), grown(poses[k], names)) > limit:
                    duplicate = True
        if not duplicate:
            kept.append(i)
    return kept


# Random cases the cross-checks and property tests run on.

def random_split(rng, n_images: int = 6, max_gt: int = 4, max_pred: int = 6,
                 integer: bool = True):
    """Per-image GT poses (COCO visibility) and predictions (joint scores).

    Predictions are noisy copies of GT poses (so that matches happen), duplicates and
    strays. ``integer`` puts joints on a coarse pixel grid and scores on a few levels, which
    makes IoU, distance and score ties common, so that tie-breaking is exercised.
    """
    def noisy(centre, spread, count):
        xy = centre[:, None, :] + rng.normal(0, spread, (count, len(JOINT_NAMES), 2))
        return np.round(xy) if integer else xy

    gts, preds = [], []
    for _ in range(n_images):
        n_gt = int(rng.integers(0, max_gt + 1))
        gt = np.zeros((n_gt, len(JOINT_NAMES), 3))
        gt[..., :2] = noisy(rng.uniform(0, 120, (n_gt, 2)), 12, n_gt)
        gt[..., 2] = rng.choice([0, 1, 2], size=(n_gt, len(JOINT_NAMES)), p=[0.2, 0.3, 0.5])
        gt[gt[..., 2] == 0, :2] = 0
        n_pred = int(rng.integers(0, max_pred + 1))
        pred = np.zeros((n_pred, len(JOINT_NAMES), 3))
        source = rng.integers(-1, n_gt, n_pred)  # -1: a stray pose
        for i, s in enumerate(source):
            base = gt[s, :, :2] if s >= 0 else noisy(rng.uniform(0, 120, (1, 2)), 12, 1)[0]
            jitter = rng.normal(0, rng.choice([1.0, 4.0, 10.0]), (len(JOINT_NAMES), 2))
            pred[i, :, :2] = base + (np.round(jitter) if integer else jitter)
        pred[..., 2] = (rng.choice([0.25, 0.5, 0.75, 1.0], size=pred.shape[:2]) if integer
                        else rng.uniform(0.01, 1, pred.shape[:2]))
        pred[rng.uniform(size=pred.shape[:2]) < 0.2] = 0
        gts.append(gt)
        preds.append(pred)
    return gts, preds


def splits(max_images: int = 8):
    """Hypothesis strategy: a continuous random split (no ties), as ``(gts, preds)``."""
    return st.builds(lambda seed, n: random_split(np.random.default_rng(seed), n_images=n,
                                                  integer=False),
                     st.integers(0, 2**32 - 1), st.integers(1, max_images))


# Hand-made poses and result comparison shared by the test files.

# A standing person 41 x 101 pixels with forehead-neck distance 10 (head size 10).
TEMPLATE = np.array([[20, 0], [20, 10], [10, 15], [5, 35], [0, 55], [14, 50], [14, 75],
                     [14, 100], [30, 15], [35, 35], [40, 55], [26, 50], [26, 75], [26, 100]],
                    dtype=float)


def person(x=0.0, y=0.0, value=2.0):
    """A full pose at offset (x, y); ``value`` is v for GT or the joint score for predictions."""
    kp = np.zeros((14, 3))
    kp[:, :2] = TEMPLATE + (x, y)
    kp[:, 2] = value
    return kp


def table_equal(fast: dict, slow: dict):
    """A result table (None for undefined) equals a brute-force one (NaN for undefined)."""
    assert fast.keys() == slow.keys()
    for key in fast:
        if math.isnan(slow[key]):
            assert fast[key] is None, key
        else:
            assert fast[key] == pytest.approx(slow[key], abs=1e-9), key


def per_joint_equal(fast: dict, slow: list):
    table_equal(fast, dict(zip(JOINT_NAMES, slow)))
