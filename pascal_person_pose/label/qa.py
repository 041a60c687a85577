"""QA checks of pose labels against the part masks and the split's own statistics.

``ppp label check`` runs them over a split; the labeler shows them for the current person.
Each problem is a :class:`Flag` with a severity (error > warning > info) and a score that
orders flags of one severity (larger = worse). Distances are in head sizes of the person:
``||forehead - neck||`` when both are labelled, else the diagonal of the person's mask box
divided by 8 (the metrics' pose-box fallback, taken from the mask, which every person has).

Checks:

- ``lr_crossing``: left/right order across the body. The body's down axis runs from the
  neck / shoulders to the hips; the order of a left/right pair along the axis' normal says
  whether the person faces the camera. Shoulders and hips that disagree mean one pair is
  swapped (error); an elbow, wrist, knee or ankle pair crossed relative to the torso is a
  warning (arms can fold, legs can cross). Pairs closer than ``crossing_min`` across the
  axis (a person seen from the side) are not judged.
- ``outside_mask``: a visible joint farther than ``mask_margin`` from the person's mask
  (error).
- ``wrong_part``: a visible joint farther than ``part_margin`` from every pixel of its own
  parts (``schema.JOINTS[j].parts``) owned by the person (error).
- ``bone_length``: a bone much longer than the split's typical length for this person's
  scale (warning). Bone lengths are modelled as ``log L[p, b] = s[p] + m[b] + e`` (person
  scale times typical proportion), fitted by median polish over the split; a bone is
  flagged when its residual is beyond ``bone_z`` robust deviations (MAD) of its type and
  the bone is more than ``bone_ratio`` times its expected length. Only too long: a limb
  pointing at the camera (a seated person's thighs) is legitimately short in the image,
  but no pose makes a bone longer than it is. Persons with fewer than ``min_bones``
  labelled bones have no reliable scale and are not judged.
- ``wrong_side`` and ``swapped_sides`` (images with a fine part map): the fine parts name
  the person's own left and right (``luarm``, ``rlleg``, ...). A visible joint of one side
  whose own parts within ``part_margin`` (at least ``min_margin_px``) are mostly of the
  other side is ``wrong_side`` (error); when every judged joint of a person, at least
  ``min_side_joints`` of them, disagrees this way, the person's left and right labels are
  swapped as a whole: one ``swapped_sides`` error for the person instead (mirror it).
  A joint with no sided part of its own classes near it (a shoulder on the torso's edge)
  is not judged; neither are occluded joints, which may lie over the other side's limb.
- ``missing_joint``: an unlabelled joint that the part masks place (a joint proposal
  exists) and that has no pending proposal (warning). Images with ``pose_annotated:
  false`` are part-only by design and skipped.
- ``pending_proposal``: proposals waiting for confirmation (info, one flag per person).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from pascal_person_pose import progress as progress_bar
from pascal_person_pose import schema
from pascal_person_pose.label import proposals as proposals_module
from pascal_person_pose.label.store import person_arrays

SEVERITIES = ("error", "warning", "info")
CHECKS = ("lr_crossing", "wrong_side", "swapped_sides", "outside_mask", "wrong_part",
          "bone_length", "missing_joint", "pending_proposal")
_BONES = np.array(schema.SKELETON_INDEX)
_BONE_NAMES = tuple(f"{e.a}-{e.b}" for e in schema.SKELETON)
_TORSO_PAIRS = tuple((limb.joints["r"][0], limb.joints["l"][0]) for limb in proposals_module.LIMBS)
_LIMB_PAIRS = tuple((limb.joints["r"][k], limb.joints["l"][k])
                    for limb in proposals_module.LIMBS for k in (1, 2))
_UPPER = (proposals_module.NECK, *_TORSO_PAIRS[0])
_HIPS = _TORSO_PAIRS[1]
_NAMES = schema.JOINT_NAMES
_SIDE_OF_JOINT = tuple({"r": 1, "l": -1}.get(j.name[:2].rstrip("_"), 0) for j in schema.JOINTS)
_SIDE_NAMES = {1: "right", -1: "left"}


@dataclass(frozen=True)
class QAParams:
    """Thresholds of the checks (distances in head sizes)."""

    mask_margin: float = 0.25
    part_margin: float = 0.25
    min_margin_px: float = 2.0  # margins never go below this (tiny persons, label noise)
    crossing_min: float = 0.1
    bone_z: float = 4.0
    bone_ratio: float = 1.5
    min_bones: int = 4
    min_bone_samples: int = 8  # a bone type seen fewer times in the split is not judged
    min_side_joints: int = 2  # judged joints needed to call a whole person swapped


@dataclass(frozen=True)
class Flag:
    """One problem of one person."""

    severity: str
    check: str
    score: float
    voc_id: str
    image_id: int
    annotation_id: int
    joints: tuple[str, ...]
    message: str

    def to_dict(self) -> dict:
        return {**asdict(self), "joints": list(self.joints)}


@dataclass(frozen=True)
class PersonRef:
    voc_id: str
    image_id: int
    annotation_id: int


def _nanmedian(values: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmedian`` that gives NaN for an all-NaN slice without warning. Not through
    ``warnings.catch_warnings``: it swaps process-wide state, and the labeling server's
    threads check at once (one thread's restore let another's warning through)."""
    empty = np.isnan(values).all(axis=axis, keepdims=True)
    median = np.nanmedian(np.where(empty, 0.0, values), axis=axis)
    return np.where(np.squeeze(empty, axis=axis), np.nan, median)


