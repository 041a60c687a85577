"""Things that are not people: annotated VOC objects and unannotated limb-like distractors.

Objects (chairs, tables, monitors, bottles, plants) hide parts of people and appear in the
PASCAL-Part files as non-person objects, as in the real data. Distractors are sticks and
blobs in skin and clothing colours: they look like arms, legs and heads but belong to no
person, so a model that fires on every skin-coloured stick is punished.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pascal_person_pose.synth.body import Drawing, direction


@dataclass(frozen=True)
class ObjectClass:
    name: str  # VOC class name
    index: int  # VOC class index (person = 15)
    labels: tuple[str | None, ...]  # PASCAL-Part part of each drawing label (None: no part)


CHAIR = ObjectClass("chair", 9, (None,))
TABLE = ObjectClass("diningtable", 11, (None,))
MONITOR = ObjectClass("tvmonitor", 20, (None, "screen"))
BOTTLE = ObjectClass("bottle", 5, ("body", "cap"))
PLANT = ObjectClass("pottedplant", 16, ("pot", "plant"))
FREE_STANDING = (CHAIR, MONITOR, BOTTLE, PLANT)


def _box(d: Drawing, label: int, x0: float, y0: float, x1: float, y1: float) -> None:
    d.polygon(label, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)])


def chair(seat: np.ndarray, width: float, leg: float, back: float) -> Drawing:
    """A chair seen from the front: seat centre ``seat``, legs down to ``leg`` below it."""
    d = Drawing()
    x, y = seat
    post = max(0.08 * width, 1.5)
    for side in (-1, 1):
        d.capsule(1, (x + side * 0.42 * width, y), (x + side * 0.46 * width, y + leg), post, post)
        d.capsule(1, (x + side * 0.4 * width, y), (x + side * 0.4 * width, y - back), post, post)
    _box(d, 1, x - 0.4 * width, y - back, x + 0.4 * width, y - 0.55 * back)
    _box(d, 1, x - 0.5 * width, y - 0.06 * width, x + 0.5 * width, y + 0.06 * width)
    return d


def table(x0: float, x1: float, top: float, leg: float) -> Drawing:
    """A table seen from the front, its top from ``x0`` to ``x1`` at height ``top``."""
    d = Drawing()
    board = 0.08 * (x1 - x0)
    d.polygon(1, [(x0 + board, top - board), (x1 - board, top - board), (x1, top + 0.3 * board),
                  (x0, top + 0.3 * board)])
    for x in (x0 + board, x1 - board):
        d.capsule(1, (x, top), (x, top + leg), 0.6 * board, 0.5 * board)
    return d


def monitor(rng: np.random.Generator, centre: np.ndarray, width: float) -> Drawing:
    d = Drawing()
    x, y = centre
    h = width * rng.uniform(0.6, 0.8)
    _box(d, 1, x - width / 2, y - h / 2, x + width / 2, y + h / 2)
    rim = 0.06 * width
    _box(d, 2, x - width / 2 + rim, y - h / 2 + rim, x + width / 2 - rim, y + h / 2 - rim)
    d.capsule(1, (x, y + h / 2), (x, y + 0.7 * h), 0.12 * width, 0.2 * width)
    return d


def bottle(rng: np.random.Generator, centre: np.ndarray, height: float) -> Drawing:
    d = Drawing()
    x, y = centre
    w = height * rng.uniform(0.25, 0.4)
    d.capsule(1, (x, y + 0.4 * height), (x, y - 0.1 * height), w, w)
    d.capsule(1, (x, y - 0.1 * height), (x, y - 0.38 * height), w, 0.35 * w)
    _box(d, 2, x - 0.2 * w, y - 0.5 * height, x + 0.2 * w, y - 0.4 * height)
    return d


def plant(rng: np.random.Generator, centre: np.ndarray, height: float) -> Drawing:
    d = Drawing()
    x, y = centre
    w = 0.35 * height
    d.polygon(1, [(x - w / 2, y), (x + w / 2, y), (x + 0.35 * w, y + 0.4 * height),
                  (x - 0.35 * w, y + 0.4 * height)])
    for _ in range(rng.integers(3, 8)):
        phi = np.pi + rng.uniform(-1.2, 1.2)  # leaves point up and out
        length = height * rng.uniform(0.2, 0.4)
        d.ellipse(2, np.array([x, y]) + direction(phi) * length, 0.25 * length, length, phi)
    return d


def free_standing(rng: np.random.Generator, kind: ObjectClass, centre: np.ndarray,
                  size: float) -> Drawing:
    """An object of about ``size`` pixels around ``centre``."""
    if kind is CHAIR:
        return chair(centre, 0.5 * size, 0.45 * size, 0.5 * size)
    if kind is MONITOR:
        return monitor(rng, centre, size)
    if kind is BOTTLE:
        return bottle(rng, centre, size)
    return plant(rng, centre, size)


def distractor(rng: np.random.Generator, centre: np.ndarray, size: float) -> Drawing:
    """A limb-like stick (one to three segments, tapered) or a head-like blob."""
    d = Drawing()
    if rng.random() < 0.25:
        d.ellipse(1, centre, 0.05 * size, 0.068 * size, rng.uniform(-0.5, 0.5))
        return d
    p = np.asarray(centre, np.float64)
    phi = rng.uniform(0, 2 * np.pi)
    width = size * rng.uniform(0.04, 0.1)
    for _ in range(rng.integers(1, 4)):
        q = p + direction(phi) * size * rng.uniform(0.12, 0.25)
        d.capsule(1, p, q, width, 0.8 * width)
        p, phi, width = q, phi + rng.uniform(-1.5, 1.5), 0.8 * width
    return d
