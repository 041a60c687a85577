"""One synthetic scene in memory: people, objects and distractors composed by depth.

Every layer (a person, an object, a distractor) is rasterised once into a label window and
painted; layers are then stacked far to near, and an owner map records which layer each
pixel shows. All annotations are read back from that map, so they agree with the picture
by construction: a person's mask is exactly its visible pixels, its fine parts are the
visible pixels of each part, and a joint is visible (COCO v=2) only when the pixel under
it shows this person's own part for that joint, otherwise occluded (v=1, by another
person, an object, a distractor or the person's own limbs), or not labelled (v=0) outside
the image and for a small random share, as human annotators skip joints.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pascal_person_pose import schema
from pascal_person_pose.synth import objects
from pascal_person_pose.synth.body import FINE_LABEL, FINE_PARTS, JOINT_LABELS, Body, \
    Drawing, sample_body
from pascal_person_pose.synth.objects import ObjectClass
from pascal_person_pose.synth.texture import background, cloth_colour, hair_colour, pattern, \
    skin_colour

PERSON = ObjectClass("person", 15, FINE_PARTS)
MAX_PERSONS = 6
_PERSONS_P = (0.28, 0.26, 0.18, 0.12, 0.09, 0.07)

MIN_PIXELS = 12  # an annotated layer with fewer visible pixels is left out of the scene
MIN_VISIBLE_SHARE = 0.05  # ... or with less than this share of its in-image pixels visible
OCCLUDED_SHARE = 0.05  # a person with this share of its in-image pixels hidden is occluded
UNLABELLED_SHARE = 0.03  # joints in the image left unlabelled at random

# Upstream, the 'head' mask covers the face: the eyes, brows, nose and mouth lie inside it.
_HEAD_LABELS = [FINE_LABEL[f] for f in ("head", "leye", "reye", "lebrow", "rebrow", "nose",
                                        "mouth")]
_HIPS = [schema.name2joint[name].index for name in ("r_hip", "l_hip")]
_ANKLES = [schema.name2joint[name].index for name in ("r_ankle", "l_ankle")]
# _SEES[j, label]: a pixel of this fine-part label shows joint j.
_SEES = np.zeros((schema.NUM_JOINTS, len(FINE_PARTS) + 1), bool)
for _j, _labels in enumerate(JOINT_LABELS):
    _SEES[_j, sorted(_labels)] = True


@dataclass
class SynthPerson:
    """An annotated person; masks are full-image bool arrays of the visible pixels."""

    mask: np.ndarray
    parts: list[tuple[str, np.ndarray]]  # fine PASCAL-Part names; 'head' includes the face
    keypoints: np.ndarray  # (14, 3) float32, 0-based x, y and COCO visibility
    box: np.ndarray  # (4,) float32 x1, y1, x2, y2: the tight inclusive box of ``mask``
    facing_camera: bool
    pose: str
    truncated: bool  # the body extends beyond the image border
    occluded: bool  # at least OCCLUDED_SHARE of its in-image pixels are hidden


@dataclass
class SceneObject:
    """An annotated non-person object (VOC class), with PASCAL-Part parts where it has any."""

    class_name: str
    class_ind: int
    mask: np.ndarray
    parts: list[tuple[str, np.ndarray]]


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8 RGB, before JPEG compression
    persons: list[SynthPerson]
    objects: list[SceneObject]

    @property
    def keypoints(self) -> np.ndarray:
        """(N, 14, 3) float32 keypoints of the persons, in ``persons`` order."""
        return np.array([p.keypoints for p in self.persons], np.float32).reshape(
            -1, schema.NUM_JOINTS, 3)

    @property
    def boxes(self) -> np.ndarray:
        return np.array([p.box for p in self.persons], np.float32).reshape(-1, 4)

    def part_labels(self) -> np.ndarray:
        """The Person-Part label map: part class ids 0-6 of the visible person parts."""
        out = np.zeros(self.image.shape[:2], np.uint8)
        for person in self.persons:
            for name, mask in person.parts:
                out[mask] = schema.FINE_PART_TO_ID[name]
        return out


@dataclass
class _Material:
    colours: np.ndarray  # (k, 3)
    scale: float
    kind: str | None = None  # a texture.PATTERNS entry, None for a random one


@dataclass
class _Layer:
    kind: ObjectClass | None  # None: an unannotated distractor
    box: tuple[int, int, int, int]  # the image window x0, y0, x1, y1 (exclusive)
    labels: np.ndarray  # uint8 raster of the window, 0 = not this layer
    rgb: np.ndarray  # float32 (h, w, 3) colours of the window
    depth: float  # larger is nearer the camera
    truncated: bool
    body: Body | None = None


def _paint(rng: np.random.Generator, labels: np.ndarray, material_of: np.ndarray,
           materials: list[_Material]) -> np.ndarray:
    """Colours of a label raster: one texture per material over all of its pixels, so cloth
    runs on across parts (a shirt over torso and sleeves), with darkened part boundaries."""
    h, w = labels.shape
    index = material_of[labels]
    out = np.zeros((h, w, 3), np.float32)
    for k in np.unique(index[index >= 0]):
        m = materials[k]
        sel = index == k
        rows, cols = np.flatnonzero(sel.any(1)), np.flatnonzero(sel.any(0))
        window = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        texture = pattern(rng, rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0], m.colours,
                          m.scale, m.kind)
        out[window][sel[window]] = texture[sel[window]]
    edge = np.zeros((h, w), bool)
    edge[1:] |= labels[1:] != labels[:-1]
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    out[edge] *= 0.78
    return out


def _layer(rng: np.random.Generator, drawing: Drawing, kind: ObjectClass | None, depth: float,
           material_of: list[int], materials: list[_Material], width: int, height: int,
           body: Body | None = None) -> _Layer | None:
    """Rasterise and paint a drawing inside the image; None when nothing of it is inside."""
    ext = drawing.extent()
    x0, y0 = max(int(np.floor(ext[0])), 0), max(int(np.floor(ext[1])), 0)
    x1, y1 = min(int(np.ceil(ext[2])) + 1, width), min(int(np.ceil(ext[3])) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    labels = drawing.rasterise((x0, y0, x1, y1))
    if not labels.any():
        return None
    rgb = _paint(rng, labels, np.array([-1] + list(material_of)), materials)
    truncated = bool(ext[0] < 0 or ext[1] < 0 or ext[2] > width - 1 or ext[3] > height - 1)
    return _Layer(kind, (x0, y0, x1, y1), labels, rgb, depth, truncated, body)


def _outfit(rng: np.random.Generator, stature: float) -> tuple[list[int], list[_Material]]:
    """Materials of a person (skin, hair, top, bottom, shoes, eyes, lips) and of each part."""
    def cloth() -> _Material:
        return _Material(np.stack([cloth_colour(rng), cloth_colour(rng)]),
                         stature * rng.uniform(0.02, 0.08))

    materials = [
        _Material(skin_colour(rng)[None], stature * 0.2, "solid"),
        _Material(hair_colour(rng)[None], stature * 0.02, str(rng.choice(["solid", "stripes"]))),
        cloth(),
        cloth(),
        _Material((cloth_colour(rng) * 0.4)[None], stature * 0.1, "solid"),
        _Material(np.array([[35.0, 25.0, 25.0]]), 4.0, "solid"),
        _Material(np.clip(np.array([[175.0, 75.0, 75.0]]) + rng.normal(0, 15, 3), 0, 255),
                  4.0, "solid"),
    ]
    skin, hair, top, bottom, shoes, eyes, lips = range(len(materials))
    sleeves = rng.choice(["none", "short", "long"], p=(0.2, 0.35, 0.45))
    trousers = rng.random() < 0.65
    of = {name: skin for name in FINE_PARTS}
    of.update(hair=hair, lebrow=hair, rebrow=hair, leye=eyes, reye=eyes, mouth=lips,
              torso=top, luleg=bottom, ruleg=bottom, lfoot=shoes, rfoot=shoes)
    if sleeves != "none":
        of.update(luarm=top, ruarm=top)
    if sleeves == "long":
        of.update(llarm=top, rlarm=top)
    if trousers:
        of.update(llleg=bottom, rlleg=bottom)
    return [of[name] for name in FINE_PARTS], materials


def _plain(rng: np.random.Generator, n: int, scale: float) -> tuple[list[int], list[_Material]]:
    """One random material per label, for objects."""
    materials = [_Material(np.stack([cloth_colour(rng), cloth_colour(rng)]),
                           scale * rng.uniform(0.05, 0.3)) for _ in range(n)]
    return list(range(n)), materials


def _person(rng: np.random.Generator, scale: float, width: int, height: int) -> _Layer | None:
    """A person of about ``scale`` image heights tall, placed so that some are cut by the
    border; bigger and lower people stand nearer the camera."""
    stature = height * float(np.clip(scale * np.exp(rng.normal(0, 0.25)), 0.08, 2.2))
    body = sample_body(rng, stature)
    x0, y0, x1, y1 = body.drawing.extent()
    tall = y1 - y0
    lo, hi = sorted((-0.15 * tall, height - 0.5 * tall))
    offset = np.array([rng.uniform(-0.05, 1.05) * width, rng.uniform(lo, hi) - y0])
    body = body.moved(offset)
    depth = stature + 0.3 * (y1 + offset[1]) + rng.normal(0, 0.1 * stature)
    material_of, materials = _outfit(rng, stature)
    return _layer(rng, body.drawing, PERSON, depth, material_of, materials, width, height, body)


def _furniture(rng: np.random.Generator, people: list[_Layer], width: int,
               height: int) -> list[_Layer | None]:
    """Chairs under some seated people (behind them, or in front when seen from the back)
    and now and then a table in front of someone, hiding the legs."""
    out = []
    for p in people:
        body = p.body
        if body.pose != "seated" or rng.random() > 0.6:
            continue
        S = body.stature
        hips, ankles = body.joints[_HIPS], body.joints[_ANKLES]
        seat = hips.mean(0) + (0, 0.03 * S)
        leg = max(float(ankles[:, 1].max() - seat[1]), 0.1 * S) + 0.02 * S
        drawing = objects.chair(seat, 0.34 * S, leg, 0.3 * S)
        depth = p.depth + (-0.01 if body.facing_camera else 0.01) * S
        out.append(_layer(rng, drawing, objects.CHAIR, depth, *_plain(rng, 1, S),
                          width, height))
    if people and rng.random() < 0.25:
        p = people[rng.integers(len(people))]
        S = p.body.stature
        hips = p.body.joints[_HIPS]
        cx, top = hips[:, 0].mean(), hips[:, 1].mean() - rng.uniform(0, 0.15) * S
        drawing = objects.table(cx - rng.uniform(0.3, 0.9) * S, cx + rng.uniform(0.3, 0.9) * S,
                                top, 0.4 * S)
        out.append(_layer(rng, drawing, objects.TABLE, p.depth + 0.01 * S, *_plain(rng, 1, S),
                          width, height))
    return out


def _compose(layers: list[_Layer], backdrop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paint layers far to near; returns the image and the owner map (layer index + 1)."""
    image = backdrop.copy()
    owner = np.zeros(backdrop.shape[:2], np.int32)
    for k in np.argsort([layer.depth for layer in layers], kind="stable"):
        layer = layers[k]
        x0, y0, x1, y1 = layer.box
        m = layer.labels > 0
        owner[y0:y1, x0:x1][m] = k + 1
        image[y0:y1, x0:x1][m] = layer.rgb[m]
    return image, owner


