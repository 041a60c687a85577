"""How close joint proposals come to joints that people labelled.

Used by ``benchmark/perf/proposal_accuracy.py`` (synthetic scenes and the real PASCAL-Part
samples) and by the tests that guard the figures. Every figure is a share of the compared
ground-truth joints of one joint name (or of all names), and a joint without a proposal
counts as a failure:

- ``named``: a proposal exists under the joint's own name;
- ``either_side``: a proposal exists under its name or its mirror partner's
  (``schema.JOINTS[j].flip``);
- ``pck@t``: the proposal under the joint's own name lies within ``t`` units;
- ``pck@t any side``: the nearer of the proposals under the joint's name and its mirror
  partner's lies within ``t`` units (left/right ignored).

The unit is the diagonal of the person's tight mask box divided by 8 (the metrics' pose-box
fallback for the head size), so it exists for every person, labelled or not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pascal_person_pose import layout, safe_json, schema
from pascal_person_pose.errors import InputError

THRESHOLDS = (1.0, 0.5)


@dataclass(frozen=True)
class JointAccuracy:
    """The figures of one joint name (or of all, ``name == "all joints"``)."""

    name: str
    compared: int
    named: float
    either_side: float
    pck: dict[float, float]  # threshold -> share, left/right counted
    pck_any_side: dict[float, float]  # threshold -> share, left/right ignored


def box_units(boxes: np.ndarray) -> np.ndarray:
    """The distance unit of each person: the diagonal of its COCO box ``[x, y, w, h]`` / 8."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.maximum(np.hypot(boxes[:, 2], boxes[:, 3]) / 8.0, 1e-9)


def accuracy(truth: np.ndarray, proposed: np.ndarray, units: np.ndarray,
             compare: np.ndarray | None = None,
             thresholds: tuple[float, ...] = THRESHOLDS) -> list[JointAccuracy]:
    """Per joint name, then over all names: how the proposals ``(P, 14, 3)`` (``v > 0`` where
    proposed) match the ground truth ``(P, 14, 3)``, with ``units`` ``(P,)`` in pixels.

    ``compare`` ``(P, 14)`` picks the ground-truth joints compared (default: ``v > 0``).
    """
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, schema.NUM_JOINTS, 3)
    proposed = np.asarray(proposed, dtype=np.float64).reshape(-1, schema.NUM_JOINTS, 3)
    compare = truth[..., 2] > 0 if compare is None else np.asarray(compare, bool)
    units = np.asarray(units, dtype=np.float64).reshape(-1, 1)

    def distance(candidate: np.ndarray) -> np.ndarray:
        d = np.hypot(*(candidate[..., :2] - truth[..., :2]).transpose(2, 0, 1)) / units
        return np.where(candidate[..., 2] > 0, d, np.inf)

    own = distance(proposed)
    mirrored = distance(proposed[:, schema.FLIP_INDEX])
    nearest = np.minimum(own, mirrored)
    rows = []
    columns = [(name, compare[:, [j]], slice(j, j + 1))
               for j, name in enumerate(schema.JOINT_NAMES)]
    columns.append(("all joints", compare, slice(None)))
    for name, chosen, cols in columns:
        n = int(chosen.sum())

        def share(hit: np.ndarray) -> float:
            return float((hit[:, cols] & chosen).sum() / n) if n else float("nan")

        rows.append(JointAccuracy(
            name=name, compared=n, named=share(np.isfinite(own)),
            either_side=share(np.isfinite(nearest)),
            pck={t: share(own <= t) for t in thresholds},
            pck_any_side={t: share(nearest <= t) for t in thresholds}))
    return rows


def format_table(rows: list[JointAccuracy]) -> str:
    """A plain-text table of :func:`accuracy`'s rows, shares in percent."""
    thresholds = list(rows[0].pck)
    head = (f"{'joint':<12}{'labelled':>9}{'named':>8}{'either':>8}"
            + "".join(f"{f'PCK@{t:g}':>9}" for t in thresholds)
            + "".join(f"{f'@{t:g} any':>9}" for t in thresholds))
    lines = [head]
    for row in rows:
        lines.append(f"{row.name:<12}{row.compared:>9}{100 * row.named:>8.1f}"
                     f"{100 * row.either_side:>8.1f}"
                     + "".join(f"{100 * row.pck[t]:>9.1f}" for t in thresholds)
                     + "".join(f"{100 * row.pck_any_side[t]:>9.1f}" for t in thresholds))
    return "\n".join(lines)


def read_labels(path: str | os.PathLike) -> dict[tuple[str, int], np.ndarray]:
    """Joints labelled by hand: ``{(voc_id, instance): (14, 3) float64}`` from a JSON file
    ``{"persons": [{"voc_id", "instance", "joints": {name: [x, y, v]}}]}`` (the format of
    ``tests/data/upstream_sample_joints.json``)."""
    doc = safe_json.load(path)
    persons = doc.get("persons") if isinstance(doc, dict) else None
    if not isinstance(persons, list):
        raise InputError(path, "must be an object with a list 'persons'", field="persons")
    labels: dict[tuple[str, int], np.ndarray] = {}
    for k, person in enumerate(persons):
        record = f"persons[{k}]"
        if not (isinstance(person, dict) and isinstance(person.get("voc_id"), str)
                and isinstance(person.get("instance"), int)
                and isinstance(person.get("joints"), dict)):
            raise InputError(path, "needs voc_id (string), instance (integer) and joints "
                                   "(object)", record=record)
        joints = np.zeros((schema.NUM_JOINTS, 3))
        for name, value in person["joints"].items():
            if name not in schema.name2joint:
                raise InputError(path, f"unknown joint {name!r}", record=record, field=name)
            if not (isinstance(value, list) and len(value) == 3 and value[2] in (1, 2)
                    and all(isinstance(v, (int, float)) and np.isfinite(v) for v in value)):
                raise InputError(path, "must be [x, y, v] with v 1 or 2", record=record,
                                 field=name)
            joints[schema.name2joint[name].index] = value
        key = (person["voc_id"], person["instance"])
        if key in labels:
            raise InputError(path, "person listed twice", record=record)
        labels[key] = joints
    return labels


def link_part_samples(samples: str | os.PathLike, raw: str | os.PathLike) -> list[str]:
    """An upstream tree (``layout.RawLayout``) at ``raw`` made of links to a folder of
    PASCAL-Part ``<id>.mat`` files with their ``<id>.jpg`` images, every image in val; returns
    the ids. ``ppp prepare`` then builds the canonical dataset of those files without a copy.
    """
    from pascal_person_pose.sources import voc

    samples, tree = Path(samples).absolute(), layout.RawLayout(raw)
    ids = sorted(p.stem for p in samples.glob("*.mat") if (samples / f"{p.stem}.jpg").is_file())
    if not ids:
        raise InputError(samples, "holds no <id>.mat with its <id>.jpg")
    for voc_id in ids:
        for source, link in ((samples / f"{voc_id}.mat", tree.part_mat(voc_id)),
                             (samples / f"{voc_id}.jpg", tree.jpeg(voc_id))):
            link.parent.mkdir(parents=True, exist_ok=True)
            if os.path.lexists(link):
                link.unlink()
            link.symlink_to(source)
    voc.write_id_list(tree.id_list("train"), [])
    voc.write_id_list(tree.id_list("val"), ids)
    return ids
