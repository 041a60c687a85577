"""Joint proposals from part masks (``ppp label propose``).

Joints are where parts meet (``schema.JOINTS[j].parts``), so a person's part map says
where most of its joints are. Per person, from the pixels it owns in ``instances/<id>.png``
and their classes in ``parts/<id>.png``:

- neck: the centre of the head / torso boundary;
- forehead: on the axis from the neck (or the torso centre) through the head's centroid,
  ``FOREHEAD_FRACTION`` of the way from the centroid to the crown. The paper places the
  forehead "inside the head segment region and near the head segment boundary"; the
  head class includes the hair, so the crown is the top of the hair and the forehead
  (the hairline) lies a little below it;
- each limb (arm: upper_arm + lower_arm, leg: upper_leg + lower_leg) is a chain of an
  upper and a lower connected component that touch. Elbow / knee: the centre of the
  upper / lower boundary. Shoulder / hip: at the upper segment's end away from the elbow /
  knee, the centre of its boundary with the torso there (a thigh comes out from under the
  torso); where that end touches no torso (an arm held away), the end set in by half the
  segment's width, since a joint is the centre of a limb's rounded end. Wrist / ankle: the
  lower class includes the hand / foot, so the joint is ``WRIST_FRACTION`` /
  ``ANKLE_FRACTION`` of the way from the elbow / knee to the far end of the region
  (anthropometric segment lengths: a forearm is about 0.146 and a hand 0.108 of the
  stature; the ankle sits about 0.04 of the stature above the sole of a 0.285 lower leg
  and foot). A chain missing one segment (occluded, cut by
  the border) gets its joints from the other segment's principal axis, its end nearer
  the torso being the proximal one; a lone upper segment cut by the image border gives no
  elbow / knee (the limb goes on outside the picture);
- left and right: the body's down axis runs from the head (or the shoulders) to the hips
  (or the torso centre); the person's right side is on the image-left of that axis when
  the person faces the camera, the common case in PASCAL. When the person already has
  labelled left/right pairs, their order decides the orientation instead, so proposals
  agree with the labels; a person seen from behind without labels gets mirrored
  proposals, which the labeler's mirror-swap fixes with one key.

A proposal's visibility is 2 when it lies on (or next to) a pixel of one of its parts
owned by the person, else 1. Proposals never replace a labelled joint: they are stored
beside the labels (``store.PROPOSALS_KEY``) until someone confirms them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from pascal_person_pose import progress as progress_bar
from pascal_person_pose import schema
from pascal_person_pose.label import store as store_module

FOREHEAD_FRACTION = 0.6
WRIST_FRACTION = 0.6
ANKLE_FRACTION = 0.85
MIN_PIXELS = 4  # smaller components are label noise, not a part
_END_PERCENTILE = 99  # a region's far end, robust to a stray pixel
_KERNEL = np.ones((3, 3), np.uint8)
_PART_ID = {p.name: p.id for p in schema.PARTS}


def _joint_with_parts(parts: set[str], side: str | None = None) -> int:
    """Index of the joint whose part set is ``parts`` (on ``side``, 'r' or 'l')."""
    return next(j.index for j in schema.JOINTS if set(j.parts) == parts
                and (side is None or j.name.startswith(f"{side}_")))


@dataclass(frozen=True)
class _Limb:
    upper: int  # part ids
    lower: int
    distal_fraction: float
    joints: dict[str, tuple[int, int, int]]  # side -> (proximal, middle, distal) joint indices


def _limb(upper: str, lower: str, distal_fraction: float) -> _Limb:
    return _Limb(_PART_ID[upper], _PART_ID[lower], distal_fraction,
                 {side: (_joint_with_parts({"torso", upper}, side),
                         _joint_with_parts({upper, lower}, side),
                         _joint_with_parts({lower}, side)) for side in ("r", "l")})


LIMBS = (_limb("upper_arm", "lower_arm", WRIST_FRACTION),
         _limb("upper_leg", "lower_leg", ANKLE_FRACTION))
NECK = _joint_with_parts({"head", "torso"})
FOREHEAD = _joint_with_parts({"head"})


class _Region:
    """Pixels of one connected part region, in image coordinates."""

    def __init__(self, mask: np.ndarray, origin: np.ndarray):
        ys, xs = np.nonzero(mask)
        self.mask = mask
        self.points = np.stack([xs, ys], axis=1) + origin
        self.centroid = self.points.mean(axis=0)
        self.size = len(self.points)

    def far_end(self, start: np.ndarray) -> tuple[np.ndarray, float]:
        """The region's far end seen from ``start`` (on the line from ``start`` through the
        centroid) and the region's half width across that line."""
        u = _unit(self.centroid - start)
        if u is None:
            u = self.axis()
        rel = self.points - start
        reach = float(np.percentile(rel @ u, _END_PERCENTILE))
        across = np.abs((self.points - self.centroid) @ np.array([-u[1], u[0]]))
        # a band of width w has |offset| uniform on [0, w/2]: its median is w/4
        return start + u * max(reach, 0.0), 2.0 * float(np.median(across))

    def at_border(self, shape: tuple[int, int]) -> bool:
        """Whether the region touches the image border (it may go on outside)."""
        x, y = self.points[:, 0], self.points[:, 1]
        return bool(x.min() <= 0 or y.min() <= 0 or x.max() >= shape[1] - 1
                    or y.max() >= shape[0] - 1)

    def axis(self) -> np.ndarray:
        """Unit vector of the principal axis (image down for a single pixel)."""
        if self.size < 2:
            return np.array([0.0, 1.0])
        centred = self.points - self.centroid
        _, vectors = np.linalg.eigh(centred.T @ centred)
        return vectors[:, -1]

    def ends(self, toward: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(near end, far end, half width) along the principal axis; the near end is the one
        closer to ``toward``."""
        u = self.axis()
        t = (self.points - self.centroid) @ u
        a = self.centroid + u * np.percentile(t, 100 - _END_PERCENTILE)
        b = self.centroid + u * np.percentile(t, _END_PERCENTILE)
        across = np.abs((self.points - self.centroid) @ np.array([-u[1], u[0]]))
        half = 2.0 * float(np.median(across))
        if np.hypot(*(a - toward)) > np.hypot(*(b - toward)):
            a, b = b, a
        return a, b, half


def _unit(v: np.ndarray) -> np.ndarray | None:
    n = float(np.hypot(*v))
    return None if n < 1e-9 else v / n


def _inset(end: np.ndarray, toward: np.ndarray, distance: float) -> np.ndarray:
    """``end`` moved ``distance`` towards ``toward`` (never past it)."""
    v = toward - end
    n = float(np.hypot(*v))
    return end if n < 1e-9 else end + v * min(distance / n, 0.5)


def _components(mask: np.ndarray, origin: np.ndarray) -> list[_Region]:
    """Connected regions of ``mask`` with at least ``MIN_PIXELS`` pixels, largest first."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8),
                                                               connectivity=8)
    order = np.argsort(-stats[1:, cv2.CC_STAT_AREA], kind="stable") + 1
    return [_Region(labels == k, origin) for k in order
            if stats[k, cv2.CC_STAT_AREA] >= MIN_PIXELS]


