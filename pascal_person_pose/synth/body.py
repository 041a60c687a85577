"""Articulated 2D people: a pose sampler and the fine-part shapes a pose implies.

A body is built in a person-centred frame (pelvis at the origin, lengths as fractions of
the standing height ``stature``) from sampled joint angles, then moved into the image.
Left and right are the person's own, as everywhere in the toolkit: facing the camera, the
person's right side is on the image's left; facing away, on the image's right.

Shapes are kept in painter's order (later over earlier), so self-occlusion (the far arm
behind the torso of a turned person, a hand in front of the chest) is decided by the
drawing, and the scene reads each joint's visibility back from the rasterised labels
instead of guessing it. Rasterisation has anti-aliasing off and sub-pixel vertices, so
every labelled pixel belongs to exactly one part and the masks match the image exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pascal_person_pose import schema

# Label values of the fine PASCAL-Part person parts in a body's raster (0 = not the body).
FINE_PARTS: tuple[str, ...] = tuple(f for p in schema.PARTS for f in p.fine_parts)
FINE_LABEL: dict[str, int] = {name: i + 1 for i, name in enumerate(FINE_PARTS)}


def _side(name: str) -> str | None:
    """'l' or 'r' for a sided name (luarm, l_elbow), None for the centre line (head, neck)."""
    stem = name[1:]
    return name[0] if {"l" + stem, "r" + stem} <= set(FINE_PARTS) | set(schema.JOINT_NAMES) \
        else None


# The fine-part labels on which each joint counts as seen: the fine parts of the joint's
# part classes on the joint's own side (a right wrist seen over the left forearm is hidden).
JOINT_LABELS: tuple[frozenset[int], ...] = tuple(
    frozenset(FINE_LABEL[f] for part in j.parts for f in schema.name2part[part].fine_parts
              if _side(j.name) is None or _side(f) in (None, _side(j.name)))
    for j in schema.JOINTS)

POSE_FAMILIES = ("standing", "walking", "arms_raised", "seated", "crouched")
_POSE_P = (0.34, 0.2, 0.16, 0.15, 0.15)

_SHIFT = 4  # sub-pixel bits of OpenCV's drawing functions
_ONE = float(1 << _SHIFT)


def direction(phi: float) -> np.ndarray:
    """Unit vector at angle ``phi`` (radians) from straight down, towards the image's right."""
    return np.array([np.sin(phi), np.cos(phi)])


