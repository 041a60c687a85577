"""Joint proposals from part masks (``ppp label propose``).

Joints are where parts meet (``schema.JOINTS[j].parts``), so a person's part maps say where
most of its joints are. Per person, from the pixels it owns in ``instances/<id>.png``:

**Segments.** Where the image has a fine part map (``parts_fine/<id>.png``: PASCAL-Part's
person parts with the person's own sides), it is the source: each limb segment is the fine
part of its side (``luarm``, ``rlleg``, ...), so left and right come from the annotation
whichever way the person faces, two limbs in contact stay two limbs, and a limb cut into
fragments (by the border, by an occluder) stays one limb. The hand, the foot, the neck
and the face are parts of their own there. Without a fine part map (or for a person with
no fine part), limb segments are the connected regions of each part class of
``parts/<id>.png``: an upper region touched by two lower regions of its limb type (two
thighs in contact above two shins) is split between them, and so is the mirror case (two
forearms joined at the hands); upper and lower regions are paired into limbs where they
touch, and sides come from the facing rule (below).

**Joints** (``w`` is the local width of a limb segment):

- neck: the centre of the neck part's boundary with the torso (the base of the neck);
  without a neck part, the centre of the head / torso boundary (under the chin) lowered
  by ``NECK_DROP`` of the head's length (the neck between chin and shoulders);
- forehead: the top of the face (the hairline) on the face's midline, where the head shows
  a face under hair; otherwise ``FOREHEAD_FRACTION`` of the way from the head's centroid
  to its crown, along the axis from the neck through the centroid;
- elbow / knee: the centre of the boundary between the upper and lower segments; when that
  boundary is longer than ``FOLD_LENGTH`` widths (a folded limb: the forearm lies along
  the upper arm), its end away from the shoulder / hip, set in by ``w / 2``. Segments of
  one limb that do not touch (an occluder between them) meet half way;
- shoulder / hip: at the upper segment's end away from the elbow / knee, on the midline of
  that end, set in towards the elbow / knee by ``SHOULDER_INSET`` / ``HIP_INSET`` widths:
  the joint is the centre of the limb's rounded end, not a point of its outline, nor the
  centre of its seam with the torso (which runs down the side of a hanging arm);
- wrist / ankle: the centre of the boundary between the forearm / lower leg and the hand /
  foot. Without a separate hand / foot, ``WRIST_FRACTION`` / ``ANKLE_FRACTION`` of the way
  from the elbow / knee to the region's far end (anthropometric segment lengths: a forearm
  is about 0.146 and a hand 0.108 of the stature; the ankle sits about 0.04 of the stature
  above the sole of a 0.285 lower leg and foot). A hand or foot seen without its forearm /
  lower leg gives the wrist / ankle at its end nearer the body;
- a limb missing one segment gets its joints from the other segment's principal axis, its
  end nearer the torso being the proximal one; a lone upper segment whose far end meets
  the image border or another person gives no elbow / knee (the limb goes on out of
  sight);
- a shoulder or hip whose upper segment is hidden while its partner is found and the torso
  is seen: the partner mirrored across the body's midline (the line from the neck through
  the torso's centre), proposed as occluded, and only when it falls inside the image and
  at least half the torso's width from the partner (a person seen from the side hides the
  far joint right behind the near one: no proposal is better than one on top of it).

**Sides without fine parts**: the body's down axis runs from the head (or the shoulders)
to the hips (or the torso centre); the person's right side is on the image-left of that
axis when the person faces the camera, the common case in PASCAL. When the person already
has labelled left/right pairs, their order decides the orientation instead, so proposals
agree with the labels. Of several regions of one limb type, at most two make limbs; a
second with a joint within half a width of the first's same joint is a fragment of the same
limb and is dropped rather than stacked on the other side.

A proposal's visibility is 2 when it lies on (or next to) a pixel of one of its parts
owned by the person, else 1. Proposals never replace a labelled joint: they are stored
beside the labels (``store.PROPOSALS_KEY``) until someone confirms them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from pascal_person_pose import progress as progress_bar
from pascal_person_pose import schema
from pascal_person_pose.label import store as store_module

FOREHEAD_FRACTION = 0.6
WRIST_FRACTION = 0.6
ANKLE_FRACTION = 0.85
SHOULDER_INSET = 0.5
HIP_INSET = 0.15
FOLD_LENGTH = 1.5
FOLD_BACK = 0.3
NECK_DROP = 0.15
MIN_PIXELS = 4  # smaller components are label noise, not a part
_END_PERCENTILE = 99  # a region's far end, robust to a stray pixel
_KERNEL = np.ones((3, 3), np.uint8)
_NEIGHBOURS = np.array([(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)])
_PART_ID = {p.name: p.id for p in schema.PARTS}
_FINE_ID = {f.name: f.id for f in schema.FINE_PARTS}
_HAIRLINE_PROBE = 2.0  # px along the head's up axis where a hairline pixel sees hair
_HAIRLINE_BAND = 0.25  # the hairline's middle: within this share of the face's width
_FEATURES = [_FINE_ID[n] for n in ("leye", "reye", "lebrow", "rebrow", "nose", "mouth")]
_FACE = [_FINE_ID["head"], *_FEATURES]


def _joint_with_parts(parts: set[str], side: str | None = None) -> int:
    """Index of the joint whose part set is ``parts`` (on ``side``, 'r' or 'l')."""
    return next(j.index for j in schema.JOINTS if set(j.parts) == parts
                and (side is None or j.name.startswith(f"{side}_")))


@dataclass(frozen=True)
class _Limb:
    upper: int  # part class ids
    lower: int
    inset: float  # the proximal joint's distance from the segment's end, in widths
    distal_fraction: float
    fine: dict[str, tuple[int, int, int]]  # side -> fine ids of (upper, lower, hand / foot)
    joints: dict[str, tuple[int, int, int]]  # side -> (proximal, middle, distal) joint indices


def _limb(upper: str, lower: str, inset: float, distal_fraction: float,
          fine: tuple[str, str, str]) -> _Limb:
    return _Limb(_PART_ID[upper], _PART_ID[lower], inset, distal_fraction,
                 {s: tuple(_FINE_ID[s + name] for name in fine) for s in "rl"},
                 {s: (_joint_with_parts({"torso", upper}, s), _joint_with_parts({upper, lower}, s),
                      _joint_with_parts({lower}, s)) for s in "rl"})


LIMBS = (_limb("upper_arm", "lower_arm", SHOULDER_INSET, WRIST_FRACTION, ("uarm", "larm", "hand")),
         _limb("upper_leg", "lower_leg", HIP_INSET, ANKLE_FRACTION, ("uleg", "lleg", "foot")))
NECK = _joint_with_parts({"head", "torso"})
FOREHEAD = _joint_with_parts({"head"})


class _Region:
    """Pixels of one part region (one or more components), in image coordinates."""

    def __init__(self, mask: np.ndarray, origin: np.ndarray):
        ys, xs = np.nonzero(mask)
        self.mask, self.origin = mask, origin
        self.points = np.stack([xs, ys], axis=1) + origin
        self.centroid = self.points.mean(axis=0)
        self.size = len(self.points)

    @cached_property
    def principal(self) -> np.ndarray:
        """Unit vector of the principal axis (image down for a single pixel)."""
        if self.size < 2:
            return np.array([0.0, 1.0])
        centred = self.points - self.centroid
        _, vectors = np.linalg.eigh(centred.T @ centred)
        return vectors[:, -1]


    def half_width(self, direction: np.ndarray | None = None) -> float:
        """Half the region's width across ``direction`` (default: its principal axis): a
        band of width w has |offset| uniform on [0, w/2], whose median is w/4."""
        u = self.principal if direction is None else direction
        across = (self.points - self.centroid) @ np.array([-u[1], u[0]])
        return 2.0 * float(np.median(np.abs(across - np.median(across))))

    def end_joint(self, start: np.ndarray, inset: float) -> np.ndarray:
        """The joint at the region's end away from ``start`` (the joint at its other end):
        on the line from ``start`` through the centroid, ``inset`` widths in from the end
        (never nearer ``start`` than half way)."""
        u = _unit(self.centroid - start)
        if u is None:
            u = self.principal
        reach = max(float(np.percentile((self.points - start) @ u, _END_PERCENTILE)), 0.0)
        depth = max(reach - 2.0 * inset * self.half_width(u), 0.5 * reach)
        return start + u * depth

    def ends(self, toward: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(near end, far end, half width) along the principal axis; the near end is the one
        closer to ``toward``."""
        u = self.principal
        t = (self.points - self.centroid) @ u
        a = self.centroid + u * np.percentile(t, 100 - _END_PERCENTILE)
        b = self.centroid + u * np.percentile(t, _END_PERCENTILE)
        if np.hypot(*(a - toward)) > np.hypot(*(b - toward)):
            a, b = b, a
        return a, b, self.half_width(u)

    def far_end(self, start: np.ndarray) -> np.ndarray:
        """The region's far end seen from ``start``, on the line from ``start`` through the
        centroid."""
        u = _unit(self.centroid - start)
        if u is None:
            u = self.principal
        reach = float(np.percentile((self.points - start) @ u, _END_PERCENTILE))
        return start + u * max(reach, 0.0)

    def goes_on(self, start: np.ndarray, blocked: np.ndarray) -> bool:
        """Whether the region's end away from ``start`` (its last half width) touches the
        image border or a pixel of ``blocked`` (another person in front): the limb may go
        on out of sight there."""
        u = _unit(self.centroid - start)
        if u is None:
            u = self.principal
        t = (self.points - start) @ u
        tip = self.points[t >= t.max() - self.half_width(u)].astype(np.int64)
        height, width = blocked.shape
        if (tip.min(axis=0) <= 0).any() or tip[:, 0].max() >= width - 1 \
                or tip[:, 1].max() >= height - 1:
            return True
        around = (tip[:, None, :] + _NEIGHBOURS[None]).reshape(-1, 2)
        return bool(blocked[around[:, 1], around[:, 0]].any())