def _log_bones(keypoints: np.ndarray) -> np.ndarray:
    """Log bone lengths ``(P, 14 bones)``, NaN where a bone's joint is unlabelled."""
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, schema.NUM_JOINTS, 3)
    a, b = kp[:, _BONES[:, 0]], kp[:, _BONES[:, 1]]
    length = np.hypot(a[..., 0] - b[..., 0], a[..., 1] - b[..., 1])
    both = (a[..., 2] > 0) & (b[..., 2] > 0)
    return np.where(both, np.log(np.maximum(length, 0.5)), np.nan)


class BoneStats:
    """Typical log bone proportions of a split and their robust spread."""

    def __init__(self, typical: np.ndarray, spread: np.ndarray, params: QAParams):
        self.typical, self.spread, self.params = typical, spread, params

    @classmethod
    def fit(cls, keypoints: np.ndarray, params: QAParams = QAParams()) -> "BoneStats":
        """Median polish of the split's ``(P, 14, 3)`` poses (persons with enough bones)."""
        logs = _log_bones(keypoints)
        logs = logs[(~np.isnan(logs)).sum(axis=1) >= params.min_bones]
        scale = np.zeros(len(logs))
        typical = np.full(logs.shape[1], np.nan)
        for _ in range(4):
            typical = _nanmedian(logs - scale[:, None], axis=0)
            scale = _nanmedian(logs - typical[None], axis=1)
        residual = logs - scale[:, None] - typical[None]
        spread = 1.4826 * _nanmedian(np.abs(residual), axis=0)
        typical[(~np.isnan(logs)).sum(axis=0) < params.min_bone_samples] = np.nan
        return cls(typical, spread, params)

    def residuals(self, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(residual, z)`` per person and bone, ``(P, 14)``; NaN where not judged."""
        logs = _log_bones(keypoints)
        enough = (~np.isnan(logs)).sum(axis=1) >= self.params.min_bones
        scale = _nanmedian(logs - self.typical[None], axis=1)
        residual = np.where(enough[:, None], logs - scale[:, None] - self.typical[None], np.nan)
        # a floor of 5 % keeps a split of identical proportions from flagging noise
        return residual, residual / np.maximum(np.nan_to_num(self.spread, nan=0.0), 0.05)


def person_scale(keypoints: np.ndarray, bbox: np.ndarray) -> float:
    """Head size of a person: forehead-neck when both are labelled, else mask-box diagonal / 8."""
    kp = np.asarray(keypoints, dtype=np.float64)
    f, n = proposals_module.FOREHEAD, proposals_module.NECK
    if kp[f, 2] > 0 and kp[n, 2] > 0 and np.hypot(*(kp[f, :2] - kp[n, :2])) > 0:
        return float(np.hypot(*(kp[f, :2] - kp[n, :2])))
    return max(float(np.hypot(bbox[2], bbox[3])) / 8, 1.0)


def _crossings(kp: np.ndarray, scale: float, params: QAParams) -> list[tuple]:
    """(check, severity, score, joints, message) of left/right crossings."""
    labelled = kp[:, 2] > 0
    upper = [j for j in _UPPER if labelled[j]]
    hips = [j for j in _HIPS if labelled[j]]
    down = np.array([0.0, 1.0])
    if upper and hips:
        axis = kp[hips, :2].mean(axis=0) - kp[upper, :2].mean(axis=0)
        if np.hypot(*axis) > 0:
            down = axis / np.hypot(*axis)
    right = np.array([-down[1], down[0]])  # the person's right when facing the camera

    def separation(pair: tuple[int, int]) -> float | None:
        r, l = pair
        if not (labelled[r] and labelled[l]):
            return None
        value = float((kp[r, :2] - kp[l, :2]) @ right) / scale
        return value if abs(value) >= params.crossing_min else None

    out = []
    shoulders, hips_sep = (separation(p) for p in _TORSO_PAIRS)
    if shoulders is not None and hips_sep is not None and np.sign(shoulders) != np.sign(hips_sep):
        joints = tuple(_NAMES[j] for p in _TORSO_PAIRS for j in p)
        out.append(("lr_crossing", "error", min(abs(shoulders), abs(hips_sep)), joints,
                    "shoulders and hips disagree on which way the torso faces: one left/right "
                    "pair is swapped"))
    facing = shoulders if shoulders is not None else hips_sep
    if facing is None:
        return out
    side = "the camera" if facing > 0 else "away"
    for pair in _LIMB_PAIRS:
        sep = separation(pair)
        if sep is not None and np.sign(sep) != np.sign(facing):
            out.append(("lr_crossing", "warning", abs(sep), tuple(_NAMES[j] for j in pair),
                        f"{_NAMES[pair[0]]} and {_NAMES[pair[1]]} are crossed while the torso "
                        f"faces {side}"))
    return out


def _distance_maps(mask: np.ndarray, part_map: np.ndarray, instance_map: np.ndarray,
                   instance: int, box: tuple[int, int, int, int]) -> dict:
    """Distance (px) to the person's mask and to each of its joints' part sets, in ``box``."""
    x0, y0, x1, y1 = box
    own = instance_map[y0:y1, x0:x1] == instance
    parts = np.where(own, part_map[y0:y1, x0:x1], 0)

    def distance_to(region: np.ndarray) -> np.ndarray:
        if not region.any():
            return np.full(region.shape, np.inf, np.float32)
        return cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, 3)

    maps = {"mask": distance_to(mask[y0:y1, x0:x1])}
    for part_set in set(schema.JOINT_PART_IDS):
        maps[part_set] = distance_to(np.isin(parts, part_set))
    return maps


def _placement(kp: np.ndarray, scale: float, part_map: np.ndarray, instance_map: np.ndarray,
               instance: int, mask: np.ndarray, params: QAParams) -> list[tuple]:
    """``outside_mask`` and ``wrong_part`` flags of the visible joints."""
    visible = np.flatnonzero(kp[:, 2] == 2)
    if not len(visible):
        return []
    height, width = instance_map.shape
    pad = int(np.ceil(max(params.mask_margin, params.part_margin) * scale)) + 2
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    jx, jy = np.round(kp[visible, 0]).astype(int), np.round(kp[visible, 1]).astype(int)
    x0, x1 = max(min(*cols[:1], *jx) - pad, 0), min(max(*cols[-1:], *jx) + pad + 1, width)
    y0, y1 = max(min(*rows[:1], *jy) - pad, 0), min(max(*rows[-1:], *jy) + pad + 1, height)
    maps = _distance_maps(mask, part_map, instance_map, instance, (x0, y0, x1, y1))
    cx, cy = np.clip(jx - x0, 0, x1 - x0 - 1), np.clip(jy - y0, 0, y1 - y0 - 1)
    mask_limit = max(params.mask_margin * scale, params.min_margin_px)
    part_limit = max(params.part_margin * scale, params.min_margin_px)
    out = []
    for j, px, py in zip(visible, cx, cy):
        off_mask = float(maps["mask"][py, px])
        if off_mask > mask_limit:
            out.append(("outside_mask", "error", off_mask / scale, (_NAMES[j],),
                        f"{_NAMES[j]} is visible but {off_mask / scale:.2f} head sizes outside "
                        "the person's mask"))
            continue
        off_part = float(maps[schema.JOINT_PART_IDS[j]][py, px])
        if off_part > part_limit:
            parts = " / ".join(schema.JOINTS[j].parts)
            where = ("the person shows no such part" if np.isinf(off_part)
                     else f"{off_part / scale:.2f} head sizes away")
            out.append(("wrong_part", "error", min(off_part / scale, 99.0), (_NAMES[j],),
                        f"{_NAMES[j]} is visible but not on its part ({parts}): {where}"))
    return out


def _sides(kp: np.ndarray, scale: float, fine_map: np.ndarray, instance_map: np.ndarray,
           instance: int, params: QAParams) -> list[tuple]:
    """``wrong_side`` flags of the visible sided joints against the fine parts' sides, or
    one ``swapped_sides`` flag when all of the person's judged joints disagree."""
    radius = int(np.ceil(max(params.part_margin * scale, params.min_margin_px)))
    height, width = instance_map.shape
    judged = []  # (joint, own-side pixels, other-side pixels, the other side's fine parts)
    for j in np.flatnonzero((kp[:, 2] == 2) & (np.array(_SIDE_OF_JOINT) != 0)):
        x, y = int(round(kp[j, 0])), int(round(kp[j, 1]))
        window = (slice(max(y - radius, 0), min(y + radius + 1, height)),
                  slice(max(x - radius, 0), min(x + radius + 1, width)))
        fine = fine_map[window][instance_map[window] == instance]
        fine = fine[np.isin(schema.FINE_ID_TO_PART[fine], schema.JOINT_PART_IDS[j])]
        sides = schema.FINE_ID_SIDE[fine]
        own, other = int((sides == _SIDE_OF_JOINT[j]).sum()), int((sides == -_SIDE_OF_JOINT[j]).sum())
        if own + other:
            names = sorted({schema.id2fine[f].name for f in np.unique(fine[sides != _SIDE_OF_JOINT[j]])
                            if schema.FINE_ID_SIDE[f]})
            judged.append((j, own, other, names))
    wrong = [(j, own, other, names) for j, own, other, names in judged if other > own]
    if len(judged) >= params.min_side_joints and len(wrong) == len(judged):
        joints = tuple(_NAMES[j] for j, *_ in wrong)
        return [("swapped_sides", "error", float(len(wrong)), joints,
                 f"left and right are swapped for the whole person: all {len(wrong)} judged "
                 f"joints ({', '.join(joints)}) lie on the other side's parts; mirror the labels")]
    return [("wrong_side", "error", other / (own + other), (_NAMES[j],),
             f"{_NAMES[j]} lies on the person's {_SIDE_NAMES[-_SIDE_OF_JOINT[j]]} "
             f"{' / '.join(names)}, not its {_SIDE_NAMES[_SIDE_OF_JOINT[j]]} side: "
             "left and right mixed up?")
            for j, own, other, names in wrong]


def _bone_lengths(kp: np.ndarray, stats: BoneStats) -> list[tuple]:
    residual, z = stats.residuals(kp[None])
    residual, z = residual[0], z[0]
    ratio = np.exp(np.abs(np.nan_to_num(residual)))
    out = []
    for b in np.flatnonzero((np.nan_to_num(z) > stats.params.bone_z)
                            & (ratio > stats.params.bone_ratio)):
        a, c = schema.SKELETON_INDEX[b]
        out.append(("bone_length", "warning", float(z[b]), (_NAMES[a], _NAMES[c]),
                    f"bone {_BONE_NAMES[b]} is {ratio[b]:.1f}x too long for this person's "
                    "other bones"))
    return out


def check_person(keypoints: np.ndarray, proposed: np.ndarray, part_map: np.ndarray,
                 instance_map: np.ndarray, instance: int, mask: np.ndarray, bbox: np.ndarray,
                 stats: BoneStats | None, ref: PersonRef, pose_annotated: bool = True,
                 params: QAParams = QAParams(), fine_map: np.ndarray | None = None
                 ) -> list[Flag]:
    """All flags of one person (unsorted). ``keypoints`` and ``proposed`` are ``(14, 3)``;
    ``mask`` is the person's mask, ``bbox`` its COCO box; ``fine_map`` the image's fine part
    map (``Sample.fine_part_map``), when it has one."""
    kp = np.asarray(keypoints, dtype=np.float64)
    scale = person_scale(kp, bbox)
    raw = _crossings(kp, scale, params)
    if fine_map is not None:
        raw += _sides(kp, scale, fine_map, instance_map, instance, params)
    raw += _placement(kp, scale, part_map, instance_map, instance, mask, params)
    if stats is not None:
        raw += _bone_lengths(kp, stats)
    pending = np.asarray(proposed)[:, 2] > 0
    if pose_annotated:
        found = proposals_module.propose_person(part_map, instance_map, instance, kp, fine_map)
        missing = np.flatnonzero((kp[:, 2] == 0) & (found[:, 2] > 0) & ~pending)
        if len(missing):
            names = tuple(_NAMES[j] for j in missing)
            raw.append(("missing_joint", "warning", float(len(missing)), names,
                        f"not labelled although its parts are visible: {', '.join(names)}"))
    if pending.any():
        names = tuple(_NAMES[j] for j in np.flatnonzero(pending))
        raw.append(("pending_proposal", "info", float(len(names)), names,
                    f"{len(names)} proposed joints to confirm: {', '.join(names)}"))
    return [Flag(severity, check, float(score), ref.voc_id, ref.image_id, ref.annotation_id,
                 joints, message) for check, severity, score, joints, message in raw]


def sort_flags(flags: list[Flag]) -> list[Flag]:
    """Most severe first; within a severity, the largest score first."""
    return sorted(flags, key=lambda f: (SEVERITIES.index(f.severity), -f.score, f.image_id,
                                        f.annotation_id))


def check_split(root: str | os.PathLike, split: str, params: QAParams = QAParams(),
                progress: bool = True) -> list[Flag]:
    """Every flag of every person of a split, sorted by severity."""
    from pascal_person_pose.dataset import Dataset

    dataset = Dataset(root, split)
    poses = [dataset.keypoints(entry["id"]) for entry in dataset.images]
    stats = BoneStats.fit(np.concatenate([np.zeros((0, schema.NUM_JOINTS, 3)), *poses]), params)
    flags: list[Flag] = []
    for sample in progress_bar.bar(dataset, desc="check", total=len(dataset), unit="img",
                                   enabled=progress):
        if not sample.persons:
            continue
        records = dataset.annotations(sample.image_id)
        part_map, instance_map, masks = sample.part_map, sample.instance_map, sample.masks
        fine_map = sample.fine_part_map
        for person, record, mask in zip(sample.persons, records, masks):
            keypoints, proposed = person_arrays(record)
            flags += check_person(keypoints, proposed, part_map, instance_map, person.instance,
                                  mask, person.bbox, stats,
                                  PersonRef(sample.voc_id, sample.image_id, person.annotation_id),
                                  sample.pose_annotated, params, fine_map)
    return sort_flags(flags)


def report(flags: list[Flag], split: str, params: QAParams = QAParams()) -> dict:
    """The JSON report: counts per check and severity, the flags (sorted), the thresholds."""
    return {
        "split": split,
        "counts": {check: {severity: sum(f.check == check and f.severity == severity
                                         for f in flags) for severity in SEVERITIES}
                   for check in CHECKS},
        "flags": [f.to_dict() for f in sort_flags(flags)],
        "params": asdict(params),
    }


def format_table(flags: list[Flag], limit: int | None = None) -> str:
    """A plain-text table of the flags, most severe first (``limit`` rows at most)."""
    shown = sort_flags(flags)[:limit]
    rows = [("severity", "check", "image", "person", "score", "problem")]
    rows += [(f.severity, f.check, f.voc_id, str(f.annotation_id), f"{f.score:.2f}", f.message)
             for f in shown]
    widths = [max(len(row[k]) for row in rows) for k in range(5)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row[:5], widths)) + "  " + row[5]
             for row in rows]
    if limit is not None and len(flags) > limit:
        lines.append(f"... {len(flags) - limit} more (see the JSON report)")
    return "\n".join(lines)
