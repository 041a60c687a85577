"""Drawing: part maps, person outlines and skeletons over an image (``ppp show``, the
labeler, the reference model's figures).

Every function takes an RGB uint8 image and returns a new one; nothing is drawn in place.
Colours come from ``schema`` (part colours are the VOC palette of the label PNGs, joint
colours the schema's joint table), so a figure matches the files it shows.
"""

from __future__ import annotations

import colorsys
import os

import cv2
import numpy as np
from PIL import Image

from pascal_person_pose import atomic, schema
from pascal_person_pose.dataset import Sample

# Fixed-point drawing: cv2 takes coordinates times 2**_SHIFT, so sub-pixel joints land
# where they are instead of on the nearest integer.
_SHIFT = 4
_SCALE = 1 << _SHIFT

_PART_LUT = np.zeros((256, 3), dtype=np.float32)
_PART_LUT[: schema.NUM_PARTS] = schema.PART_COLOURS
_PART_LUT[schema.IGNORE_LABEL] = schema.voc_palette()[3 * schema.IGNORE_LABEL:
                                                      3 * schema.IGNORE_LABEL + 3]


def draw_parts(image: np.ndarray, part_map: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Blend the part colours over the image (background left as is, ignore in VOC cream)."""
    out = image.copy()
    painted = part_map > 0
    colours = _PART_LUT[part_map[painted]]
    out[painted] = np.round((1 - alpha) * image[painted] + alpha * colours).astype(np.uint8)
    return out


def instance_colours(count: int) -> np.ndarray:
    """``count`` well-separated bright colours (golden-ratio hues), (count, 3) uint8."""
    hues = (np.arange(count) * 0.618033988749895) % 1.0
    rgb = np.array([colorsys.hsv_to_rgb(h, 0.75, 1.0) for h in hues]).reshape(-1, 3)
    return np.round(rgb * 255).astype(np.uint8)


def draw_instances(image: np.ndarray, instance_map: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Outline each person of the instance map in its own colour (instance k: colour k-1)."""
    out = np.ascontiguousarray(image.copy())
    present = np.flatnonzero(np.bincount(instance_map.ravel(), minlength=256)[1:]) + 1
    colours = instance_colours(int(present.max()) if present.size else 0)
    for k in present:
        contours, _ = cv2.findContours((instance_map == k).astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        # 8-connected, not anti-aliased: the outline is exactly the mask's border pixels.
        cv2.drawContours(out, contours, -1, tuple(map(int, colours[k - 1])), thickness,
                         cv2.LINE_8)
    return out


def draw_skeletons(image: np.ndarray, keypoints: np.ndarray, *, scores: bool = False,
                   joint_names: bool = False, radius: int | None = None) -> np.ndarray:
    """Draw poses (G, 14, 3): bones between present joints, joints in their schema colours.

    GT poses (``scores=False``) draw occluded joints (v = 1) hollow and visible ones (v = 2)
    filled; predictions (``scores=True``, column 2 a score) draw every present joint filled.
    """
    out = np.ascontiguousarray(image.copy())
    radius = radius or max(2, round(min(image.shape[:2]) / 120))
    thickness = max(1, radius // 2)
    joint_colours = [tuple(map(int, j.colour)) for j in schema.JOINTS]
    font_scale = 0.25 + 0.08 * radius
    for pose in np.asarray(keypoints, dtype=np.float64).reshape(-1, schema.NUM_JOINTS, 3):
        present = pose[:, 2] > 0
        points = np.round(pose[:, :2] * _SCALE).astype(np.int64)
        for (a, b), colour in zip(schema.SKELETON_INDEX, schema.SKELETON_COLOURS):
            if present[a] and present[b]:
                cv2.line(out, tuple(points[a]), tuple(points[b]), colour, thickness, cv2.LINE_AA,
                         _SHIFT)
        for j in np.flatnonzero(present):
            hollow = not scores and pose[j, 2] == 1
            cv2.circle(out, tuple(points[j]), radius * _SCALE, joint_colours[j],
                       thickness if hollow else cv2.FILLED, cv2.LINE_AA, _SHIFT)
            if joint_names:
                cv2.putText(out, schema.JOINT_NAMES[j],
                            (int(pose[j, 0]) + radius + 1, int(pose[j, 1]) - radius - 1),
                            cv2.FONT_HERSHEY_SIMPLEX, font_scale, joint_colours[j], 1,
                            cv2.LINE_AA)
    return out


def render_sample(sample: Sample, *, parts: bool = True, instances: bool = True,
                  skeletons: bool = True, joint_names: bool = False,
                  alpha: float = 0.6) -> np.ndarray:
    """The image of a sample with its ground truth drawn over it (what ``ppp show`` saves)."""
    out = sample.image
    if parts:
        out = draw_parts(out, sample.part_map, alpha)
    if instances:
        out = draw_instances(out, sample.instance_map)
    if skeletons:
        out = draw_skeletons(out, sample.keypoints, joint_names=joint_names)
    return out


def save_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an RGB drawing as PNG, atomically."""
    atomic.save_image(path, Image.fromarray(rgb))