def _unit(v: np.ndarray) -> np.ndarray | None:
    n = float(np.hypot(*v))
    return None if n < 1e-9 else v / n


def _inset(end: np.ndarray, toward: np.ndarray, distance: float) -> np.ndarray:
    """``end`` moved ``distance`` towards ``toward`` (never past half way)."""
    v = toward - end
    n = float(np.hypot(*v))
    return end if n < 1e-9 else end + v * min(distance / n, 0.5)


def _clean(mask: np.ndarray) -> np.ndarray:
    """``mask`` without its components smaller than ``MIN_PIXELS`` (label noise)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8),
                                                               connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= MIN_PIXELS
    keep[0] = False  # the background
    return keep[labels]


def _region(mask: np.ndarray, origin: np.ndarray) -> _Region | None:
    """The region of ``mask`` without noise, None when nothing is left."""
    mask = _clean(mask)
    return _Region(mask, origin) if mask.any() else None


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


def _boundary(a: _Region, b: _Region) -> np.ndarray:
    """Image coordinates (n, 2) of the pixels on the boundary between two regions."""
    ys, xs = np.nonzero(_touching(a.mask, b.mask))
    return np.stack([xs, ys], axis=1) + a.origin


def _boundary_centre(a: _Region, b: _Region) -> np.ndarray | None:
    seam = _boundary(a, b)
    return seam.mean(axis=0) if len(seam) else None


def _joint_between(upper: _Region, lower: _Region, away_from: np.ndarray) -> np.ndarray | None:
    """The joint where two segments meet: their boundary's centre, or for a folded limb
    (a boundary longer than ``FOLD_LENGTH`` widths) its end away from ``away_from`` (the
    proximal side), set in by half a width."""
    seam = _boundary(upper, lower)
    if not len(seam):
        return None
    centre = seam.mean(axis=0)
    if len(seam) < 3:
        return centre
    centred = seam - centre
    _, vectors = np.linalg.eigh(centred.T @ centred)
    u = vectors[:, -1]
    t = centred @ u
    lo, hi = np.percentile(t, [5, 95])
    half = min(upper.half_width(), lower.half_width())
    if hi - lo <= FOLD_LENGTH * 2 * half:
        return centre
    tips = (centre + u * lo, centre + u * hi)
    tip = max(tips, key=lambda p: float(np.hypot(*(p - away_from))))
    return _inset(tip, centre, half)


@dataclass
class _Segments:
    """The segments of one limb: upper, lower (with the hand / foot) and the hand / foot
    on its own (fine parts only)."""

    upper: _Region | None
    lower: _Region | None
    end: _Region | None = None  # hand / foot
    core: _Region | None = None  # forearm / lower leg without the hand / foot

    @property
    def size(self) -> int:
        return sum(r.size for r in (self.upper, self.lower) if r is not None)


def _folded_back(upper: _Region, lower: _Region, middle: np.ndarray, body: np.ndarray) -> bool:
    """Whether the lower segment meets an elongated upper one, and lies, within its
    proximal ``FOLD_BACK`` share: the limb is folded back behind the upper segment."""
    near, far, half = upper.ends(body)
    length = float(np.hypot(*(far - near)))
    if length < 3 * 2 * half:
        return False
    along = (far - near) / length
    return bool((middle - near) @ along < FOLD_BACK * length
                and (lower.centroid - near) @ along < FOLD_BACK * length)


def _locate(seg: _Segments, limb: _Limb, body: np.ndarray | None, centre: np.ndarray,
            blocked: np.ndarray) -> list[np.ndarray | None]:
    """[proximal, middle, distal] joints of one limb (None where not found); ``body`` is
    where the limb joins the body, known for arms when the neck is (else None: the
    torso's centre ``centre`` stands in, too rough to tell a fold).

    An upper segment alone whose far end meets the image border or another person (in
    ``blocked``) continues out of sight: that end is not the elbow / knee, which is not
    proposed then. (A cut lower segment still
    gives the wrist / ankle: the hand or foot is what the border cuts most of the time.)
    A lower segment that meets the upper one at the upper's proximal end (``FOLD_BACK``)
    lies folded back behind it (a hand on the chin, at the ear): the elbow is then the upper
    segment's distal end.
    """
    upper, lower = seg.upper, seg.lower
    folds = body is not None
    body = centre if body is None else body
    middle = proximal = distal = None
    if upper is not None and lower is not None:
        middle = _joint_between(upper, lower, body)
        if middle is None:  # not touching: an occluder between; they meet half way
            middle = (upper.far_end(lower.centroid) + lower.far_end(upper.centroid)) / 2
        if folds and _folded_back(upper, lower, middle, body):
            near, far, half = upper.ends(body)
            middle = _inset(far, near, half)
    if upper is not None:
        reference = middle
        if reference is None:  # no lower segment: the upper one's end away from the body
            near, far, half = upper.ends(body)
            reference = _inset(far, near, half)
            middle = None if upper.goes_on(near, blocked) else reference
        proximal = upper.end_joint(reference, limb.inset)
    elif lower is not None and (seg.core is not None or seg.end is None):
        near, far, half = (seg.core or lower).ends(centre)  # the end nearer the torso
        middle = _inset(near, far, half)
    if lower is None:
        return [proximal, middle, None]
    if seg.end is not None and seg.core is not None:
        distal = _boundary_centre(seg.core, seg.end)
    if distal is None and seg.end is not None and seg.core is None:
        near, far, half = seg.end.ends(middle if middle is not None else centre)
        distal = _inset(near, far, half / 2)
    if distal is None:
        start = middle if middle is not None else lower.ends(centre)[0]
        distal = start + limb.distal_fraction * (lower.far_end(start) - start)
    return [proximal, middle, distal]


def _fine_segments(fine: np.ndarray, limb: _Limb, side: str, origin: np.ndarray) -> _Segments:
    upper_id, core_id, end_id = limb.fine[side]
    return _Segments(upper=_region(fine == upper_id, origin),
                     lower=_region((fine == core_id) | (fine == end_id), origin),
                     end=_region(fine == end_id, origin), core=_region(fine == core_id, origin))


def _split(region: _Region, anchors: list[np.ndarray], origin: np.ndarray) -> list[_Region]:
    """``region`` cut between two limbs: each pixel goes to the nearer anchor."""
    ys, xs = np.nonzero(region.mask)
    points = np.stack([xs, ys], axis=1) + origin
    nearer = (np.hypot(*(points - anchors[0]).T) <= np.hypot(*(points - anchors[1]).T))
    out = []
    for keep in (nearer, ~nearer):
        mask = np.zeros_like(region.mask)
        mask[ys[keep], xs[keep]] = True
        if keep.sum() >= MIN_PIXELS:
            out.append(_Region(mask, origin))
    return out


def _split_touching(upper: list[_Region], lower: list[_Region], origin: np.ndarray
                    ) -> tuple[list[_Region], list[_Region]]:
    """Two limbs in contact make one region of a class: a lone upper region touched by two
    lower ones is split at the bisector of their boundaries with it, and the mirror case."""
    def touching(region: _Region, others: list[_Region]) -> list[np.ndarray]:
        return [c for c in (_boundary_centre(region, o) for o in others) if c is not None]

    if len(upper) == 1 and len(lower) >= 2:
        anchors = touching(upper[0], lower[:2])
        if len(anchors) == 2:
            upper = _split(upper[0], anchors, origin) + upper[1:]
    elif len(lower) == 1 and len(upper) >= 2:
        anchors = touching(lower[0], upper[:2])
        if len(anchors) == 2:
            lower = _split(lower[0], anchors, origin) + lower[1:]
    return upper, lower


def _chains(upper: list[_Region], lower: list[_Region]) -> list[_Segments]:
    """Pair upper and lower regions that touch (most touching pixels first); then a lone
    upper with a lone lower region nearer than a width (an occluder between them)."""
    touch = np.array([[int(_touching(u.mask, lo.mask).sum()) for lo in lower] for u in upper],
                     dtype=np.int64).reshape(len(upper), len(lower))
    chains, used_u, used_l = [], set(), set()
    for flat in np.argsort(-touch, axis=None, kind="stable"):
        i, j = np.unravel_index(flat, touch.shape)
        if touch[i, j] > 0 and i not in used_u and j not in used_l:
            chains.append(_Segments(upper[i], lower[j]))
            used_u.add(i)
            used_l.add(j)
    for i, u in enumerate(upper):
        if i in used_u:
            continue
        for j, lo in enumerate(lower):
            gap = np.hypot(*(u.far_end(lo.centroid) - lo.far_end(u.centroid)))
            if j not in used_l and gap <= 2 * max(u.half_width(), lo.half_width()):
                chains.append(_Segments(u, lo))
                used_u.add(i)
                used_l.add(j)
                break
    chains += [_Segments(u, None) for i, u in enumerate(upper) if i not in used_u]
    chains += [_Segments(None, lo) for j, lo in enumerate(lower) if j not in used_l]
    return sorted(chains, key=lambda c: -c.size)


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


def _anchor(points: list[np.ndarray | None], seg: _Segments) -> np.ndarray:
    """The most proximal joint found (else the segments' centre): decides a side."""
    found = [p for p in points if p is not None]
    if found:
        return found[0]
    return np.mean([r.centroid for r in (seg.upper, seg.lower) if r is not None], axis=0)


def _facing_sides(limb_chains: list, head: _Region | None, torso: _Region | None,
                  centre: np.ndarray, labelled: np.ndarray | None) -> dict[int, np.ndarray]:
    """Joints of the limbs found without fine parts, sides by the facing rule."""
    arm_tops = [p[0] for p in limb_chains[0][1] if p[0] is not None]
    hips = [p[0] for p in limb_chains[1][1] if p[0] is not None]
    top = head.centroid if head is not None else (np.mean(arm_tops, 0) if arm_tops else None)
    bottom = np.mean(hips, 0) if hips else (torso.centroid if torso is not None else None)
    down = _unit(bottom - top) if top is not None and bottom is not None else None
    if down is None:
        down = np.array([0.0, 1.0])
    right = np.array([-down[1], down[0]])  # the person's right when facing the camera
    right = right * _orientation(labelled, right)
    points: dict[int, np.ndarray] = {}
    for limb, found, chains in limb_chains:
        lateral = [float((_anchor(p, c) - centre) @ right) for p, c in zip(found, chains)]
        if len(found) == 2:
            sides = ("r", "l") if lateral[0] >= lateral[1] else ("l", "r")
        else:
            sides = tuple("r" if lat >= 0 else "l" for lat in lateral)
        for joints, side in zip(found, sides):
            for index, point in zip(limb.joints[side], joints):
                if point is not None:
                    points[index] = point
    return points


def _fallback_limbs(labels: np.ndarray, origin: np.ndarray, anchors: tuple[np.ndarray, ...],
                    centre: np.ndarray, blocked: np.ndarray) -> list:
    """(limb, joints of up to two limbs, their segments) per limb type, from the part
    classes alone."""
    out = []
    for limb, body in zip(LIMBS, anchors):
        upper, lower = _split_touching(_components(labels == limb.upper, origin),
                                       _components(labels == limb.lower, origin), origin)
        found, chains = [], []
        for chain in _chains(upper, lower):
            joints = _locate(chain, limb, body, centre, blocked)
            first = next((p for p in joints if p is not None), None)
            width = max(r.half_width() for r in (chain.upper, chain.lower) if r is not None)
            duplicate = any(
                first is not None and other[k] is not None
                and np.hypot(*(other[k] - joints[k])) <= width
                for other in found for k in range(3) if joints[k] is not None)
            if first is None or duplicate:
                continue
            found.append(joints)
            chains.append(chain)
            if len(found) == 2:
                break
        out.append((limb, found, chains))
    return out


def _forehead(head: _Region, fine: np.ndarray | None, own_head: np.ndarray,
              start: np.ndarray | None, origin: np.ndarray) -> np.ndarray:
    """The forehead: the hairline on the face's midline when the head shows a face under
    hair, else ``FOREHEAD_FRACTION`` of the way from the head's centroid to its crown."""
    up = _unit(head.centroid - start) if start is not None else None
    if up is None:
        up = np.array([0.0, -1.0])
    if fine is not None:
        line = _hairline(fine, own_head, _face_up(fine, own_head, up))
        if line is not None:
            return line + origin
    crown = max(float(np.percentile((head.points - head.centroid) @ up, _END_PERCENTILE)), 0)
    return head.centroid + up * FOREHEAD_FRACTION * crown


def _face_up(fine: np.ndarray, own_head: np.ndarray, up: np.ndarray) -> np.ndarray:
    """The face's up axis: square to the line through both eyes where both show (a tilted
    head), on the side of ``up`` (from the neck through the head); else ``up``."""
    eyes = [np.argwhere((fine == _FINE_ID[name]) & own_head)[:, ::-1].mean(axis=0)
            for name in ("reye", "leye") if ((fine == _FINE_ID[name]) & own_head).any()]
    across = _unit(eyes[1] - eyes[0]) if len(eyes) == 2 else None
    if across is None:
        return up
    square = np.array([-across[1], across[0]])
    return square if square @ up >= 0 else -square


def _hairline(fine: np.ndarray, own_head: np.ndarray, up: np.ndarray) -> np.ndarray | None:
    """The middle of the hairline (crop coordinates): of the face pixels with hair just
    above them (along ``up``), those above the face's features (eyes, brows, nose, mouth)
    and near the midline through them; None without such a line or features (a head seen
    from behind shows skin only below the hair, at the nape)."""
    face = np.isin(fine, _FACE) & own_head
    hair = (fine == _FINE_ID["hair"]) & own_head
    features = np.argwhere(np.isin(fine, _FEATURES) & own_head)[:, ::-1].astype(np.float64)
    ys, xs = np.nonzero(face)
    if len(xs) < MIN_PIXELS or hair.sum() < MIN_PIXELS or not len(features):
        return None
    points = np.stack([xs, ys], axis=1).astype(np.float64)
    probe = np.rint(points + _HAIRLINE_PROBE * up).astype(int)
    inside = ((probe >= 0) & (probe < [fine.shape[1], fine.shape[0]])).all(axis=1)
    below_hair = np.zeros(len(points), bool)
    below_hair[inside] = hair[probe[inside, 1], probe[inside, 0]]
    if below_hair.sum() < 2:
        return None
    normal = np.array([-up[1], up[0]])
    lateral = points @ normal
    middle = features.mean(axis=0) @ normal  # the face's midline runs through its features
    spread = np.percentile(lateral, 90) - np.percentile(lateral, 10)
    above = points @ up > features.mean(axis=0) @ up
    line = points[below_hair & above & (np.abs(lateral - middle) <= _HAIRLINE_BAND * spread)]
    return np.median(line, axis=0) if len(line) else None


def _neck(head: _Region | None, torso: _Region | None, fine: np.ndarray | None,
          own: np.ndarray, origin: np.ndarray) -> np.ndarray | None:
    """The base of the neck: the neck part's boundary with the torso; without a neck part,
    the head's boundary with the torso (under the chin) lowered by ``NECK_DROP`` of the
    head's length."""
    if fine is not None:
        neck = _region((fine == _FINE_ID["neck"]) & own, origin)
        body = _region((fine == _FINE_ID["torso"]) & own, origin)
        if neck is not None and body is not None:
            base = _boundary_centre(neck, body)
            if base is not None:
                return base
        if neck is not None and head is not None:
            return neck.far_end(head.centroid)
    if head is None or torso is None:
        return None
    chin = _boundary_centre(head, torso)  # the head meets the torso under the chin
    down = None if chin is None else _unit(torso.centroid - head.centroid)
    if down is None:
        return chin
    extent = (head.points - head.centroid) @ down
    return chin + down * NECK_DROP * float(np.ptp(extent))


def _mirrored(points: dict[int, np.ndarray], neck: np.ndarray | None, torso: _Region | None,
              shape: tuple[int, int]) -> dict[int, np.ndarray]:
    """Hidden shoulders and hips: the found partner mirrored across the body's midline."""
    if neck is None or torso is None:
        return {}
    axis = _unit(torso.centroid - neck)
    if axis is None:
        return {}
    apart = torso.half_width(axis)  # a partner nearer than this would sit on the joint
    out = {}
    for limb in LIMBS:
        r, l = limb.joints["r"][0], limb.joints["l"][0]
        for have, missing in ((r, l), (l, r)):
            if have in points and missing not in points:
                rel = points[have] - neck
                mirror = neck + 2 * (rel @ axis) * axis - rel
                inside = 0 <= mirror[0] <= shape[1] - 1 and 0 <= mirror[1] <= shape[0] - 1
                if inside and np.hypot(*(mirror - points[have])) >= apart:
                    out[missing] = mirror
    return out


def propose_person(part_map: np.ndarray, instance_map: np.ndarray, instance: int,
                   labelled: np.ndarray | None = None,
                   fine_map: np.ndarray | None = None) -> np.ndarray:
    """Proposed joints ``(14, 3)`` float32 of one person (``v = 0`` where none was found).

    ``part_map`` and ``instance_map`` are the image's maps; the person owns the pixels
    where ``instance_map == instance``. ``fine_map`` is the image's fine part map
    (``Sample.fine_part_map``), the source of segments and sides where given. ``labelled``
    (the person's current ``(14, 3)`` joints) decides left/right without fine parts when it
    holds left/right pairs; proposals are made for every joint, the caller keeps the ones it
    needs.
    """
    out = np.zeros((schema.NUM_JOINTS, 3), np.float32)
    own = instance_map == instance
    rows, cols = np.flatnonzero(own.any(axis=1)), np.flatnonzero(own.any(axis=0))
    if not len(rows):
        return out
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    own = own[y0:y1, x0:x1]
    origin = np.array([x0, y0], np.float64)
    fine = None if fine_map is None else np.where(own, fine_map[y0:y1, x0:x1], 0)
    if fine is not None and fine.any():
        labels = schema.FINE_ID_TO_PART[fine]
    else:
        fine = None
        labels = np.where(own, part_map[y0:y1, x0:x1], 0)
        labels[labels == schema.IGNORE_LABEL] = 0
    if not labels.any():
        return out
    head = (_components(labels == _PART_ID["head"], origin) or [None])[0]
    torso = (_components(labels == _PART_ID["torso"], origin) or [None])[0]
    ys, xs = np.nonzero(labels)
    centre = torso.centroid if torso is not None else np.array([xs.mean(), ys.mean()]) + origin
    shape = instance_map.shape
    blocked = (instance_map != instance) & (instance_map != 0)  # other persons' pixels

    points: dict[int, np.ndarray] = {}
    neck = _neck(head, torso, fine, own, origin)
    if neck is not None:
        points[NECK] = neck
    if head is not None:
        start = neck if neck is not None else (torso.centroid if torso is not None else None)
        points[FOREHEAD] = _forehead(head, fine, head.mask, start, origin)
    anchors = (points.get(NECK), None)  # where arms join the body; legs: the torso's centre
    if fine is not None:
        for limb, body in zip(LIMBS, anchors):
            for side in "rl":
                found = _locate(_fine_segments(fine, limb, side, origin), limb, body, centre,
                                blocked)
                points.update({j: p for j, p in zip(limb.joints[side], found) if p is not None})
    else:
        points.update(_facing_sides(_fallback_limbs(labels, origin, anchors, centre, blocked),
                                    head, torso, centre, labelled))
    points.update(_mirrored(points, points.get(NECK), torso, shape))

    height, width = shape
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
        part_map, instance_map, fine_map = sample.part_map, sample.instance_map, \
            sample.fine_part_map
        for person in sample.persons:
            if (person.keypoints[:, 2] == 0).any():
                computed[person.annotation_id] = propose_person(
                    part_map, instance_map, person.instance, person.keypoints, fine_map)
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
