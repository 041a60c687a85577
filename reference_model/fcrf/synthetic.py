"""Synthetic FCRF inputs for tests and benchmarks: score maps rendered from GT poses, people,
and random programs.

``render_score_maps`` draws what a good Pose FCN and Part FCN would output: Gaussian
joint peaks; neighbour offsets from each pixel to the joints of the person whose joint of
that type is nearest; part maps painted from the skeleton with the schema's edge -> part
links. With an ``rng`` it then spoils them as real networks do: each person's offsets
are off by an error proportional to the joint distance (far joints are guessed worse),
every map gets Gaussian noise, and ``Pj`` gets distractor peaks. Without one the maps are
ideal (exact offsets), which the networks' target tests can use.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pascal_person_pose.schema import (EDGE_PART_ID, NUM_JOINTS, NUM_PARTS, SKELETON_INDEX,
                                       name2joint, name2part)

from .assembly import image_to_map
from .maps import NUM_OFFSET_CHANNELS, OFFSET_CHANNEL, ScoreMaps
from .program import BoxProgram

_J = {name: joint.index for name, joint in name2joint.items()}
_HEAD, _TORSO = name2part["head"].id, name2part["torso"].id
# Limb thickness in head sizes (forehead-neck distance) per part class.
_THICKNESS = {name2part["upper_arm"].id: 0.6, name2part["lower_arm"].id: 0.5,
              name2part["upper_leg"].id: 0.8, name2part["lower_leg"].id: 0.6,
              _TORSO: 0.6}
_TORSO_CORNERS = [_J["r_shoulder"], _J["l_shoulder"], _J["l_hip"], _J["r_hip"]]


@dataclass(frozen=True)
class RenderParams:
    sigma: float = 4.0  # joint peak Gaussian, map pixels
    joint_noise: float = 0.03  # std of Gaussian noise on Pj
    distractors: int = 6  # false peaks in Pj (random type, place, height 0.25-0.7)
    offset_noise: float = 1.5  # std of per-pixel Gaussian noise on Pn, map pixels
    offset_error: float = 0.3  # std of each person's offset error, per unit a-b distance
    part_noise: float = 0.8  # std of logit noise on Ps (the clean logit margin is 3)


def render_score_maps(keypoints: np.ndarray, shape: tuple[int, int],
                      rng: np.random.Generator | None = None,
                      params: RenderParams = RenderParams()) -> ScoreMaps:
    """Score maps (h, w) of people ``keypoints`` (G, 14, 3) in map pixels (col 2 > 0: labelled).

    With ``rng`` None nothing random is added (the ideal maps).
    """
    h, w = shape
    keypoints = np.asarray(keypoints, dtype=np.float64).reshape(-1, NUM_JOINTS, 3)
    labelled = keypoints[..., 2] > 0
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    # Per joint type, the squared distance to the nearest labelled joint and its person.
    nearest = np.full((NUM_JOINTS, h, w), np.inf, dtype=np.float32)
    owner = np.zeros((NUM_JOINTS, h, w), dtype=np.int64)
    for g, person in enumerate(keypoints):
        d2 = (xs - person[:, 0, None, None]) ** 2 + (ys - person[:, 1, None, None]) ** 2
        d2[~labelled[g]] = np.inf
        closer = d2 < nearest
        nearest[closer] = d2[closer]
        owner[closer] = g
    Pj = np.exp(-nearest / (2 * params.sigma ** 2)).transpose(1, 2, 0)
    # Where each person's offsets from type a point for type b: the true joint, moved (when
    # rng is given) by a per-person error proportional to the a-b distance.
    target = np.repeat(keypoints[:, None], NUM_JOINTS, axis=1)  # (G, a, b, 3)
    if rng is not None:
        span = np.hypot(*(keypoints[:, None, :, :2] - keypoints[:, :, None, :2]).T).T
        error = rng.normal(0.0, 1.0, target.shape[:3] + (2,)) * span[..., None]
        target[..., :2] += params.offset_error * error
    Pn = np.zeros((h, w, NUM_OFFSET_CHANNELS), dtype=np.float32)
    for a in range(NUM_JOINTS if len(keypoints) else 0):
        others = np.delete(np.arange(NUM_JOINTS), a)
        target_a = target[:, a, others].astype(np.float32)[owner[a]]  # (h, w, 13, 3)
        offset = target_a[..., :2] - np.stack([xs, ys], axis=-1)[:, :, None, :]
        offset[target_a[..., 2] <= 0] = 0.0  # no offset to an unlabelled joint
        start = OFFSET_CHANNEL[a, others[0]]
        Pn[:, :, start:start + 2 * len(others)] = offset.reshape(h, w, -1)
    logits = 3.0 * (part_label_map(keypoints, shape)[..., None] == np.arange(NUM_PARTS))
    if rng is not None:
        Pj = _add_distractors(Pj, rng, params)
        Pj = Pj + rng.normal(0.0, params.joint_noise, Pj.shape)
        Pn += params.offset_noise * rng.standard_normal(Pn.shape, dtype=np.float32)
        logits = logits + rng.normal(0.0, params.part_noise, logits.shape)
    Ps = np.exp(logits - logits.max(axis=2, keepdims=True))
    Ps /= Ps.sum(axis=2, keepdims=True)
    return ScoreMaps(np.clip(Pj, 0.0, 1.0).astype(np.float32), Pn, Ps.astype(np.float32))


def _add_distractors(Pj: np.ndarray, rng: np.random.Generator,
                     params: RenderParams) -> np.ndarray:
    h, w, _ = Pj.shape
    ys, xs = np.mgrid[0:h, 0:w]
    Pj = Pj.copy()
    for _ in range(params.distractors):
        t = rng.integers(NUM_JOINTS)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        peak = rng.uniform(0.25, 0.7) * np.exp(
            -((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * params.sigma ** 2))
        Pj[:, :, t] = np.maximum(Pj[:, :, t], peak)
    return Pj


def part_label_map(keypoints: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) uint8 part ids painted from the skeleton, later people over earlier ones.

    Each edge is a thick stroke of its part class (width a fraction of the head size),
    the torso also fills the shoulder-hip quadrilateral, and the head is a disc around
    the forehead-neck midpoint. Strokes with an unlabelled end are skipped.
    """
    labels = np.zeros(shape, dtype=np.uint8)
    shift = 4  # cv2 fixed-point bits: sub-pixel drawing
    for person in np.asarray(keypoints, dtype=np.float64).reshape(-1, NUM_JOINTS, 3):
        xy = np.rint(person[:, :2] * (1 << shift)).astype(np.int32)
        ok = person[:, 2] > 0
        head = _head_size(person)
        if ok[_TORSO_CORNERS].all():
            cv2.fillConvexPoly(labels, xy[_TORSO_CORNERS], _TORSO, cv2.LINE_8, shift)
        for (a, b), part in zip(SKELETON_INDEX, EDGE_PART_ID):
            if ok[a] and ok[b] and part != _HEAD:
                width = max(1, int(round(_THICKNESS[part] * head)))
                cv2.line(labels, tuple(xy[a]), tuple(xy[b]), int(part), width, cv2.LINE_8,
                         shift)
        if ok[_J["forehead"]] and ok[_J["neck"]]:
            centre = (xy[_J["forehead"]] + xy[_J["neck"]]) // 2
            cv2.circle(labels, tuple(centre), int(0.7 * head * (1 << shift)), _HEAD, -1,
                       cv2.LINE_8, shift)
    return labels


