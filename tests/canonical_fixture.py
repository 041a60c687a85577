"""A small hand-made canonical dataset (docs/formats.md), written by tests into tmp_path.

Every person is an articulated stick body painted with the 6 part classes (torso polygon,
limbs as thick lines, head disc), its joints placed on the pixels of their parts, so the
joint/part/instance relations of the schema hold exactly: a visible joint (v = 2) lies on
one of ``schema.JOINT_PART_IDS[j]`` and on its own instance; a joint covered by a later
person is occluded (v = 1); a joint outside the image, or declared unlabelled, is v = 0.

Contents (deterministic):
- train: 2008_000003 (96x72, two overlapping persons), 2008_000008 (80x64, one person cut
  by the right border).
- val: 2009_000012 (96x72, three persons of sizes L, M and S, one joint unlabelled, a 4x4
  patch of ignore pixels), 2010_000001 (64x48, no person), 2010_000005 (80x64, persons of
  sizes L and XS, ``pose_annotated`` false: all their joints v = 0).

Other test modules import :func:`write_canonical_dataset` and read what it wrote from the
returned dict instead of hard-coding numbers.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from pascal_person_pose import atomic, layout, schema

# A standing person facing the camera (its right side on the image's left), in body units
# around the hip centre; the left arm is raised.
_BASE_POSE = {
    "forehead": (0, -18), "neck": (0, -12),
    "r_shoulder": (-5, -11), "r_elbow": (-8, -4), "r_wrist": (-10, 2),
    "r_hip": (-3, 3), "r_knee": (-4, 11), "r_ankle": (-4, 19),
    "l_shoulder": (5, -11), "l_elbow": (9, -5), "l_wrist": (12, -10),
    "l_hip": (3, 3), "l_knee": (5, 11), "l_ankle": (6, 19),
}
_HEAD_CENTRE, _HEAD_RADIUS = (0, -16), 4.5
_PART_ID = {p.name: p.id for p in schema.PARTS}
_LIMB_ORDER = ("upper_leg", "lower_leg", "upper_arm", "lower_arm")

# (voc_id, split, width, height, pose_annotated, persons as (centre x, centre y, scale,
# unlabelled joint names))
_IMAGES = (
    ("2008_000003", "train", 96, 72, True, [(30, 34, 1.5, ()), (46, 40, 1.4, ())]),
    ("2008_000008", "train", 80, 64, True, [(70, 32, 1.2, ())]),
    ("2009_000012", "val", 96, 72, True,
     [(24, 34, 1.6, ()), (62, 40, 1.0, ("l_ankle",)), (86, 22, 0.4, ())]),
    ("2010_000001", "val", 64, 48, True, []),
    ("2010_000005", "val", 80, 64, False, [(40, 32, 1.3, ()), (70, 12, 0.15, ())]),
)
_IGNORE_PATCH = {"2009_000012": (slice(0, 4), slice(92, 96))}


def _paint_person(part_map: np.ndarray, instance_map: np.ndarray, instance: int,
                  centre: tuple[float, float], scale: float) -> np.ndarray:
    """Paint one body over the maps; return its integer joint positions (14, 2)."""
    joints = np.array([[centre[0] + scale * _BASE_POSE[n][0],
                        centre[1] + scale * _BASE_POSE[n][1]] for n in schema.JOINT_NAMES])
    joints = np.round(joints).astype(np.int32)
    own = np.zeros_like(part_map)
    torso = joints[[schema.name2joint[n].index for n in
                    ("r_shoulder", "l_shoulder", "l_hip", "r_hip")]]
    cv2.fillPoly(own, [torso], _PART_ID["torso"])
    thickness = max(1, round(2.5 * scale))
    for part in _LIMB_ORDER:
        for (a, b), edge_part in zip(schema.SKELETON_INDEX, schema.EDGE_PART_ID):
            if edge_part == _PART_ID[part]:
                cv2.line(own, tuple(map(int, joints[a])), tuple(map(int, joints[b])),
                         _PART_ID[part], thickness)
    head = (round(centre[0] + scale * _HEAD_CENTRE[0]), round(centre[1] + scale * _HEAD_CENTRE[1]))
    cv2.circle(own, head, max(1, round(scale * _HEAD_RADIUS)), _PART_ID["head"], -1)
    painted = own > 0
    part_map[painted] = own[painted]
    instance_map[painted] = instance
    return joints.astype(np.float32)


def _render_image(part_map: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A textured RGB rendering of the part map, so JPEGs look like a scene, not labels."""
    height, width = part_map.shape
    background = np.stack(np.meshgrid(np.linspace(60, 180, width), np.linspace(90, 150, height)),
                          axis=-1).mean(axis=-1)
    rgb = np.repeat(background[..., None], 3, axis=-1)
    colours = schema.PART_COLOURS.astype(np.float64) * 0.8 + 40
    person = (part_map > 0) & (part_map != schema.IGNORE_LABEL)
    rgb[person] = colours[part_map[person]]
    rgb += rng.normal(0, 6, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _keypoints(joints: np.ndarray, instance: int, instance_map: np.ndarray,
               unlabelled: tuple[str, ...], pose_annotated: bool) -> np.ndarray:
    height, width = instance_map.shape
    x, y = joints[:, 0].astype(int), joints[:, 1].astype(int)
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    owner = np.where(inside, instance_map[np.clip(y, 0, height - 1), np.clip(x, 0, width - 1)], 0)
    visibility = np.where(owner == instance, 2, 1) * inside
    visibility[[schema.name2joint[n].index for n in unlabelled]] = 0
    if not pose_annotated:
        visibility[:] = 0
    keypoints = np.concatenate([joints, visibility[:, None]], axis=1).astype(np.float32)
    keypoints[visibility == 0, :2] = 0
    return keypoints


def write_canonical_dataset(root: str | os.PathLike, *, symlink_images: bool = False) -> dict:
    """Write the dataset described in the module docstring under ``root``.

    ``symlink_images`` writes the JPEGs to ``root/jpeg_source`` and makes ``images/<id>.jpg``
    relative symbolic links to them (what ``ppp prepare`` does without --copy-images).

    Returns ``{"root", "splits": {split: [voc_id, ...]}, "annotation_files": {split: Path},
    "images": {voc_id: {"split", "image_id", "width", "height", "pose_annotated", "image"
    (RGB before JPEG compression), "part_map", "instance_map", "keypoints" (G,14,3),
    "boxes" (G,4) COCO xywh, "masks" (G,H,W) bool, "instances", "annotation_ids"}}}``.
    """
    root = Path(root)
    canonical = layout.CanonicalLayout(root)
    rng = np.random.default_rng(0)
    coco = {split: {"images": [], "annotations": [], "categories": [schema.coco_category()],
                    "part_categories": schema.part_categories()} for split in layout.SPLITS}
    written: dict = {"root": root, "splits": {s: [] for s in layout.SPLITS},
                     "annotation_files": {}, "images": {}}
    next_annotation_id = 1
    for voc_id, split, width, height, pose_annotated, people in _IMAGES:
        part_map = np.zeros((height, width), dtype=np.uint8)
        instance_map = np.zeros((height, width), dtype=np.uint8)
        joints = [_paint_person(part_map, instance_map, k + 1, (cx, cy), scale)
                  for k, (cx, cy, scale, _) in enumerate(people)]
        if voc_id in _IGNORE_PATCH:
            part_map[_IGNORE_PATCH[voc_id]] = schema.IGNORE_LABEL
        image = _render_image(part_map, rng)
        keypoints = np.stack([_keypoints(j, k + 1, instance_map, people[k][3], pose_annotated)
                              for k, j in enumerate(joints)]) if people else np.zeros((0, 14, 3),
                                                                                     np.float32)
        masks = np.stack([instance_map == k + 1 for k in range(len(people))]) if people else \
            np.zeros((0, height, width), bool)
        rles = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]
        boxes = np.array([mask_utils.toBbox(r) for r in rles], dtype=np.float32).reshape(-1, 4)

        jpeg = canonical.image(voc_id)
        if symlink_images:
            source = root / "jpeg_source" / f"{voc_id}.jpg"
            atomic.save_image(source, Image.fromarray(image), quality=95)
            jpeg.parent.mkdir(parents=True, exist_ok=True)
            jpeg.symlink_to(os.path.relpath(source, jpeg.parent))
        else:
            atomic.save_image(jpeg, Image.fromarray(image), quality=95)
        parts_png = Image.fromarray(part_map, mode="P")
        parts_png.putpalette(schema.voc_palette())
        atomic.save_image(canonical.parts(voc_id), parts_png)
        atomic.save_image(canonical.instances(voc_id), Image.fromarray(instance_map, mode="L"))

        image_id = layout.image_id(voc_id)
        entry = {"id": image_id, "file_name": jpeg.name, "width": width, "height": height,
                 "voc_id": voc_id}
        if not pose_annotated:
            entry["pose_annotated"] = False
        coco[split]["images"].append(entry)
        annotation_ids = list(range(next_annotation_id, next_annotation_id + len(people)))
        next_annotation_id += len(people)
        for k, (rle, box, kp) in enumerate(zip(rles, boxes, keypoints)):
            coco[split]["annotations"].append({
                "id": annotation_ids[k], "image_id": image_id, "category_id": 1,
                "bbox": [float(v) for v in box], "area": int(mask_utils.area(rle)),
                "iscrowd": 0,
                "segmentation": {"size": [height, width], "counts": rle["counts"].decode("ascii")},
                "keypoints": [float(v) for v in kp.ravel()],
                "num_keypoints": int((kp[:, 2] > 0).sum()), "instance": k + 1,
            })
        written["splits"][split].append(voc_id)
        written["images"][voc_id] = {
            "split": split, "image_id": image_id, "width": width, "height": height,
            "pose_annotated": pose_annotated, "image": image, "part_map": part_map,
            "instance_map": instance_map, "keypoints": keypoints, "boxes": boxes,
            "masks": masks, "instances": list(range(1, len(people) + 1)),
            "annotation_ids": annotation_ids,
        }
    for split in layout.SPLITS:
        path = canonical.annotations(split)
        atomic.write_json(path, coco[split])
        written["annotation_files"][split] = path
    return written


