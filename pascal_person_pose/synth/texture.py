"""Colours and textures of the synthetic scenes, as vectorised numpy fields.

Clothing, backgrounds and distractors share one pattern generator, so a model cannot tell
a person from the background by texture statistics alone: it has to use shape and
context, as on real photographs.
"""

from __future__ import annotations

import cv2
import numpy as np

# A spread of skin tones and hair colours (RGB), jittered per person.
_SKIN = np.array([(255, 224, 196), (241, 194, 160), (224, 172, 130), (198, 134, 96),
                  (160, 100, 70), (110, 70, 50), (80, 52, 38)], np.float32)
_HAIR = np.array([(20, 16, 14), (60, 40, 25), (110, 75, 40), (170, 130, 70),
                  (200, 170, 110), (140, 60, 30), (150, 150, 150), (230, 230, 225)], np.float32)

PATTERNS = ("solid", "stripes", "checks", "gradient", "blotches")


def skin_colour(rng: np.random.Generator) -> np.ndarray:
    return np.clip(_SKIN[rng.integers(len(_SKIN))] + rng.normal(0, 8, 3), 0, 255)


def hair_colour(rng: np.random.Generator) -> np.ndarray:
    return np.clip(_HAIR[rng.integers(len(_HAIR))] + rng.normal(0, 10, 3), 0, 255)


def cloth_colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated or a muted colour, from near black to near white."""
    base = rng.uniform(15, 240)
    spread = rng.choice((15.0, 60.0, 110.0))
    return np.clip(base + rng.uniform(-spread, spread, 3), 0, 255)


def smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """A smooth zero-mean field (float32, about unit variance) with blobs of ``cell`` pixels."""
    cell = max(int(round(cell)), 1)
    gh, gw = height // cell + 2, width // cell + 2
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    field = cv2.resize(grid, (gw * cell, gh * cell), interpolation=cv2.INTER_CUBIC)
    return field[:height, :width]


def _mix(rng: np.random.Generator, kind: str, height: int, width: int,
         period: float) -> np.ndarray | None:
    """The (height, width) weight of the second colour for a pattern kind (None: solid)."""
    if kind == "solid":
        return None
    if kind == "blotches":
        return (smooth_noise(rng, height, width, period) > rng.uniform(-0.5, 0.5)).astype(
            np.float32)
    yy, xx = np.ogrid[0:height, 0:width]
    angle = rng.uniform(0, np.pi)
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u = xx.astype(np.float32) * c + yy.astype(np.float32) * s
    if kind == "gradient":
        return (u - u.min()) / max(float(u.max() - u.min()), 1.0)
    if kind == "stripes":
        return ((u / period) % 1.0 < rng.uniform(0.3, 0.7)).astype(np.float32)
    v = yy.astype(np.float32) * c - xx.astype(np.float32) * s  # checks
    return (((u / period) % 1.0 < 0.5) ^ ((v / period) % 1.0 < 0.5)).astype(np.float32)


def pattern(rng: np.random.Generator, height: int, width: int, colours: np.ndarray,
            scale: float, kind: str | None = None) -> np.ndarray:
    """A (height, width, 3) float32 texture mixing ``colours`` (k, 3) at about ``scale`` pixels.

    ``kind`` is one of :data:`PATTERNS`, drawn at random when None. Every texture gets a
    low-frequency shading and a little grain, as cloth and walls under real light do.
    """
    kind = kind or PATTERNS[rng.choice(len(PATTERNS), p=(0.35, 0.25, 0.12, 0.13, 0.15))]
    colours = np.asarray(colours, np.float32)
    out = np.empty((height, width, 3), np.float32)
    out[:] = colours[0]
    mix = _mix(rng, kind, height, width, max(scale * rng.uniform(0.5, 1.5), 2.0))
    if mix is not None:
        out += np.broadcast_to(mix, (height, width))[..., None] * (colours[-1] - colours[0])
    out *= (1.0 + 0.12 * smooth_noise(rng, height, width, max(scale * 3, 4)))[..., None]
    out += rng.standard_normal((height, width, 1), np.float32) * 3.0
    return out


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An indoor/outdoor-like backdrop: a wall and a floor split by a horizon, plus panels
    (windows, shelves, doors) that give straight edges a model must learn to ignore."""
    scale = rng.uniform(6, 40)
    wall = pattern(rng, height, width, np.stack([cloth_colour(rng), cloth_colour(rng)]), scale)
    horizon = int(rng.uniform(0.3, 0.85) * height) if rng.random() < 0.7 else height
    if horizon < height:
        floor = pattern(rng, height - horizon, width,
                        np.stack([cloth_colour(rng), cloth_colour(rng)]), scale * 2, "gradient")
        wall[horizon:] = floor
    for _ in range(rng.integers(0, 6)):
        w, h = (rng.uniform(0.05, 0.4, 2) * (width, height)).astype(int) + 2
        x, y = rng.integers(-w // 2, width), rng.integers(-h // 2, height)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
        if x1 > x0 and y1 > y0:
            colours = np.stack([cloth_colour(rng), cloth_colour(rng)])
            wall[y0:y1, x0:x1] = pattern(rng, y1 - y0, x1 - x0, colours, rng.uniform(3, 20))
    # a light source somewhere: one smooth brightness ramp over the whole picture
    yy, xx = np.ogrid[0:height, 0:width]
    a = rng.uniform(0, 2 * np.pi)
    ramp = (xx * np.cos(a) + yy * np.sin(a)) / max(width, height)
    wall *= (1.0 + rng.uniform(0.0, 0.35) * (ramp - ramp.mean())).astype(np.float32)[..., None]
    return wall