def _head_size(person: np.ndarray) -> float:
    """Forehead-neck distance, or a tenth of the pose's extent when either is missing."""
    f, n = person[_J["forehead"]], person[_J["neck"]]
    if f[2] > 0 and n[2] > 0:
        return float(np.hypot(*(f[:2] - n[:2])))
    present = person[person[:, 2] > 0, :2]
    return float(np.ptp(present, axis=0).max() / 10) if len(present) else 1.0


# A standing person facing the camera, in head sizes (y down; the person's right is image
# left), from the forehead.
_TEMPLATE = {
    "forehead": (0.0, 0.0), "neck": (0.0, 1.0),
    "r_shoulder": (-1.0, 1.4), "r_elbow": (-1.3, 2.9), "r_wrist": (-1.4, 4.2),
    "r_hip": (-0.6, 4.2), "r_knee": (-0.7, 6.1), "r_ankle": (-0.75, 8.0),
    "l_shoulder": (1.0, 1.4), "l_elbow": (1.3, 2.9), "l_wrist": (1.4, 4.2),
    "l_hip": (0.6, 4.2), "l_knee": (0.7, 6.1), "l_ankle": (0.75, 8.0),
}
# Limb chains (parent, child, max swing in degrees) rotated in order, children follow.
_SWINGS = (("r_shoulder", "r_elbow", 70), ("r_elbow", "r_wrist", 70),
           ("l_shoulder", "l_elbow", 70), ("l_elbow", "l_wrist", 70),
           ("r_hip", "r_knee", 30), ("r_knee", "r_ankle", 30),
           ("l_hip", "l_knee", 30), ("l_knee", "l_ankle", 30))
