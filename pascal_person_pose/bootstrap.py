"""Confidence intervals and paired comparisons of scores by resampling images.

Images, not persons or pixels, are the independent units of a split (people in one image
share its scene, its scale and its annotator), so each bootstrap resample draws the split's
images with replacement. Every table number is a function of per-image sums
(:class:`~.evaluation.Statistics`), so a resample is a vector of image weights (how often
each image was drawn) and its numbers follow from weighted sums, never from re-scoring
files:

- ADK, part IoU and mIOU by size: weighted sums of the per-image sums and counts.
- Pose AP: the split's detections are ranked once; in a resample each detection counts
  with its image's weight, and all its copies take adjacent ranks (they tie in score). The
  VOC all-point AP of that ranking is sum_t w_t / P x envelope_t over the true positives t,
  where P is the weighted number of positives and envelope_t the best precision at or after
  t (false-positive points never raise it, so the true positives suffice).

Intervals are percentile intervals (the 2.5% and 97.5% quantiles of the resampled values,
numpy's linear interpolation): they stay inside the metric's range (0-100), follow any
monotone transformation, and need no jackknife, unlike BCa, whose correction would cost
another pass per image while the statistics here are smooth ratios over ~1,800 images,
close to normal. A value undefined in some resamples (a size bucket that a resample
happens to leave empty) takes its interval from the resamples where it is defined; an
undefined point value has no interval (null).

A paired comparison draws the same resamples for both submissions and takes the interval
of the differences; its two-sided p-value is the smallest level at which that percentile
interval would exclude 0: ``min(1, 2 min(#{d <= 0} + 1, #{d >= 0} + 1) / (B + 1))``.
Identical submissions give differences of exactly 0 and p = 1.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from pascal_person_pose.evaluation import Statistics
from pascal_person_pose.metrics.adk import adk_table
from pascal_person_pose.metrics.parts import parts_by_size_result, parts_result
from pascal_person_pose.metrics.pose_ap import pose_ap_table
from pascal_person_pose.schema import NUM_JOINTS, SIZE_BUCKETS

METHOD = "percentile"
LEVEL = 0.95
CHUNK = 128  # resamples weighted at once: bounds memory at CHUNK x detections floats


def resample_weights(n_images: int, resamples: int, seed: int) -> np.ndarray:
    """``(resamples, n_images)`` float64: how often each image is drawn in each resample."""
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_images, size=(resamples, n_images))
    draws += np.arange(resamples)[:, None] * n_images
    return np.bincount(draws.ravel(), minlength=resamples * n_images).reshape(
        resamples, n_images).astype(np.float64)


def weighted_ap(score: np.ndarray, is_tp: np.ndarray, image: np.ndarray,
                positives: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """VOC all-point AP (fractions) of one joint type under image weights ``(B, I)``.

    ``score``, ``is_tp``, ``image``: the joint type's detections in split order;
    ``positives``: ``(I,)`` labelled GT joints per image. NaN where a resample has no
    positives. With all weights 1 this is :func:`.metrics.pose_ap.voc_ap`.
    """
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    tp_at = np.flatnonzero(np.asarray(is_tp, bool)[order])
    ranked_image = np.asarray(image)[order]
    total_positives = weights @ positives
    out = np.full(len(weights), np.nan)
    for rows in _chunks(len(weights)):
        w = weights[rows][:, ranked_image]
        seen = np.cumsum(w, axis=1)[:, tp_at]
        w_tp = w[:, tp_at]
        found = np.cumsum(w_tp, axis=1)
        precision = np.divide(found, seen, out=np.zeros_like(found), where=seen > 0)
        envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
        p = total_positives[rows]
        out[rows] = np.divide((w_tp * envelope).sum(axis=1), p, out=np.full(len(p), np.nan),
                              where=p > 0)
    return out


def _chunks(n: int) -> Iterator[slice]:
    return (slice(start, min(start + CHUNK, n)) for start in range(0, n, CHUNK))


def resampled_tables(stats: Statistics, weights: np.ndarray) -> list[dict]:
    """The score tables (as :func:`.evaluation.summarize` gives them) of every resample."""
    b = len(weights)
    sections: list[list[dict]] = []
    if stats.pose is not None:
        pose = stats.pose
        ap = np.stack([weighted_ap(pose.det_score[pose.det_joint == j],
                                   pose.det_tp[pose.det_joint == j],
                                   pose.det_image[pose.det_joint == j],
                                   pose.positives[:, j], weights)
                       for j in range(NUM_JOINTS)], axis=1)
        adk_total, adk_count = weights @ pose.adk_total, weights @ pose.adk_count
        sections.append([{"pose_ap": pose_ap_table(ap[k]),
                          "adk": adk_table(adk_total[k], adk_count[k])} for k in range(b)])
    if stats.parts is not None:
        parts = stats.parts
        n = len(parts.confusion)
        confusion = (weights @ parts.confusion.reshape(n, -1)).reshape(
            b, *parts.confusion.shape[1:])
        by_size = (weights @ parts.by_size.reshape(n, -1)).reshape(b, *parts.by_size.shape[1:])
        persons = weights @ parts.persons
        thresholds = stats.params["size_thresholds"]
        sections.append([{"parts": parts_result(confusion[k]),
                          "parts_by_size": parts_by_size_result(by_size[k], persons[k],
                                                                thresholds)}
                         for k in range(b)])
    return [{key: value for section in per_resample for key, value in section.items()}
            for per_resample in zip(*sections)] if sections else [{} for _ in range(b)]


# The numbers that get intervals, as paths into the score JSON: every table number.
def interval_paths(tables: dict) -> list[tuple[str, ...]]:
    paths = []
    if "pose_ap" in tables:
        paths += [("pose_ap", "table", c) for c in tables["pose_ap"]["table"]]
    if "adk" in tables:
        paths += [("adk", "table", c) for c in tables["adk"]["table"]]
    if "parts" in tables:
        paths += [("parts", "per_class", c) for c in tables["parts"]["per_class"]]
        paths.append(("parts", "miou"))
    if "parts_by_size" in tables:
        paths += [("parts_by_size", b) for b in SIZE_BUCKETS]
    return paths


def _get(tables: dict, path: tuple[str, ...]):
    for key in path:
        tables = tables[key]
    return tables


def _put(tree: dict, path: tuple[str, ...], value) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _values(resampled: list[dict], path: tuple[str, ...]) -> np.ndarray:
    return np.array([np.nan if (v := _get(t, path)) is None else v for t in resampled])


def _percentile_interval(values: np.ndarray, level: float) -> list[float] | None:
    defined = values[~np.isnan(values)]
    if not defined.size:
        return None
    low, high = np.quantile(defined, [(1 - level) / 2, (1 + level) / 2])
    return [float(low), float(high)]


def intervals(stats: Statistics, tables: dict, resamples: int, seed: int,
              level: float = LEVEL) -> tuple[dict, dict]:
    """``(intervals, bootstrap)`` for a score: the ``"intervals"`` tree (same nesting as the
    numbers, each leaf ``[low, high]`` or None) and the ``"bootstrap"`` description."""
    weights = resample_weights(len(stats.image_ids), resamples, seed)
    resampled = resampled_tables(stats, weights)
    tree: dict = {}
    for path in interval_paths(tables):
        point = _get(tables, path)
        _put(tree, path, None if point is None else _percentile_interval(
            _values(resampled, path), level))
    return tree, {"resamples": resamples, "seed": seed, "level": level, "method": METHOD}


def compare(stats_a: Statistics, stats_b: Statistics, tables_a: dict, tables_b: dict,
            resamples: int, seed: int, level: float = LEVEL) -> dict:
    """Per table number of A and B: both values, A - B, its paired interval and p-value.

    Both statistics must cover the same images in the same order (one split).
    """
    if not np.array_equal(stats_a.image_ids, stats_b.image_ids):
        raise ValueError("the two evaluations cover different images: compare on one split")
    weights = resample_weights(len(stats_a.image_ids), resamples, seed)
    resampled_a = resampled_tables(stats_a, weights)
    resampled_b = resampled_tables(stats_b, weights)
    shared = set(interval_paths(tables_b))
    rows = []
    for path in interval_paths(tables_a):
        if path not in shared:
            continue
        a, b = _get(tables_a, path), _get(tables_b, path)
        row = {"path": list(path), "a": a, "b": b, "difference": None, "interval": None,
               "p_value": None}
        if a is not None and b is not None:
            diffs = _values(resampled_a, path) - _values(resampled_b, path)
            diffs = diffs[~np.isnan(diffs)]
            row["difference"] = a - b
            row["interval"] = _percentile_interval(diffs, level)
            row["p_value"] = p_value(diffs)
        rows.append(row)
    return {"rows": rows, "bootstrap": {"resamples": resamples, "seed": seed, "level": level,
                                        "method": f"paired {METHOD}"}}


def p_value(differences: np.ndarray) -> float | None:
    """Two-sided bootstrap p-value of "no difference" from resampled differences."""
    n = len(differences)
    if not n:
        return None
    below, above = (differences <= 0).sum() + 1, (differences >= 0).sum() + 1
    return float(min(1.0, 2 * min(below, above) / (n + 1)))


# ------------------------------------------------------------------------------- printing

_TITLES = {"pose_ap": "pose mAP", "adk": "ADK", "parts": "part IoU",
           "parts_by_size": "part mIOU by size"}


def _label(path: list | tuple) -> str:
    return "part mIOU" if path[-1] == "miou" else f"{_TITLES[path[0]]} {path[-1]}"


def interval_lines(tree: dict, bootstrap: dict) -> list[str]:
    """Plain-text lines of an ``"intervals"`` tree, one per table number."""
    lines = [f"{100 * bootstrap['level']:g}% intervals ({bootstrap['method']} bootstrap over "
             f"images, {bootstrap['resamples']} resamples, seed {bootstrap['seed']}):"]
    for path in interval_paths(tree):  # the tree has the tables' nesting
        value = _get(tree, path)
        text = "-" if value is None else f"[{value[0]:.1f}, {value[1]:.1f}]"
        lines.append(f"  {_label(path):<28} {text}")
    return lines


def comparison_lines(result: dict, name_a: str, name_b: str) -> list[str]:
    """Plain-text table of :func:`compare`: A, B, A - B, its interval and p-value."""
    header = ["number", name_a, name_b, "difference", "95% interval", "p-value"]
    rows = [header]
    for row in result["rows"]:
        cells = [_label(row["path"]),
                 *("-" if v is None else f"{v:.2f}" for v in (row["a"], row["b"],
                                                             row["difference"]))]
        interval = row["interval"]
        cells.append("-" if interval is None else f"[{interval[0]:.2f}, {interval[1]:.2f}]")
        cells.append("-" if row["p_value"] is None else f"{row['p_value']:.3f}")
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    boot = result["bootstrap"]
    return [f"{name_a} vs {name_b}: {boot['method']} bootstrap over images, "
            f"{boot['resamples']} resamples, seed {boot['seed']}",
            *("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths))) for r in rows)]