def write_pose_split(root: str | os.PathLike, gts: list[np.ndarray], split: str = "val",
                     size: tuple[int, int] = (200, 200)) -> list[int]:
    """A canonical split whose GT poses are ``gts`` (per image ``(G, 14, 3)``, COCO
    visibility, any float coordinates), for pose scoring: part and instance maps are blank
    (the ground-truth fingerprint reads them), and each person's mask (needed by the
    format) is a 2x2 square at the image's corner.
    Returns the image ids in order; the VOC ids are ``2008_000001``, ``2008_000002``, ...
    """
    canonical = layout.CanonicalLayout(Path(root))
    width, height = size
    coco = {"images": [], "annotations": [], "categories": [schema.coco_category()],
            "part_categories": schema.part_categories()}
    for i, poses in enumerate(gts):
        voc_id = f"2008_{i + 1:06d}"
        image_id = layout.image_id(voc_id)
        coco["images"].append({"id": image_id, "file_name": f"{voc_id}.jpg", "width": width,
                               "height": height, "voc_id": voc_id})
        blank = Image.fromarray(np.zeros((height, width), np.uint8), mode="L")
        atomic.save_image(canonical.parts(voc_id), blank)
        atomic.save_image(canonical.instances(voc_id), blank)
        for k, pose in enumerate(np.asarray(poses, dtype=np.float64).reshape(-1, 14, 3)):
            mask = np.zeros((height, width), np.uint8)
            mask[:2, :2] = 1
            rle = mask_utils.encode(np.asfortranarray(mask))
            kp = pose.copy()
            kp[kp[:, 2] == 0, :2] = 0
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1, "image_id": image_id, "category_id": 1,
                "bbox": [0.0, 0.0, 2.0, 2.0], "area": 4, "iscrowd": 0,
                "segmentation": {"size": [height, width], "counts": rle["counts"].decode("ascii")},
                "keypoints": [float(v) for v in kp.ravel()],
                "num_keypoints": int((kp[:, 2] > 0).sum()), "instance": k + 1})
    atomic.write_json(canonical.annotations(split), coco)
    return [im["id"] for im in coco["images"]]