def _visible_parts(layer: _Layer, seen: np.ndarray,
                   shape: tuple[int, int]) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """Full-image masks of a layer's visible pixels and of each visible named part."""
    x0, y0, x1, y1 = layer.box

    def full(local: np.ndarray) -> np.ndarray:
        out = np.zeros(shape, bool)
        out[y0:y1, x0:x1] = local
        return out

    visible = np.where(seen, layer.labels, 0)
    names = layer.kind.labels
    present = np.flatnonzero(np.bincount(visible.ravel(), minlength=len(names) + 1)[1:]) + 1
    local = {names[v - 1]: visible == v for v in present if names[v - 1] is not None}
    if layer.kind is PERSON and "head" in local:
        local["head"] = np.isin(visible, _HEAD_LABELS)
    return full(seen), [(name, full(m)) for name, m in local.items()]


def _keypoints(rng: np.random.Generator, layer: _Layer, k: int,
               owner: np.ndarray) -> np.ndarray:
    """(14, 3) keypoints of person layer ``k`` with visibility read from the owner map."""
    height, width = owner.shape
    xy = layer.body.joints
    inside = (xy[:, 0] >= 0) & (xy[:, 0] <= width - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= height - 1)
    ix = np.clip(np.round(xy[:, 0]).astype(int), 0, width - 1)
    iy = np.clip(np.round(xy[:, 1]).astype(int), 0, height - 1)
    x0, y0, x1, y1 = layer.box
    label = layer.labels[np.clip(iy - y0, 0, y1 - y0 - 1), np.clip(ix - x0, 0, x1 - x0 - 1)]
    seen = (owner[iy, ix] == k + 1) & _SEES[np.arange(schema.NUM_JOINTS), label]
    v = np.where(inside, np.where(seen, 2, 1), 0)
    v[rng.random(schema.NUM_JOINTS) < UNLABELLED_SHARE] = 0
    out = np.zeros((schema.NUM_JOINTS, 3), np.float32)
    out[:, :2] = np.where(v[:, None] > 0, xy, 0)
    out[:, 2] = v
    return out


