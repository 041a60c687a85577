"""Error diagnosis of a submission (``ppp analyze``): what its pose and part errors are.

Following Ronchi & Perona ("Benchmarking and Error Diagnosis in Multi-Instance Pose
Estimation", ICCV 2017), adapted from COCO's OKS to this benchmark's head-size threshold.
Distances are in units of a GT person's head size ``h`` (the one pose mAP uses), and
``alpha`` is pose mAP's threshold (0.5 by default). Every present joint of a prediction that
pose mAP assigned to a GT person gets the first category that applies:

- **good**: within ``alpha h`` of the person's own joint (a true positive of pose mAP);
- **jitter**: within ``jitter h`` (default 1.0) of the own joint, but not good: a near miss;
- **inversion**: within ``alpha h`` of the same person's mirror joint (left for right);
- **swap**: within ``alpha h'`` of the same joint or its mirror of another GT person of
  the image (``h'`` that person's head size);
- **miss**: none of these;
- **unlabelled**: the own joint is not labelled and no other category applies (a false
  positive of pose mAP that no correction can turn into a hit).

Every present joint of an unassigned prediction is a **background** false positive; every
labelled joint of a GT person that no prediction was assigned to is a joint of a **missed
person**, and a labelled joint that the assigned prediction leaves out is **absent**.
Persons are grouped by size as in mIOU by size, from the COCO ``area`` of their mask over
the image area. "AP after correcting" a type re-ranks the same detections with that type's
joints made true positives (background: with the background detections removed), so each
bar says how much AP that kind of error costs.

For parts: the split's confusion matrix normalised by GT class, mIOU by person size over
finer size bins, and the images with the lowest part mIOU and the most pose errors.

Writes ``report.html`` (self-contained: plots embedded as data URIs), the plots as PNGs
and ``analysis.json`` with every number.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pascal_person_pose import atomic
from pascal_person_pose.evaluation import Evaluation
from pascal_person_pose.metrics.parts import PartCounter, miou
from pascal_person_pose.metrics.pose_ap import ALPHA, JITTER, per_joint_ap, pose_ap_table
from pascal_person_pose.metrics.pose_boxes import head_sizes
from pascal_person_pose.schema import (FLIP_INDEX, JOINT_NAMES, NUM_JOINTS, NUM_PARTS,
                                       PART_NAMES, SIZE_BUCKETS, SIZE_THRESHOLDS, size_bucket)
from pascal_person_pose.submission import pose_arrays, read_part_map

ASSIGNED = ("good", "jitter", "inversion", "swap", "miss", "unlabelled")
CATEGORIES = (*ASSIGNED, "background")
CORRECTABLE = ("jitter", "inversion", "swap", "miss", "background")
FINE_THRESHOLDS = (0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16)  # mIOU-by-size curve bins
WORST = 10  # images listed per worst-images table


def joint_categories(pred: np.ndarray, gt: np.ndarray, assigned: np.ndarray,
                     alpha: float = ALPHA, jitter: float = JITTER) -> np.ndarray:
    """Category index (into :data:`CATEGORIES`) of every joint ``(P, 14)`` of one image.

    ``pred``: ``(P, 14, 3)`` with joint scores; ``gt``: ``(G, 14, 3)`` with visibilities;
    ``assigned``: ``(P,)`` each prediction's GT index or -1. Absent joints get -1.
    """
    out = np.full(pred.shape[:2], -1, np.intp)
    present = pred[:, :, 2] > 0
    if not len(pred):
        return out
    out[present] = CATEGORIES.index("background")
    if not len(gt):
        return out
    head = head_sizes(gt)  # (G,)
    labelled = gt[:, :, 2] > 0
    # distance[p, j, g, k]: prediction p's joint j to GT g's joint k, in g's head sizes
    diff = pred[:, :, None, None, :2] - gt[None, None, :, :, :2]
    distance = np.hypot(diff[..., 0], diff[..., 1]) / head[None, None, :, None]
    distance = np.where(labelled[None, None], distance, np.inf)
    joints = np.arange(NUM_JOINTS)
    same = distance[:, joints, :, joints].transpose(1, 0, 2)  # (P, 14, G): joint j to j
    mirror = distance[:, joints, :, FLIP_INDEX].transpose(1, 0, 2)  # joint j to mirror(j)
    for p in np.flatnonzero(assigned >= 0):
        g = assigned[p]
        own, flipped = same[p, :, g], mirror[p, :, g]
        others = np.delete(np.minimum(same[p], mirror[p]), g, axis=1)  # (14, G - 1)
        near_other = (others <= alpha).any(axis=1)
        category = np.select(
            [own <= alpha, own <= jitter, (flipped <= alpha) & (FLIP_INDEX != joints),
             near_other, labelled[g]],
            [ASSIGNED.index(c) for c in ("good", "jitter", "inversion", "swap", "miss")],
            ASSIGNED.index("unlabelled"))
        out[p] = np.where(present[p], category, -1)
    return out


class Analysis:
    """The diagnosis of one evaluated submission: :meth:`run`, then :meth:`to_json` and
    :meth:`write_report`."""

    def __init__(self, evaluated: Evaluation, *, jitter: float = JITTER,
                 fine_thresholds: Sequence[float] = FINE_THRESHOLDS):
        self.evaluated = evaluated
        self.alpha = evaluated.params["alpha"]
        self.jitter = jitter
        self.fine_thresholds = tuple(fine_thresholds)
        self.result: dict = {}
        self.worst: dict = {}

    def run(self) -> dict:
        evaluated = self.evaluated
        if evaluated.statistics is None:
            evaluated.summarize()
        out = {"params": {"alpha": self.alpha, "jitter": self.jitter,
                          "size_thresholds": evaluated.params["size_thresholds"],
                          "fine_thresholds": list(self.fine_thresholds)}}
        if evaluated.submission.has_pose:
            out["pose"] = self._pose()
        if evaluated.submission.has_parts:
            out["parts"] = self._parts()
        self.result = out
        return out

    # ---------------------------------------------------------------------------- poses

    def _pose(self) -> dict:
        evaluated, dataset = self.evaluated, self.evaluated.dataset
        arrays = pose_arrays(evaluated.submission.poses)
        thresholds = evaluated.params["size_thresholds"]
        by_joint = np.zeros((len(CATEGORIES) + 2, NUM_JOINTS), np.int64)  # + absent, missed
        by_size = np.zeros((len(CATEGORIES) + 2, len(SIZE_BUCKETS)), np.int64)
        missed_persons = np.zeros(len(SIZE_BUCKETS), np.int64)
        persons = np.zeros(len(SIZE_BUCKETS), np.int64)
        categories, errors_per_image = [], []
        absent, missed = len(CATEGORIES), len(CATEGORIES) + 1
        for image, entry in zip(evaluated.images, dataset.images):
            if not image.pose_annotated:
                errors_per_image.append(0)
                continue
            gt = dataset.keypoints(image.image_id)
            pred = arrays.keypoints[image.pose_index]
            index = {int(a): g for g, a in enumerate(image.annotation_ids)}
            assigned = np.array([index.get(int(a), -1) for a in image.pose_person], np.intp)
            cat = joint_categories(pred, gt, assigned, self.alpha, self.jitter)
            categories.append(cat[pred[:, :, 2] > 0])  # split order, as the detections
            area = np.array([a["area"] for a in dataset.annotations(image.image_id)], float)
            bucket = size_bucket(area / (entry["width"] * entry["height"]), thresholds)
            labelled = gt[:, :, 2] > 0
            persons += np.bincount(bucket[labelled.any(1)], minlength=len(SIZE_BUCKETS))
            for c in range(len(CATEGORIES)):
                p, j = np.nonzero(cat == c)
                by_joint[c] += np.bincount(j, minlength=NUM_JOINTS)
                if c < len(ASSIGNED):
                    by_size[c] += np.bincount(bucket[assigned[p]], minlength=len(SIZE_BUCKETS))
            unmatched = labelled & (image.match < 0)[:, None]
            left_out = labelled & (image.match >= 0)[:, None] & ~_present_in_match(
                image, arrays.keypoints)
            for row, mask in ((missed, unmatched), (absent, left_out)):
                g, j = np.nonzero(mask)
                by_joint[row] += np.bincount(j, minlength=NUM_JOINTS)
                by_size[row] += np.bincount(bucket[g], minlength=len(SIZE_BUCKETS))
            missed_persons += np.bincount(bucket[labelled.any(1) & (image.match < 0)],
                                          minlength=len(SIZE_BUCKETS))
            errors_per_image.append(int((cat > 0).sum() + unmatched.sum() + left_out.sum()))
        category = np.concatenate([np.zeros(0, np.intp), *categories])
        names = (*CATEGORIES, "absent", "missed_person")
        self.worst["pose"] = _worst(evaluated.images, np.array(errors_per_image, float),
                                    descending=True)
        return {"by_joint": {n: dict(zip(JOINT_NAMES, map(int, row)))
                             for n, row in zip(names, by_joint)},
                "by_size": {n: dict(zip(SIZE_BUCKETS, map(int, row)))
                            for n, row in zip(names, by_size) if n != "background"},
                "persons_by_size": dict(zip(SIZE_BUCKETS, map(int, persons))),
                "missed_persons_by_size": dict(zip(SIZE_BUCKETS, map(int, missed_persons))),
                "ap_after_correcting": self._corrected_ap(category),
                "worst_images": self.worst["pose"]}

    def _corrected_ap(self, category: np.ndarray) -> dict:
        """Total AP (and per column) as scored, and after correcting each error type."""
        pose = self.evaluated.statistics.pose
        positives = pose.positives.sum(axis=0)
        out = {"as scored": pose_ap_table(per_joint_ap(pose.det_joint, pose.det_score,
                                                       pose.det_tp, positives))["table"]}
        for name in CORRECTABLE:
            hit = category == CATEGORIES.index(name)
            keep = ~hit if name == "background" else np.ones(len(hit), bool)
            tp = pose.det_tp | (hit & (name != "background"))
            out[name] = pose_ap_table(per_joint_ap(pose.det_joint[keep], pose.det_score[keep],
                                                   tp[keep], positives))["table"]
        return out

    # ---------------------------------------------------------------------------- parts

    def _parts(self) -> dict:
        evaluated = self.evaluated
        stats = evaluated.statistics.parts
        confusion = stats.confusion.sum(axis=0)
        counter = PartCounter(self.fine_thresholds)
        fine = np.zeros((counter.buckets, NUM_PARTS, NUM_PARTS), np.int64)
        fine_persons = np.zeros(counter.buckets, np.int64)
        for index, image in enumerate(evaluated.dataset.images):
            labels, _ = read_part_map(evaluated.submission, image)
            sample = evaluated.dataset[index]
            counts = counter.count(sample.part_map, labels, sample.instance_map)
            fine += counts.by_size
            fine_persons += counts.persons
        per_image = miou(stats.confusion)
        self.worst["parts"] = _worst(evaluated.images, per_image, descending=False)
        bounds = [0.0, *self.fine_thresholds, 1.0]
        return {"confusion": confusion.tolist(),
                "confusion_by_gt": _normalised(confusion).tolist(),
                "miou_by_fine_size": [
                    {"from": lo, "to": hi, "persons": int(n),
                     "miou": None if not n or np.isnan(m) else float(m)}
                    for lo, hi, n, m in zip(bounds[:-1], bounds[1:], fine_persons, miou(fine))],
                "worst_images": self.worst["parts"]}

    # ---------------------------------------------------------------------------- output

    def to_json(self) -> dict:
        return self.result

    def write_report(self, out: str | os.PathLike) -> list[Path]:
        """Write ``report.html``, the plots and ``analysis.json`` into ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        plots = render_plots(self.result)
        written = []
        for name, png in plots.items():
            atomic.write_bytes(out / name, png)
            written.append(out / name)
        atomic.write_json(out / "analysis.json", self.result, indent=2)
        atomic.write_text(out / "report.html", render_html(self.result, plots))
        return [out / "report.html", out / "analysis.json", *written]