_CHILDREN = {"r_elbow": ("r_wrist",), "l_elbow": ("l_wrist",),
             "r_knee": ("r_ankle",), "l_knee": ("l_ankle",)}


def random_people(rng: np.random.Generator, count: int, shape: tuple[int, int],
                  head_size: tuple[float, float] = (8.0, 14.0),
                  missing: float = 0.05) -> np.ndarray:
    """(count, 14, 3) random articulated poses placed in ``shape`` (h, w), visibility 2.

    Each limb swings at random about its template direction, the body tilts by up to
    15 degrees and is ``head_size`` pixels per head; ``missing`` is the chance that a
    joint is unlabelled (0, 0, 0), and joints off the map are unlabelled too.
    """
    h, w = shape
    template = np.array([_TEMPLATE[j] for j in _J], dtype=np.float64)
    people = np.zeros((count, NUM_JOINTS, 3))
    for g in range(count):
        pose = template.copy()
        for parent, child, swing in _SWINGS:
            angle = np.deg2rad(rng.uniform(-swing, swing))
            moving = [_J[child]] + [_J[c] for c in _CHILDREN.get(child, ())]
            pose[moving] = pose[_J[parent]] + _rotate(pose[moving] - pose[_J[parent]], angle)
        pose = _rotate(pose - pose.mean(axis=0), np.deg2rad(rng.uniform(-15, 15)))
        pose *= rng.uniform(*head_size)
        low, high = pose.min(axis=0), pose.max(axis=0)
        centre = rng.uniform(-low, np.maximum(np.array([w - 1, h - 1]) - high, -low + 1))
        people[g, :, :2] = pose + centre
        people[g, :, 2] = 2
    off_map = ((people[..., 0] < 0) | (people[..., 0] > w - 1) | (people[..., 1] < 0)
               | (people[..., 1] > h - 1))
    people[(rng.random(people.shape[:2]) < missing) | off_map] = 0.0
    return people


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def person_box(keypoints: np.ndarray, margin: float = 0.15) -> np.ndarray:
    """(4,) x1, y1, x2, y2: the labelled joints' tight box grown by ``margin`` of its size
    on every side (a stand-in for a detection)."""
    present = keypoints[keypoints[:, 2] > 0, :2]
    low, high = present.min(axis=0), present.max(axis=0)
    grow = margin * (high - low).max()
    return np.concatenate([low - grow, high + grow])


def render_box_maps(keypoints: np.ndarray, box: np.ndarray, height: int,
                    rng: np.random.Generator | None = None,
                    params: RenderParams = RenderParams()) -> tuple[ScoreMaps, float]:
    """Maps of image region ``box`` resized to ``height`` rows, and the scale used.

    ``keypoints`` (G, 14, 3) are every person of the image, in image coordinates: people
    overlapping the box appear in its maps as they would in a network's output.
    """
    scale = height / (box[3] - box[1] + 1)
    width = max(1, int(round((box[2] - box[0] + 1) * scale)))
    inside = np.asarray(keypoints, dtype=np.float64).copy()
    inside[..., :2] = image_to_map(inside[..., :2], box, scale)
    return render_score_maps(inside, (height, width), rng, params), scale


def random_program(rng: np.random.Generator, people: int, per_type: int = 6,
                   same: tuple[float, float] = (0.5, 1.0),
                   different: tuple[float, float] = (0.0, 0.5),
                   true_score: tuple[float, float] = (0.5, 0.99),
                   false_score: tuple[float, float] = (0.2, 0.6)) -> BoxProgram:
    """A box program of ``14 * per_type`` proposals: ``people`` persons, the rest false.

    Each type's first ``min(people, per_type)`` proposals belong to distinct people.
    Same-person probabilities are uniform in ``same``, all others in ``different``;
    joint probabilities in ``true_score`` / ``false_score``.
    """
    types = np.repeat(np.arange(NUM_JOINTS), per_type)
    owner = np.full(len(types), -1)
    taken = min(people, per_type)
    for a in range(NUM_JOINTS):
        owner[a * per_type:a * per_type + taken] = rng.permutation(people)[:taken]
    p = np.where(owner >= 0, rng.uniform(*true_score, len(types)),
                 rng.uniform(*false_score, len(types)))
    together = (owner[:, None] == owner[None, :]) & (owner >= 0)[:, None]
    P = np.where(together, rng.uniform(*same, (len(types),) * 2),
                 rng.uniform(*different, (len(types),) * 2))
    P = np.triu(P, 1) + np.triu(P, 1).T
    return BoxProgram.from_probabilities(types, p, P)