def _touching(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels of ``a`` or ``b`` that touch the other mask (8-neighbourhood)."""
    return ((a & cv2.dilate(b.astype(np.uint8), _KERNEL).astype(bool))
            | (b & cv2.dilate(a.astype(np.uint8), _KERNEL).astype(bool)))


def _boundary_points(a: _Region, b: _Region, origin: np.ndarray) -> np.ndarray:
    """Image coordinates (n, 2) of the pixels on the boundary between two regions."""
    ys, xs = np.nonzero(_touching(a.mask, b.mask))
    return np.stack([xs, ys], axis=1) + origin


def _boundary_centre(a: _Region, b: _Region, origin: np.ndarray) -> np.ndarray | None:
    seam = _boundary_points(a, b, origin)
    return seam.mean(axis=0) if len(seam) else None


@dataclass
class _Chain:
    upper: _Region | None
    lower: _Region | None
    points: list[np.ndarray | None] = field(default_factory=lambda: [None, None, None])

    @property
    def size(self) -> int:
        return sum(r.size for r in (self.upper, self.lower) if r is not None)

    @property
    def anchor(self) -> np.ndarray:
        """The most proximal joint found (else the chain's centre): decides its side."""
        found = [p for p in self.points if p is not None]
        if found:
            return found[0]
        return np.mean([r.centroid for r in (self.upper, self.lower) if r is not None], axis=0)


def _chains(upper: list[_Region], lower: list[_Region]) -> list[_Chain]:
    """Pair upper and lower segments that touch (most touching pixels first); at most two
    chains, the largest, per limb type."""
    touch = np.array([[int(_touching(u.mask, lo.mask).sum()) for lo in lower] for u in upper],
                     dtype=np.int64).reshape(len(upper), len(lower))
    chains, used_u, used_l = [], set(), set()
    for flat in np.argsort(-touch, axis=None, kind="stable"):
        i, j = np.unravel_index(flat, touch.shape)
        if touch[i, j] > 0 and i not in used_u and j not in used_l:
            chains.append(_Chain(upper[i], lower[j]))
            used_u.add(i)
            used_l.add(j)
    chains += [_Chain(u, None) for i, u in enumerate(upper) if i not in used_u]
    chains += [_Chain(None, lo) for j, lo in enumerate(lower) if j not in used_l]
    return sorted(chains, key=lambda c: -c.size)[:2]


def _locate(chain: _Chain, limb: _Limb, torso: _Region | None, centre: np.ndarray,
            origin: np.ndarray, shape: tuple[int, int]) -> None:
    """Fill ``chain.points`` = [proximal, middle, distal] (None where not found).

    An upper segment alone and cut by the image border continues outside the picture: its
    far end is not the elbow / knee, which is not proposed then. (A cut lower segment still
    gives the wrist / ankle: the hand or foot is what the border cuts most of the time.)
    """
    upper, lower = chain.upper, chain.lower
    middle = None
    if upper is not None and lower is not None:
        middle = _boundary_centre(upper, lower, origin)
    proximal = distal = None
    if upper is not None:
        reference = middle
        if middle is None:  # no lower segment: the upper one's end away from the torso
            near, far, half = upper.ends(centre)
            reference = _inset(far, near, half)
            middle = None if upper.at_border(shape) else reference
        end, half = upper.far_end(reference)
        proximal = _inset(end, reference, half)
        if torso is not None:  # the end meets the torso: the joint is on that boundary
            seam = _boundary_points(upper, torso, origin)
            u = _unit(end - reference)
            if u is not None and len(seam):
                seam = seam[(seam - reference) @ u >= (end - reference) @ u - 2 * half]
                if len(seam):
                    proximal = seam.mean(axis=0)
    else:  # only the lower segment: its end nearer the torso
        near, far, half = lower.ends(centre)
        middle = reference = _inset(near, far, half)
    if lower is not None:
        end, _ = lower.far_end(reference)
        distal = reference + limb.distal_fraction * (end - reference)
    chain.points = [proximal, middle, distal]


def _orientation(labelled: np.ndarray | None, right: np.ndarray) -> float:
    """+1 when the person faces the camera (default), -1 when its labelled left/right pairs
    say it is seen from behind."""
    if labelled is None:
        return 1.0
    vote = 0.0
    for r, l in schema.FLIP_PAIRS:
        if labelled[r, 2] > 0 and labelled[l, 2] > 0:
            vote += np.sign((labelled[r, :2] - labelled[l, :2]) @ right)
    return -1.0 if vote < 0 else 1.0


def propose_person(part_map: np.ndarray, instance_map: np.ndarray, instance: int,
                   labelled: np.ndarray | None = None) -> np.ndarray:
    """Proposed joints ``(14, 3)`` float32 of one person (``v = 0`` where none was found).

    ``part_map`` and ``instance_map`` are the image's maps; the person owns the pixels
    where ``instance_map == instance``. ``labelled`` (the person's current ``(14, 3)``
    joints) only decides left/right when it holds left/right pairs; proposals are made for
    every joint, the caller keeps the ones it needs.
    """
    out = np.zeros((schema.NUM_JOINTS, 3), np.float32)
    own = instance_map == instance
    rows, cols = np.flatnonzero(own.any(axis=1)), np.flatnonzero(own.any(axis=0))
    if not len(rows):
        return out
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    labels = np.where(own[y0:y1, x0:x1], part_map[y0:y1, x0:x1], 0)
    labels[labels == schema.IGNORE_LABEL] = 0
    origin = np.array([x0, y0], np.float64)
    regions = {pid: _components(labels == pid, origin) for pid in range(1, schema.NUM_PARTS)}
    head = (regions[_PART_ID["head"]] or [None])[0]
    torso = (regions[_PART_ID["torso"]] or [None])[0]
    ys, xs = np.nonzero(labels)
    if not len(xs):
        return out
    centre = torso.centroid if torso is not None else np.array([xs.mean(), ys.mean()]) + origin

    points: dict[int, np.ndarray] = {}
    if head is not None and torso is not None:
        neck = _boundary_centre(head, torso, origin)
        if neck is not None:
            points[NECK] = neck
    if head is not None:
        start = points.get(NECK, torso.centroid if torso is not None else None)
        up = _unit(head.centroid - start) if start is not None else None
        if up is None:
            up = np.array([0.0, -1.0])
        crown = max(float(np.percentile((head.points - head.centroid) @ up, _END_PERCENTILE)), 0)
        points[FOREHEAD] = head.centroid + up * FOREHEAD_FRACTION * crown

    limb_chains = []
    for limb in LIMBS:
        chains = _chains(regions[limb.upper], regions[limb.lower])
        for chain in chains:
            _locate(chain, limb, torso, centre, origin, instance_map.shape)
        limb_chains.append((limb, chains))

    # the body frame: down from the head (or shoulders) to the hips (or torso centre)
    arm_tops = [c.points[0] for c in limb_chains[0][1] if c.points[0] is not None]
    hips = [c.points[0] for c in limb_chains[1][1] if c.points[0] is not None]
    top = head.centroid if head is not None else (np.mean(arm_tops, 0) if arm_tops else None)
    bottom = np.mean(hips, 0) if hips else (torso.centroid if torso is not None else None)
    down = _unit(bottom - top) if top is not None and bottom is not None else None
    if down is None:
        down = np.array([0.0, 1.0])
    right = np.array([-down[1], down[0]])  # the person's right when facing the camera
    right = right * _orientation(labelled, right)

    for limb, chains in limb_chains:
        lateral = [float((c.anchor - centre) @ right) for c in chains]
        if len(chains) == 2:
            sides = ("r", "l") if lateral[0] >= lateral[1] else ("l", "r")
        else:
            sides = tuple("r" if lat >= 0 else "l" for lat in lateral)
        for chain, side in zip(chains, sides):
            for index, point in zip(limb.joints[side], chain.points):
                if point is not None:
                    points[index] = point

    height, width = instance_map.shape
    for j, point in points.items():
        x = float(np.clip(point[0], 0, width - 1))
        y = float(np.clip(point[1], 0, height - 1))
        out[j] = (x, y, 2 if _on_own_part(labels, origin, x, y, j) else 1)
    return out


def _on_own_part(labels: np.ndarray, origin: np.ndarray, x: float, y: float, joint: int) -> bool:
    """Whether a pixel of the joint's parts owned by the person is within one pixel."""
    cx, cy = int(round(x - origin[0])), int(round(y - origin[1]))
    window = labels[max(cy - 1, 0):cy + 2, max(cx - 1, 0):cx + 2]
    return bool(np.isin(window, schema.JOINT_PART_IDS[joint]).any())


@dataclass
class ProposalSummary:
    """What ``propose_split`` did, for the CLI table and tests."""

    persons: int  # persons with at least one unlabelled joint
    persons_with_proposals: int
    proposed: dict[str, int]  # joint name -> proposals now pending
    revision: int  # the annotation file's revision after the run


def propose_split(root: str | os.PathLike, split: str, progress: bool = True) -> ProposalSummary:
    """Propose every unlabelled joint of every person of a split; one atomic save.

    Pending proposals from an earlier run are replaced; labelled joints are never touched.
    """
    from pascal_person_pose.dataset import Dataset

    dataset = Dataset(root, split)
    store = store_module.AnnotationStore(root, split)
    computed: dict[int, np.ndarray] = {}
    for sample in progress_bar.bar(dataset, desc="propose", total=len(dataset), unit="img",
                                   enabled=progress):
        if not (sample.keypoints[..., 2] == 0).any():
            continue
        part_map, instance_map = sample.part_map, sample.instance_map
        for person in sample.persons:
            if (person.keypoints[:, 2] == 0).any():
                computed[person.annotation_id] = propose_person(
                    part_map, instance_map, person.instance, person.keypoints)
    counts = np.zeros(schema.NUM_JOINTS, np.int64)
    with_proposals = 0
    with store.edit() as doc:
        for ann in doc["annotations"]:
            if ann["id"] not in computed:
                continue
            keypoints, _ = store_module.person_arrays(ann)
            store_module.set_person(ann, keypoints, computed[ann["id"]])
            _, pending = store_module.person_arrays(ann)
            counts += pending[:, 2] > 0
            with_proposals += bool((pending[:, 2] > 0).any())
    return ProposalSummary(persons=len(computed), persons_with_proposals=with_proposals,
                           proposed=dict(zip(schema.JOINT_NAMES, map(int, counts))),
                           revision=int(doc[store_module.REVISION_KEY]))
