"""What the CVAT and Label Studio interchange modules share: the persons to export, and
applying imported persons to the canonical annotations.

COCO keypoints JSON is the canonical format already; these tools speak their own.
Coordinates: ours are 0-based pixel centres; both tools place points in continuous image
coordinates (the image spans ``0 .. width``), so a pixel centre ``x`` is ``x + 0.5``
there. Each exported person carries its annotation id, so an import finds its person
again; a person drawn in the tool (no id) is matched to the split's persons by the IoU of
its joints' box with the person's mask box (Hungarian, as ``prepare`` matches pose files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from pascal_person_pose import schema
from pascal_person_pose.errors import InputError
from pascal_person_pose.label.store import (AnnotationStore, check_keypoints, person_arrays,
                                            set_person)

PIXEL_CENTRE = 0.5  # our pixel-centre coordinate + this = the tools' continuous coordinate


@dataclass
class ExportPerson:
    annotation_id: int
    keypoints: np.ndarray  # (14, 3) COCO visibility
    bbox: np.ndarray  # (4,) COCO [x, y, w, h] of the person's mask (continuous coordinates)


@dataclass
class ExportImage:
    voc_id: str
    image_id: int
    file_name: str
    width: int
    height: int
    persons: list[ExportPerson]


def export_images(root: str | os.PathLike, split: str) -> Iterator[ExportImage]:
    """Every image of a split with its persons' current labels (pending proposals are not
    labels and are not exported)."""
    from pascal_person_pose.dataset import Dataset

    dataset = Dataset(root, split)
    for entry in dataset.images:
        persons = [ExportPerson(record["id"], person_arrays(record)[0],
                                np.asarray(record["bbox"], np.float64))
                   for record in dataset.annotations(entry["id"])]
        yield ExportImage(entry["voc_id"], entry["id"], entry["file_name"], entry["width"],
                          entry["height"], persons)


@dataclass
class ImportedPerson:
    where: str  # the element it came from, for error messages
    annotation_id: int | None
    keypoints: np.ndarray  # (14, 3) in our coordinates, COCO visibility
    box: np.ndarray | None = None  # inclusive pixel box (x1, y1, x2, y2) when the file has one


@dataclass
class ImportedImage:
    voc_id: str
    where: str
    persons: list[ImportedPerson] = field(default_factory=list)


@dataclass
class ImportSummary:
    images: int
    persons: int  # persons whose joints were replaced
    unmatched: list[str]  # elements that matched no person of the split
    revision: int


def joints_box(keypoints: np.ndarray) -> np.ndarray:
    """Inclusive pixel box (x1, y1, x2, y2) of the labelled joints; NaN when none is."""
    labelled = keypoints[:, 2] > 0
    if not labelled.any():
        return np.full(4, np.nan)
    xy = np.round(keypoints[labelled, :2])
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)])


def apply_import(root: str | os.PathLike, split: str, images: list[ImportedImage],
                 source: str | os.PathLike) -> ImportSummary:
    """Replace the joints of the imported persons in one atomic save of the split.

    Persons of the split absent from the file are left as they are; an element naming an
    unknown image or annotation, or holding joints outside its image, raises
    ``InputError`` naming the element (nothing is written then).
    """
    from pascal_person_pose.dataset import Dataset
    from pascal_person_pose.prepare import match_poses

    source = Path(source)
    dataset = Dataset(root, split)
    updates: dict[int, np.ndarray] = {}
    unmatched: list[str] = []
    for image in images:
        try:
            index = dataset.index_of(image.voc_id)
        except InputError:
            raise InputError(source, f"image {image.voc_id} is not in the {split} split",
                             record=image.where) from None
        entry = dataset.images[index]
        records = dataset.annotations(entry["id"])
        ids = [r["id"] for r in records]
        loose = []
        for person in image.persons:
            kp = check_keypoints(person.keypoints, entry["width"], entry["height"],
                                 person.where, source, field="points")
            if person.annotation_id is None:
                loose.append((person, kp))
            elif person.annotation_id not in ids:
                raise InputError(source, f"annotation {person.annotation_id} is not a person of "
                                         f"image {image.voc_id}", record=person.where,
                                 field="annotation_id")
            elif person.annotation_id in updates:
                raise InputError(source, f"annotation {person.annotation_id} appears twice",
                                 record=person.where, field="annotation_id")
            else:
                updates[person.annotation_id] = kp
        free = [r for r in records if r["id"] not in updates]
        if loose and free:
            boxes = np.array([joints_box(kp) if p.box is None else p.box for p, kp in loose])
            person_boxes = np.array([[x, y, x + w - 1, y + h - 1]
                                     for x, y, w, h in (r["bbox"] for r in free)])
            rows, cols = match_poses(boxes, person_boxes)
            for row, col in zip(rows, cols):
                updates[free[col]["id"]] = loose[row][1]
            unmatched += [p.where for k, (p, _) in enumerate(loose) if k not in set(rows)]
        else:
            unmatched += [p.where for p, _ in loose]
    store = AnnotationStore(root, split)
    with store.edit() as doc:
        for ann in doc["annotations"]:
            if ann["id"] in updates:
                set_person(ann, updates[ann["id"]], person_arrays(ann)[1])
    return ImportSummary(images=len(images), persons=len(updates), unmatched=unmatched,
                         revision=int(doc["revision"]))


def joint_index(name: str, source: Path, where: str, field_name: str) -> int:
    """The schema index of a joint name read from a file, or an error naming the element."""
    try:
        return schema.JOINT_NAMES.index(name)
    except ValueError:
        raise InputError(source, f"unknown joint {name!r} (expected one of "
                                 f"{', '.join(schema.JOINT_NAMES)})", record=where,
                         field=field_name) from None
