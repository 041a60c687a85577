"""Drawing: part maps, person outlines and skeletons over an image (``ppp show``, the
labeler, the reference model's figures), and the views ``ppp show`` saves: panels with a
title, side by side, over a colour legend of the parts and joints.

Every function takes an RGB uint8 image and returns a new one; nothing is drawn in place.
Colours come from ``schema`` (part colours are the VOC palette of the label PNGs, joint
colours the schema's joint table), so a figure matches the files it shows.
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

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


def draw_prediction(image: np.ndarray, part_map: np.ndarray | None, keypoints: np.ndarray,
                    *, parts: bool = True, skeletons: bool = True, joint_names: bool = False,
                    alpha: float = 0.6) -> np.ndarray:
    """A submission's part map and poses (N, 14, 3; column 2 the joint score) over the image."""
    out = image
    if parts and part_map is not None:
        out = draw_parts(out, part_map, alpha)
    if skeletons:
        out = draw_skeletons(out, keypoints, scores=True, joint_names=joint_names)
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


# ------------------------------------------------------------------------ views and legend

_FONT_PX = 13
_GAP = 6
_PAPER = (255, 255, 255)
_INK = (30, 30, 30)
_LEGEND_MIN_WIDTH = 420  # below this the legend would wrap into a tall column


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default(size=_FONT_PX)


def _text_width(text: str) -> int:
    return int(np.ceil(_font().getlength(text)))


def legend_items(parts: bool = True, joints: bool = True) -> list[tuple[str, list]]:
    """``(section, [(name, colour, shape)])`` of what a view draws: part colours as squares,
    the ignore label, joints as discs."""
    sections = []
    if parts:
        items = [(p.name, p.colour, "square") for p in schema.PARTS[1:]]
        items.append(("ignore", tuple(int(c) for c in _PART_LUT[schema.IGNORE_LABEL]), "square"))
        sections.append(("parts", items))
    if joints:
        sections.append(("joints", [(j.name, j.colour, "disc") for j in schema.JOINTS]))
    return sections


def draw_legend(width: int, sections: list[tuple[str, list]], note: str = "") -> np.ndarray:
    """A strip ``width`` pixels wide: each section's swatches and names, wrapped into rows,
    then an optional note line."""
    font, row = _font(), _FONT_PX + 2 * _GAP
    swatch = _FONT_PX - 2
    lines: list[list[tuple[int, str, tuple, str]]] = []  # per row: (x, name, colour, shape)
    for title, items in sections:
        x = _GAP + _text_width(f"{title}:") + 2 * _GAP
        current: list = [(_GAP, f"{title}:", None, "title")]
        for name, colour, shape in items:
            item_width = swatch + _GAP // 2 + _text_width(name) + 2 * _GAP
            if x + item_width > width and len(current) > 1:
                lines.append(current)
                x, current = 2 * _GAP, []
            current.append((x, name, colour, shape))
            x += item_width
        lines.append(current)
    height = row * (len(lines) + bool(note)) + _GAP
    canvas = Image.new("RGB", (width, height), _PAPER)
    draw = ImageDraw.Draw(canvas)
    for k, line in enumerate(lines):
        top = _GAP + k * row
        for x, name, colour, shape in line:
            if shape == "title":
                draw.text((x, top + 1), name, fill=_INK, font=font)
                continue
            box = (x, top + 2, x + swatch, top + 2 + swatch)
            if shape == "disc":
                draw.ellipse(box, fill=tuple(colour), outline=_INK)
            else:
                draw.rectangle(box, fill=tuple(colour), outline=_INK)
            draw.text((x + swatch + _GAP // 2, top + 1), name, fill=_INK, font=font)
    if note:
        draw.text((_GAP, _GAP + len(lines) * row + 1), note, fill=_INK, font=font)
    return np.asarray(canvas)


def titled(panel: np.ndarray, title: str) -> np.ndarray:
    """``panel`` under a one-line title (cut with an ellipsis to the panel's width)."""
    font, height = _font(), _FONT_PX + 2 * _GAP
    while title and _text_width(title) > panel.shape[1] - 2 * _GAP and len(title) > 1:
        title = title[:-2] + "\u2026"
    canvas = Image.new("RGB", (panel.shape[1], height), _PAPER)
    ImageDraw.Draw(canvas).text((_GAP, _GAP), title, fill=_INK, font=font)
    return np.vstack([np.asarray(canvas), panel])


def compose(panels: Sequence[np.ndarray], legend_sections: list | None = None,
            note: str = "") -> np.ndarray:
    """Panels side by side (top-aligned, a white gap between), the legend below them."""
    gap = np.full((max(p.shape[0] for p in panels), _GAP, 3), _PAPER, np.uint8)
    row = []
    for k, panel in enumerate(panels):
        pad = gap.shape[0] - panel.shape[0]
        row += [gap] if k else []
        row.append(np.vstack([panel, np.full((pad, panel.shape[1], 3), _PAPER, np.uint8)]))
    out = np.hstack(row)
    if legend_sections is None:
        return out
    width = max(out.shape[1], _LEGEND_MIN_WIDTH)
    if width > out.shape[1]:
        out = np.hstack([out, np.full((out.shape[0], width - out.shape[1], 3), _PAPER,
                                      np.uint8)])
    return np.vstack([out, draw_legend(width, legend_sections, note)])


def save_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an RGB drawing as PNG, atomically."""
    atomic.save_image(path, Image.fromarray(rgb))