def _camera(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Defocus blur and sensor noise (the JPEG noise comes when the image is written)."""
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 1.2))
    noise = rng.standard_normal(image.shape, np.float32)
    noise *= rng.uniform(0, 6)
    image += noise
    np.clip(image, 0, 255, out=image)
    return np.rint(image, out=image).astype(np.uint8)


def _attempt(rng: np.random.Generator, width: int, height: int) -> Scene:
    backdrop = background(rng, height, width)
    scale = float(np.exp(rng.uniform(np.log(0.13), np.log(1.6))))
    n_people = 1 + rng.choice(MAX_PERSONS, p=_PERSONS_P)
    people = [layer for layer in (_person(rng, scale, width, height) for _ in range(n_people))
              if layer is not None]
    depths = [p.depth for p in people] or [0.0]
    lo, hi = min(depths), max(depths)
    span = hi - lo + 0.2 * height
    layers: list[_Layer | None] = [*people, *_furniture(rng, people, width, height)]
    for _ in range(rng.integers(0, 3)):
        kind = objects.FREE_STANDING[rng.integers(len(objects.FREE_STANDING))]
        size = height * rng.uniform(0.08, 0.4)
        centre = rng.uniform(-0.05, 1.05, 2) * (width, height)
        layers.append(_layer(rng, objects.free_standing(rng, kind, centre, size), kind,
                             rng.uniform(lo - 0.3 * span, hi + 0.3 * span),
                             *_plain(rng, len(kind.labels), size), width, height))
    for _ in range(rng.integers(1, 7)):
        size = height * float(np.exp(rng.uniform(np.log(0.1), np.log(1.2))))
        centre = rng.uniform(0, 1, 2) * (width, height)
        depth = lo - span if rng.random() < 0.6 else rng.uniform(lo, hi + 0.1 * span)
        skin = rng.random() < 0.5
        materials = [_Material(skin_colour(rng)[None], size * 0.2, "solid")] if skin \
            else _plain(rng, 1, size)[1]
        layers.append(_layer(rng, objects.distractor(rng, centre, size), None, depth, [0],
                             materials, width, height))
    layers = [layer for layer in layers if layer is not None]

    image, owner = _compose(layers, backdrop)
    seen = np.bincount(owner.ravel(), minlength=len(layers) + 1)[1:]
    drawn = np.array([np.count_nonzero(layer.labels) for layer in layers])
    keep = [layer.kind is None or (s >= MIN_PIXELS and s >= MIN_VISIBLE_SHARE * d)
            for layer, s, d in zip(layers, seen, drawn)]
    if not all(keep):  # hidden and cut-off remnants would be unlabelable: take them out
        layers = [layer for layer, k in zip(layers, keep) if k]
        drawn = drawn[keep]
        image, owner = _compose(layers, backdrop)

    persons, others = [], []
    for k, layer in enumerate(layers):
        if layer.kind is None:
            continue
        x0, y0, x1, y1 = layer.box
        local = owner[y0:y1, x0:x1] == k + 1
        mask, parts = _visible_parts(layer, local, owner.shape)
        if layer.kind is not PERSON:
            others.append(SceneObject(layer.kind.name, layer.kind.index, mask, parts))
            continue
        ys, xs = np.nonzero(local)
        box = np.array([xs.min() + x0, ys.min() + y0, xs.max() + x0, ys.max() + y0], np.float32)
        hidden = drawn[k] - np.count_nonzero(local)
        persons.append(SynthPerson(
            mask, parts, _keypoints(rng, layer, k, owner), box, layer.body.facing_camera,
            layer.body.pose, layer.truncated, bool(hidden >= OCCLUDED_SHARE * drawn[k])))
    return Scene(_camera(rng, image), persons, others)


def render_scene(rng: np.random.Generator, width: int, height: int) -> Scene:
    """A random scene of 1-6 annotated people (plus objects and distractors) in memory.

    Deterministic given the generator's state. A draw whose people all end up hidden or
    outside the image is drawn again, so every scene has at least one annotated person.
    """
    while True:
        scene = _attempt(rng, width, height)
        if scene.persons:
            return scene
