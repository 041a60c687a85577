"""COCO Keypoints 1.0 as CVAT imports and exports it: export a split's poses, import them back.

The export is a dataset folder in the layout of CVAT's own COCO Keypoints export, which
datumaro reads too::

    OUT/annotations/person_keypoints_<split>.json
    OUT/images/<split>/<voc id>.jpg        (with ``--images link`` or ``copy``)

Zip ``OUT`` (or upload the JSON alone) into a CVAT task as "COCO Keypoints 1.0": each
person becomes a skeleton of 14 points. One category, ``person``, lists the joint names
and the skeleton edges (1-based, as COCO does). Each person carries its mask box, its
mask area, and its labelled joints with COCO visibility; no segmentation (CVAT would turn
it into masks), and no pending proposals (COCO has no attribute per point: review
proposals through the CVAT XML or Label Studio exports).

Coordinates are CVAT's continuous image coordinates (pixel centre + 0.5), as CVAT writes
them in its COCO exports, so a file can go CVAT -> ``ppp label import`` and a person looks
the same in CVAT whichever of our exports it came from. This is half a pixel off the
canonical annotation file, which keeps COCO's pixel-index convention.

On import, persons are matched to the split's persons by box IoU (CVAT renumbers
annotation ids), unless an annotation carries our id as the attribute ``annotation_id``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pascal_person_pose import atomic, schema
from pascal_person_pose.errors import InputError
from pascal_person_pose.label.interchange import (PIXEL_CENTRE, ImportedImage, ImportedPerson,
                                                  export_images, joint_index, load_json)

PERSON = "person"
ID_ATTRIBUTE = "annotation_id"


def annotation_file(out: str | os.PathLike, split: str) -> Path:
    """Where the export into dataset folder ``out`` writes its JSON."""
    return Path(out) / "annotations" / f"person_keypoints_{split}.json"


def images_folder(out: str | os.PathLike, split: str) -> Path:
    """Where datumaro (and CVAT's dataset import) look for the images of the export."""
    return Path(out) / "images" / split


def coco_document(root: str | os.PathLike, split: str) -> dict:
    images, annotations = [], []
    for image in export_images(root, split):
        images.append({"id": image.image_id, "file_name": image.file_name,
                       "width": image.width, "height": image.height})
        for person in image.persons:
            keypoints = np.zeros((schema.NUM_JOINTS, 3))
            for j, _, x, y, v, proposed in person.joints():
                if not proposed:
                    keypoints[j] = (x, y, v)
            annotations.append({
                "id": person.annotation_id, "image_id": image.image_id, "category_id": 1,
                "keypoints": [int(v) if k % 3 == 2 else v
                              for k, v in enumerate(keypoints.ravel().tolist())],
                "num_keypoints": int((keypoints[:, 2] > 0).sum()),
                "bbox": person.bbox.tolist(), "area": person.area, "iscrowd": 0,
                "segmentation": []})
    category = {"id": 1, "name": PERSON, "supercategory": "",
                "keypoints": list(schema.JOINT_NAMES),
                "skeleton": [[a + 1, b + 1] for a, b in schema.SKELETON_INDEX]}
    return {"info": {"description": f"pascal-person-pose {split}, poses for CVAT"},
            "licenses": [], "categories": [category], "images": images,
            "annotations": annotations}


def export_coco(root: str | os.PathLike, split: str, out: str | os.PathLike) -> int:
    """Write the split into dataset folder ``out``; returns the number of persons written."""
    document = coco_document(root, split)
    atomic.write_json(annotation_file(out, split), document)
    return len(document["annotations"])


def _list(doc: dict, key: str, source: Path) -> list:
    value = doc.get(key)
    if not isinstance(value, list):
        raise InputError(source, "missing or not a list", field=key)
    return value


def _joint_order(categories: list, source: Path) -> dict[int, list[int]]:
    """Category id -> our joint index of each of its keypoint names."""
    orders = {}
    for k, category in enumerate(categories):
        if not isinstance(category, dict) or not isinstance(category.get("keypoints"), list):
            continue
        where = f"category {category.get('id', f'#{k}')}"
        orders[category.get("id")] = [joint_index(str(name), source, where, "keypoints")
                                      for name in category["keypoints"]]
    if not orders:
        raise InputError(source, "no category lists keypoints (not COCO Keypoints)",
                         field="categories")
    return orders


def coco_images(doc, source: Path) -> list[ImportedImage]:
    """The persons of a COCO Keypoints document read from ``source``."""
    if not isinstance(doc, dict):
        raise InputError(source, "must be a COCO object with images, annotations, categories")
    orders = _joint_order(_list(doc, "categories", source), source)
    images: dict = {}
    for k, entry in enumerate(_list(doc, "images", source)):
        if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str):
            raise InputError(source, "missing or not a string", record=f"images[{k}]",
                             field="file_name")
        images[entry.get("id")] = ImportedImage(Path(entry["file_name"]).stem,
                                                f"image {entry['file_name']}")
    for k, ann in enumerate(_list(doc, "annotations", source)):
        where = f"annotation {ann.get('id', f'#{k}')}" if isinstance(ann, dict) \
            else f"annotations[{k}]"
        if not isinstance(ann, dict) or ann.get("category_id") not in orders:
            continue  # not a pose (a box, a mask of another category)
        if ann.get("image_id") not in images:
            raise InputError(source, "names no image of the file", record=where,
                             field="image_id")
        image = images[ann["image_id"]]
        order = orders[ann["category_id"]]
        values = ann.get("keypoints")
        if not isinstance(values, list) or len(values) != 3 * len(order) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise InputError(source, f"must be {3 * len(order)} numbers [x, y, v] * "
                                     f"{len(order)}", record=where, field="keypoints")
        keypoints = np.zeros((schema.NUM_JOINTS, 3))
        for j, (x, y, v) in zip(order, np.reshape(values, (-1, 3))):
            keypoints[j] = (x - PIXEL_CENTRE, y - PIXEL_CENTRE, v) if v > 0 else 0
        person = ImportedPerson(f"{image.where}, {where}", _our_id(ann, source, where),
                                keypoints, proposals=None)  # COCO cannot hold proposals
        bbox = ann.get("bbox")
        if isinstance(bbox, list) and len(bbox) == 4 and all(
                isinstance(v, (int, float)) for v in bbox):
            x, y, w, h = bbox
            person.box = np.round([x, y, x + w - 1, y + h - 1])
        image.persons.append(person)
    return list(images.values())


def _our_id(ann: dict, source: Path, where: str) -> int | None:
    attributes = ann.get("attributes")
    value = attributes.get(ID_ATTRIBUTE) if isinstance(attributes, dict) else None
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(source, f"must be an integer, got {value!r}", record=where,
                         field=f"attributes.{ID_ATTRIBUTE}") from None


def read_coco(path: str | os.PathLike) -> list[ImportedImage]:
    """The persons of a COCO Keypoints JSON file (ours, or CVAT's export)."""
    return coco_images(load_json(Path(path)), Path(path))