class Drawing:
    """Labelled shapes in painter's order, rasterised without anti-aliasing."""

    def __init__(self) -> None:
        self._shapes: list[tuple] = []

    def polygon(self, label: int, points) -> None:
        self._shapes.append(("polygon", label, np.asarray(points, np.float64)))

    def ellipse(self, label: int, centre, across: float, along: float, phi: float = 0.0,
                arc: tuple[float, float] = (0.0, 360.0)) -> None:
        """Ellipse with half-axes ``across`` and ``along``; ``along`` points at angle ``phi``.
        ``arc`` (degrees, 180-360 = the half towards -along) draws a filled sector."""
        self._shapes.append(("ellipse", label, np.asarray(centre, np.float64),
                             (max(across, 0.5), max(along, 0.5)), phi, arc))

    def capsule(self, label: int, p0, p1, w0: float, w1: float) -> None:
        """A tapered limb from ``p0`` (width ``w0``) to ``p1`` (width ``w1``), round ends."""
        p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
        w0, w1 = max(w0, 1.5), max(w1, 1.5)
        v = p1 - p0
        length = float(np.hypot(*v))
        if length > 1e-6:
            n = np.array([-v[1], v[0]]) / length
            self.polygon(label, [p0 + n * w0 / 2, p1 + n * w1 / 2, p1 - n * w1 / 2,
                                 p0 - n * w0 / 2])
        self.ellipse(label, p0, w0 / 2, w0 / 2)
        self.ellipse(label, p1, w1 / 2, w1 / 2)

    def moved(self, offset) -> "Drawing":
        offset = np.asarray(offset, np.float64)
        out = Drawing()
        out._shapes = [(s[0], s[1], s[2] + offset, *s[3:]) for s in self._shapes]
        return out

    def extent(self) -> np.ndarray:
        """Bounding box [x0, y0, x1, y1] (float) of everything drawn."""
        lo, hi = [], []
        for kind, _, geom, *rest in self._shapes:
            if kind == "polygon":
                lo.append(geom.min(0))
                hi.append(geom.max(0))
            else:
                (a, b), phi = rest[0], rest[1]
                half = np.array([np.hypot(a * np.cos(phi), b * np.sin(phi)),
                                 np.hypot(a * np.sin(phi), b * np.cos(phi))])
                lo.append(geom - half)
                hi.append(geom + half)
        return np.concatenate([np.min(lo, 0), np.max(hi, 0)])

    def rasterise(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """The uint8 label raster of the image window ``box`` = (x0, y0, x1, y1), exclusive."""
        x0, y0, x1, y1 = box
        canvas = np.zeros((y1 - y0, x1 - x0), np.uint8)
        origin = np.array([x0, y0], np.float64)
        for kind, label, geom, *rest in self._shapes:
            fixed = np.round((geom - origin) * _ONE).astype(np.int64)
            if kind == "polygon":
                cv2.fillPoly(canvas, [fixed.astype(np.int32)], int(label), cv2.LINE_8, _SHIFT)
            else:
                (a, b), phi, (start, end) = rest
                axes = (int(round(a * _ONE)), int(round(b * _ONE)))
                cv2.ellipse(canvas, (int(fixed[0]), int(fixed[1])), axes, -np.degrees(phi),
                            start, end, int(label), -1, cv2.LINE_8, _SHIFT)
        return canvas


@dataclass
class Body:
    """A posed person: joint positions (schema order, x y) and the fine-part drawing."""

    joints: np.ndarray  # (14, 2) float64 image coordinates
    drawing: Drawing
    facing_camera: bool
    pose: str  # one of POSE_FAMILIES
    stature: float  # standing height in pixels

    def moved(self, offset) -> "Body":
        return Body(self.joints + np.asarray(offset, np.float64), self.drawing.moved(offset),
                    self.facing_camera, self.pose, self.stature)


@dataclass
class _Limb:
    abduct: float  # degrees away from the body's midline (0 = hanging down, 180 = up)
    bend: float  # degrees of the distal segment relative to the proximal one (- = inwards)
    fore_proximal: float  # projected length factors (foreshortening towards the camera)
    fore_distal: float
    absolute_distal: bool = False  # bend is the distal segment's own angle from down


def _sample_limbs(rng: np.random.Generator, pose: str) -> tuple[dict, dict, float, float]:
    """Per-side arm and leg angles, body lean and torso length factor for a pose family."""
    u = rng.uniform
    lean = float(np.clip(rng.normal(0, 5), -15, 15))
    torso = 1.0
    arms, legs = {}, {}
    raised = {s for s in "rl" if rng.random() < 0.6} or {rng.choice(["r", "l"])}
    walk_front = rng.choice(["r", "l"])
    for s in "rl":
        if pose == "arms_raised" and s in raised:
            arms[s] = _Limb(u(100, 175), u(-60, 40), u(0.8, 1), u(0.7, 1))
        elif pose == "seated":
            arms[s] = _Limb(u(0, 35), u(-110, -30), u(0.75, 1), u(0.5, 0.9))
        elif pose == "crouched":
            arms[s] = _Limb(u(10, 60), u(-120, -30), u(0.7, 1), u(0.6, 1))
        elif pose == "walking":
            arms[s] = _Limb(u(-8, 25), u(-45, 0), u(0.75, 1), u(0.7, 1))
        else:
            arms[s] = _Limb(u(3, 30), u(-35, 5), u(0.8, 1), u(0.7, 1))
        if pose == "seated":
            legs[s] = _Limb(u(5, 35), u(-12, 12), u(0.2, 0.5), u(0.85, 1), True)
        elif pose == "crouched":
            legs[s] = _Limb(u(30, 75), -u(0, 25), u(0.45, 0.85), u(0.7, 1), True)
        elif pose == "walking":
            abduct = u(6, 22) if s == walk_front else u(-8, 3)
            legs[s] = _Limb(abduct, u(-20, 8), u(0.8, 1), u(0.8, 1))
        else:
            legs[s] = _Limb(u(-3, 12), u(-8, 4), u(0.9, 1), u(0.9, 1))
    if pose == "crouched":
        lean = float(np.clip(rng.normal(0, 8), -20, 20))
        torso = u(0.8, 0.95)
    return arms, legs, lean, torso


@dataclass
class _View:
    """How the camera sees a person."""

    facing_camera: bool
    yaw: float  # radians of turn, within +-60 degrees of facing (or facing away from) the camera
    sign: dict[str, float]  # image direction (+1 right, -1 left) of the person's own sides
    far: str | None  # the side turned away from the camera, drawn behind the torso

    @property
    def turn(self) -> float:
        return abs(np.cos(self.yaw))

    @property
    def width(self) -> float:
        """Factor on lateral extents, which shrink as the person turns."""
        return 0.35 + 0.65 * self.turn


def _sample_view(rng: np.random.Generator) -> _View:
    facing_camera = bool(rng.random() < 0.72)
    yaw = float(np.radians(rng.uniform(-60, 60)))
    sign = {"r": -1.0, "l": 1.0} if facing_camera else {"r": 1.0, "l": -1.0}
    far = None
    if abs(np.cos(yaw)) < 0.8:  # the side the face turns towards goes away from the camera
        far = "r" if sign["r"] == np.sign(np.sin(yaw)) else "l"
    return _View(facing_camera, yaw, sign, far)


class _Person:
    """The geometry of one sampled person: joints, head, limb shapes, and their drawing."""

    def __init__(self, rng: np.random.Generator, stature: float):
        S = self.S = float(stature)
        self.pose = POSE_FAMILIES[rng.choice(len(POSE_FAMILIES), p=_POSE_P)]
        arms, legs, lean_deg, self.torso_scale = _sample_limbs(rng, self.pose)
        self.view = view = _sample_view(rng)
        self.girth = rng.uniform(0.85, 1.2)
        lean = np.radians(lean_deg)
        self.down, self.lateral = direction(lean), np.array([np.cos(lean), -np.sin(lean)])
        sign, cx = view.sign, view.width

        J: dict[str, np.ndarray] = {}
        self.neck_base = J["neck"] = -self.down * 0.30 * S * self.torso_scale  # pelvis at 0
        for s in "rl":
            J[f"{s}_shoulder"] = (self.neck_base + sign[s] * self.lateral * cx * 0.115 * S
                                  + self.down * 0.03 * S)
            J[f"{s}_hip"] = sign[s] * self.lateral * cx * 0.072 * S * np.sqrt(self.girth)
        self.head_phi = lean + np.radians(np.clip(rng.normal(0, 8), -20, 20))
        self.head_down = direction(self.head_phi)
        self.head_lateral = np.array([np.cos(self.head_phi), -np.sin(self.head_phi)])
        self.a = 0.052 * S * rng.uniform(0.92, 1.08)  # head half-width
        self.b = 0.068 * S * rng.uniform(0.95, 1.06)  # head half-height
        self.neck_top = self.neck_base - self.head_down * 0.045 * S
        self.head_c = self.neck_top - self.head_down * self.b * 0.8
        J["forehead"] = self.head_c - self.head_down * self.b * 0.45

        self.limbs: dict[str, list[tuple]] = {}
        w_arm, w_leg = 0.062 * S * self.girth, 0.10 * S * self.girth
        for s in "rl":
            arm, leg = arms[s], legs[s]
            phi_u = lean + sign[s] * np.radians(arm.abduct)
            J[f"{s}_elbow"] = J[f"{s}_shoulder"] + 0.16 * S * arm.fore_proximal * direction(phi_u)
            phi_l = phi_u + sign[s] * np.radians(arm.bend)
            J[f"{s}_wrist"] = J[f"{s}_elbow"] + 0.14 * S * arm.fore_distal * direction(phi_l)
            phi_h = phi_l + sign[s] * np.radians(rng.uniform(-20, 20))
            hand = 0.045 * S * rng.uniform(0.8, 1.1)
            self.limbs[f"{s}_arm"] = [
                ("capsule", f"{s}uarm", J[f"{s}_shoulder"], J[f"{s}_elbow"], w_arm, 0.85 * w_arm),
                ("capsule", f"{s}larm", J[f"{s}_elbow"], J[f"{s}_wrist"], 0.8 * w_arm,
                 0.62 * w_arm),
                ("ellipse", f"{s}hand", J[f"{s}_wrist"] + direction(phi_h) * hand * 0.9,
                 0.5 * w_arm, hand, phi_h),
            ]
            phi_u = 0.3 * lean + sign[s] * np.radians(leg.abduct)
            J[f"{s}_knee"] = J[f"{s}_hip"] + 0.235 * S * leg.fore_proximal * direction(phi_u)
            phi_l = sign[s] * np.radians(leg.bend) + (0.0 if leg.absolute_distal else phi_u)
            J[f"{s}_ankle"] = J[f"{s}_knee"] + 0.24 * S * leg.fore_distal * direction(phi_l)
            foot_phi = phi_l + sign[s] * np.radians(rng.uniform(10, 40))  # toes turn out
            foot = 0.04 * S
            self.limbs[f"{s}_leg"] = [
                ("ellipse", f"{s}foot", J[f"{s}_ankle"] + direction(foot_phi) * foot * 0.8,
                 0.34 * w_leg, foot, foot_phi),
                ("capsule", f"{s}lleg", J[f"{s}_knee"], J[f"{s}_ankle"], 0.75 * w_leg,
                 0.5 * w_leg),
                ("capsule", f"{s}uleg", J[f"{s}_hip"], J[f"{s}_knee"], w_leg, 0.78 * w_leg),
            ]
        self.joints = np.array([J[name] for name in schema.JOINT_NAMES])
        self.has_hair = rng.random() < 0.92
        self.long_hair = self.has_hair and rng.random() < 0.3
        self.leg_order = [f"{s}_leg" for s in rng.permutation(["r", "l"])]

    def _torso_outline(self) -> np.ndarray:
        """Shoulders, waist, hips and crotch from (lateral, down) fractions of the stature."""
        t, g = 0.30 * self.torso_scale, self.girth
        shoulder, waist, hip = 0.135 * g, 0.10 * g, 0.108 * np.sqrt(g)
        half = np.array([(0.07, -0.01), (shoulder, 0.02), (0.95 * shoulder, 0.08), (waist, 0.17),
                         (hip, t - 0.02), (0.9 * hip, t + 0.035), (0.0, t + 0.05)])
        lat = np.concatenate([half[:, 0], -half[::-1, 0]]) * self.view.width * self.S
        dn = np.concatenate([half[:, 1], half[::-1, 1]]) * self.S
        return self.neck_base + lat[:, None] * self.lateral + dn[:, None] * self.down

    def _draw_head(self, d: Drawing) -> None:
        """Ears, neck, head, hair, and the face when it is seen and big enough to show."""
        a, b, c, phi, view = self.a, self.b, self.head_c, self.head_phi, self.view
        down, lat = self.head_down, self.head_lateral
        if b >= 4:
            for s in "rl":
                if s != view.far:
                    d.ellipse(FINE_LABEL[f"{s}ear"], c + lat * view.sign[s] * 0.95 * a
                              * view.width + down * 0.05 * b, 0.2 * a, 0.3 * b, phi)
        d.capsule(FINE_LABEL["neck"], self.neck_base + self.down * 0.01 * self.S, self.neck_top,
                  0.055 * self.S * self.girth, 0.05 * self.S * self.girth)
        d.ellipse(FINE_LABEL["head"], c, a, b, phi)
        hair_c = c - down * 0.12 * b
        if not view.facing_camera:
            if self.has_hair:
                d.ellipse(FINE_LABEL["hair"], hair_c, 1.04 * a, 0.96 * b, phi)
            return
        if self.has_hair:
            d.ellipse(FINE_LABEL["hair"], hair_c, 1.08 * a, 1.0 * b, phi, (180, 360))
        if b < 7:
            return
        shift = np.sin(view.yaw) * 0.45 * a  # the face turns with the head
        narrow = 0.5 + 0.5 * view.turn
        for s in "rl":
            eye = c + lat * (shift + view.sign[s] * 0.38 * a * narrow)
            d.ellipse(FINE_LABEL[f"{s}ebrow"], eye - down * 0.27 * b, 0.05 * b, 0.22 * a,
                      phi + np.pi / 2)
            d.ellipse(FINE_LABEL[f"{s}eye"], eye - down * 0.05 * b, 0.09 * b, 0.16 * a,
                      phi + np.pi / 2)
        d.ellipse(FINE_LABEL["nose"], c + lat * shift * 1.15 + down * 0.17 * b, 0.12 * a, 0.18 * b,
                  phi)
        d.ellipse(FINE_LABEL["mouth"], c + lat * shift + down * 0.52 * b, 0.07 * b,
                  0.3 * a * narrow, phi + np.pi / 2)

    def _draw_limb(self, d: Drawing, key: str) -> None:
        for kind, name, *geom in self.limbs[key]:
            getattr(d, kind)(FINE_LABEL[name], *geom)

    def drawing(self) -> Drawing:
        """All parts in painter's order. Facing the camera the arms are in front of the
        chest; from behind they start behind the back; a turned person's far limbs go first."""
        d = Drawing()
        view = self.view
        long_hair = (FINE_LABEL["hair"], self.head_c + self.head_down * 0.55 * self.b,
                     1.15 * self.a, 1.35 * self.b, self.head_phi)
        legs = self.leg_order
        if view.far is not None:
            legs = sorted(legs, key=lambda key: key[0] != view.far)
        arms = sorted(("r_arm", "l_arm"), key=lambda key: key[0] != view.far)
        arms_behind = arms if not view.facing_camera else arms[:1] if view.far else []
        if self.long_hair and view.facing_camera:
            d.ellipse(*long_hair)
        for key in legs + arms_behind:
            self._draw_limb(d, key)
        d.polygon(FINE_LABEL["torso"], self._torso_outline())
        self._draw_head(d)
        if self.long_hair and not view.facing_camera:
            d.ellipse(*long_hair)
        for key in arms:
            if key not in arms_behind:
                self._draw_limb(d, key)
        return d


def sample_body(rng: np.random.Generator, stature: float) -> Body:
    """A random person of standing height ``stature`` pixels with the pelvis at (0, 0)."""
    person = _Person(rng, stature)
    return Body(person.joints, person.drawing(), person.view.facing_camera, person.pose,
                person.S)