def _present_in_match(image, keypoints: np.ndarray) -> np.ndarray:
    """(G, 14): whether each GT person's assigned prediction has each joint."""
    present = np.zeros((len(image.match), NUM_JOINTS), bool)
    matched = image.match >= 0
    present[matched] = keypoints[image.match[matched], :, 2] > 0
    return present


def _normalised(confusion: np.ndarray) -> np.ndarray:
    rows = confusion.sum(axis=1, keepdims=True)
    return np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)


def _worst(images, values: np.ndarray, descending: bool) -> list[dict]:
    """The ``WORST`` images by a per-image value (NaN never counts as worst)."""
    defined = np.flatnonzero(~np.isnan(values))
    order = defined[np.argsort(-values[defined] if descending else values[defined],
                               kind="stable")][:WORST]
    return [{"voc_id": images[i].voc_id, "image_id": images[i].image_id,
             "value": float(values[i])} for i in order]


# ------------------------------------------------------------------------------- rendering

_COLOURS = {"good": "#4c9a2a", "jitter": "#a4d36e", "inversion": "#f2b134", "swap": "#e0702b",
            "miss": "#c8312d", "unlabelled": "#9e9e9e", "background": "#6b4c9a"}


def render_plots(result: dict) -> dict[str, bytes]:
    """The report's figures as PNG bytes by file name (matplotlib, imported only here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = {}

    def save(fig, name):
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
        plt.close(fig)
        plots[name] = buf.getvalue()

    if "pose" in result:
        pose = result["pose"]
        for key, labels, name, title in (
                ("by_joint", JOINT_NAMES, "pose_errors_by_joint.png",
                 "Predicted joints by category, per joint type"),
                ("by_size", SIZE_BUCKETS, "pose_errors_by_size.png",
                 "Predicted joints of assigned poses by category, per person size")):
            fig, ax = plt.subplots(figsize=(9 if key == "by_joint" else 6, 3.8))
            cats = CATEGORIES if key == "by_joint" else ASSIGNED
            counts = np.array([[pose[key][c][k] for k in labels] for c in cats], float)
            share = counts / np.maximum(counts.sum(axis=0), 1)
            bottom = np.zeros(len(labels))
            for c, row in zip(cats, share):
                ax.bar(range(len(labels)), row, bottom=bottom, label=c, color=_COLOURS[c])
                bottom += row
            ax.set_xticks(range(len(labels)), labels, rotation=45 if key == "by_joint" else 0,
                          ha="right" if key == "by_joint" else "center")
            ax.set_ylabel("share of predicted joints")
            ax.set_title(title, fontsize=10)
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
            save(fig, name)
        corrected = pose["ap_after_correcting"]
        fig, ax = plt.subplots(figsize=(6, 3.4))
        names = list(corrected)
        totals = [corrected[n]["Total"] or 0.0 for n in names]
        ax.barh(range(len(names)), totals,
                color=["#555555", *(_COLOURS[n] for n in names[1:])])
        for y, v in enumerate(totals):
            ax.text(v + 0.5, y, f"{v:.1f}", va="center", fontsize=8)
        ax.set_yticks(range(len(names)), ["as scored", *(f"fix {n}" for n in names[1:])])
        ax.invert_yaxis()
        ax.set_xlim(0, 105)
        ax.set_xlabel("pose mAP, Total (%)")
        ax.set_title("AP after correcting each error type", fontsize=10)
        save(fig, "ap_after_correcting.png")
    if "parts" in result:
        parts = result["parts"]
        fig, ax = plt.subplots(figsize=(5.2, 4.4))
        matrix = np.array(parts["confusion_by_gt"])
        image = ax.imshow(matrix, cmap="viridis", vmin=0, vmax=1)
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if v < 0.6 else "black")
        ax.set_xticks(range(NUM_PARTS), PART_NAMES, rotation=45, ha="right")
        ax.set_yticks(range(NUM_PARTS), PART_NAMES)
        ax.set_xlabel("predicted")
        ax.set_ylabel("ground truth")
        ax.set_title("Part confusion (each GT row sums to 1)", fontsize=10)
        fig.colorbar(image, ax=ax, fraction=0.046)
        save(fig, "part_confusion.png")
        fig, ax = plt.subplots(figsize=(6, 3.4))
        bins = [b for b in parts["miou_by_fine_size"] if b["miou"] is not None]
        centres = [np.sqrt(max(b["from"], 1e-4) * b["to"]) for b in bins]
        ax.plot(centres, [b["miou"] for b in bins], marker="o", color="#2a6f97")
        for x, b in zip(centres, bins):
            ax.annotate(str(b["persons"]), (x, b["miou"]), textcoords="offset points",
                        xytext=(0, 6), ha="center", fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("person size (fraction of the image area, bin centre)")
        ax.set_ylabel("mIOU (%)")
        ax.set_title("Part mIOU by person size (labels: persons per bin)", fontsize=10)
        ax.grid(alpha=0.3)
        save(fig, "miou_by_size.png")
    return plots


def render_html(result: dict, plots: dict[str, bytes]) -> str:
    """One self-contained page: the plots as data URIs, the tables, the definitions."""
    def img(name: str) -> str:
        data = base64.b64encode(plots[name]).decode("ascii")
        return f'<img alt="{name}" src="data:image/png;base64,{data}">'

    def table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row)
                       + "</tr>" for row in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    params = result["params"]
    parts = [f"<h1>Error diagnosis</h1><p class=note>alpha {params['alpha']} head sizes "
             f"(good), jitter up to {params['jitter']} head sizes; definitions: "
             "docs/metrics.md, section <i>Error diagnosis</i>.</p>"]
    if "pose" in result:
        pose = result["pose"]
        corrected = pose["ap_after_correcting"]
        parts += ["<h2>Pose errors</h2>", img("ap_after_correcting.png"),
                  table(["", *corrected["as scored"]],
                        [[("as scored" if n == "as scored" else f"fix {n}"),
                          *(_fmt(v) for v in row.values())] for n, row in corrected.items()]),
                  img("pose_errors_by_joint.png"),
                  table(["category", *JOINT_NAMES],
                        [[c, *pose["by_joint"][c].values()] for c in pose["by_joint"]]),
                  img("pose_errors_by_size.png"),
                  table(["category", *SIZE_BUCKETS],
                        [[c, *pose["by_size"][c].values()] for c in pose["by_size"]]
                        + [["persons", *pose["persons_by_size"].values()],
                           ["missed persons", *pose["missed_persons_by_size"].values()]]),
                  "<h3>Images with the most pose errors</h3>",
                  table(["image", "errors"], [[w["voc_id"], int(w["value"])]
                                              for w in pose["worst_images"]])]
    if "parts" in result:
        p = result["parts"]
        parts += ["<h2>Part errors</h2><div class=row>", img("part_confusion.png"),
                  img("miou_by_size.png"), "</div>",
                  table(["size from", "to", "persons", "mIOU"],
                        [[f"{b['from']:.3f}", f"{b['to']:.3f}", b["persons"], _fmt(b["miou"])]
                         for b in p["miou_by_fine_size"]]),
                  "<h3>Images with the lowest part mIOU</h3>",
                  table(["image", "mIOU"], [[w["voc_id"], _fmt(w["value"])]
                                            for w in p["worst_images"]])]
    style = ("body{font-family:system-ui,sans-serif;margin:24px;max-width:1100px;color:#222}"
             "table{border-collapse:collapse;margin:8px 0 20px;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:6px 0}"
             ".row{display:flex;gap:16px;flex-wrap:wrap}.note{color:#555}")
    return (f"<!DOCTYPE html><html><head><meta charset=utf-8><title>Error diagnosis</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.1f}"
