"""What the interchange modules (CVAT XML, COCO Keypoints for CVAT, Label Studio JSON) share:
the persons to export, the images beside an export, reading any of the formats, and
applying imported persons to the canonical annotations.

Coordinates: ours are 0-based pixel centres (COCO's keypoint convention); CVAT and Label
Studio place points in continuous image coordinates (the image spans ``0 .. width``), so
a pixel centre ``x`` is ``x + 0.5`` there. Each exported person carries its annotation
id, so an import finds its person again; a person drawn in the tool (no id) is matched to
the split's persons by the IoU of its box (or of its joints' box) with the person's mask
box (Hungarian, as ``prepare`` matches pose files).

Pending proposals (``proposed_keypoints``) travel as such: a proposed joint is exported
as a point marked ``proposed`` (a label attribute in CVAT, a per-region choice in Label
Studio), and an import brings every point still marked so back as a pending proposal, not
as a label. Unmarking it in the tool confirms it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from pascal_person_pose import safe_json, schema
from pascal_person_pose.errors import InputError
from pascal_person_pose.label.store import (AnnotationStore, check_keypoints, float32_list,
                                            person_arrays, set_person)

PIXEL_CENTRE = 0.5  # our pixel-centre coordinate + this = the tools' continuous coordinate
PROPOSED = "proposed"  # the attribute (CVAT) / choice (Label Studio) of a pending proposal
IMAGE_MODES = ("link", "copy")
FORMATS = ("cvat", "coco", "labelstudio")


@dataclass
class ExportPerson:
    annotation_id: int
    keypoints: np.ndarray  # (14, 3) COCO visibility
    proposals: np.ndarray  # (14, 3) pending proposals, v = 0 where none
    bbox: np.ndarray  # (4,) COCO [x, y, w, h] of the person's mask (continuous coordinates)
    area: float  # of the mask, in pixels

    def joints(self) -> Iterator[tuple[int, str, float, float, int, bool]]:
        """``(index, name, x, y, v, proposed)`` of each joint that has a label or a pending
        proposal, in the tools' continuous coordinates (from the shortest decimals of the
        float32 values, as the canonical file writes them: a round trip is exact)."""
        labels, pending = (np.reshape(float32_list(values), (schema.NUM_JOINTS, 3))
                           for values in (self.keypoints, self.proposals))
        for j, name in enumerate(schema.JOINT_NAMES):
            proposed = labels[j, 2] == 0 and pending[j, 2] > 0
            x, y, v = pending[j] if proposed else labels[j]
            if v > 0:
                yield j, name, x + PIXEL_CENTRE, y + PIXEL_CENTRE, int(v), bool(proposed)


@dataclass
class ExportImage:
    voc_id: str
    image_id: int
    file_name: str
    width: int
    height: int
    persons: list[ExportPerson]


def export_images(root: str | os.PathLike, split: str) -> Iterator[ExportImage]:
    """Every image of a split with its persons' current labels and pending proposals."""
    from pascal_person_pose.dataset import Dataset

    dataset = Dataset(root, split)
    for entry in dataset.images:
        persons = [ExportPerson(record["id"], *person_arrays(record),
                                np.asarray(record["bbox"], np.float64), float(record["area"]))
                   for record in dataset.annotations(entry["id"])]
        yield ExportImage(entry["voc_id"], entry["id"], entry["file_name"], entry["width"],
                          entry["height"], persons)


def place_images(root: str | os.PathLike, split: str, folder: str | os.PathLike,
                 mode: str) -> int:
    """Put the split's images into ``folder`` under their file names (``mode``: ``link``,
    symbolic links to the canonical files; ``copy``); returns how many. An existing file
    of the same name is replaced."""
    from pascal_person_pose.dataset import Dataset

    dataset = Dataset(root, split)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for entry in dataset.images:
        source = Path(os.path.realpath(dataset.layout.image(entry["voc_id"])))
        target = folder / entry["file_name"]
        if target.is_symlink() or target.exists():
            target.unlink()
        if mode == "link":
            target.symlink_to(source)
        else:
            shutil.copyfile(source, target)
    return len(dataset.images)


@dataclass
class ImportedPerson:
    where: str  # the element it came from, for error messages
    annotation_id: int | None
    keypoints: np.ndarray  # (14, 3) in our coordinates, COCO visibility
    box: np.ndarray | None = None  # inclusive pixel box (x1, y1, x2, y2) when the file has one
    # (14, 3) pending proposals in our coordinates; None: the format cannot hold them, so
    # those on disk stay
    proposals: np.ndarray | None = field(
        default_factory=lambda: np.zeros((schema.NUM_JOINTS, 3)))


@dataclass
class ImportedImage:
    voc_id: str
    where: str
    persons: list[ImportedPerson] = field(default_factory=list)


@dataclass
class ImportSummary:
    images: int
    persons: int  # persons of the split the file's persons were matched to
    changed: int  # of those, persons whose joints or proposals changed on disk
    unmatched: list[str]  # elements that matched no person of the split
    revision: int  # the file's revision after the import (unchanged when nothing changed)


def joints_box(keypoints: np.ndarray) -> np.ndarray:
    """Inclusive pixel box (x1, y1, x2, y2) of the labelled joints; NaN when none is."""
    labelled = keypoints[:, 2] > 0
    if not labelled.any():
        return np.full(4, np.nan)
    xy = np.round(keypoints[labelled, :2])
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)])


def apply_import(root: str | os.PathLike, split: str, images: list[ImportedImage],
                 source: str | os.PathLike) -> ImportSummary:
    """Replace the joints and pending proposals of the imported persons in one atomic save.

    Persons of the split absent from the file are left as they are; an element naming an
    unknown image or annotation, or holding joints outside its image, raises
    ``InputError`` naming the element (nothing is written then). When nothing changes,
    nothing is written and no revision moves.
    """
    from pascal_person_pose.dataset import Dataset
    from pascal_person_pose.prepare import match_poses

    source = Path(source)
    dataset = Dataset(root, split)
    updates: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
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
            checked = tuple(None if values is None else check_keypoints(
                values, entry["width"], entry["height"], person.where, source, field="points")
                for values in (person.keypoints, person.proposals))
            if person.annotation_id is None:
                loose.append((person, checked))
            elif person.annotation_id not in ids:
                raise InputError(source, f"annotation {person.annotation_id} is not a person of "
                                         f"image {image.voc_id}", record=person.where,
                                 field="annotation_id")
            elif person.annotation_id in updates:
                raise InputError(source, f"annotation {person.annotation_id} appears twice",
                                 record=person.where, field="annotation_id")
            else:
                updates[person.annotation_id] = checked
        free = [r for r in records if r["id"] not in updates]
        if loose and free:
            boxes = np.array([joints_box(kp) if p.box is None else p.box
                              for p, (kp, _) in loose])
            person_boxes = np.array([[x, y, x + w - 1, y + h - 1]
                                     for x, y, w, h in (r["bbox"] for r in free)])
            rows, cols = match_poses(boxes, person_boxes)
            for row, col in zip(rows, cols):
                updates[free[col]["id"]] = loose[row][1]
            unmatched += [p.where for k, (p, _) in enumerate(loose) if k not in set(rows)]
        else:
            unmatched += [p.where for p, _ in loose]
    store = AnnotationStore(root, split)
    changed = 0
    with store.edit() as doc:
        for ann in doc["annotations"]:
            if ann["id"] in updates:
                before = dict(ann)
                keypoints, proposals = updates[ann["id"]]
                set_person(ann, keypoints,
                           person_arrays(ann)[1] if proposals is None else proposals)
                changed += ann != before
    return ImportSummary(images=len(images), persons=len(updates), changed=changed,
                         unmatched=unmatched, revision=int(doc["revision"]))


def joint_index(name: str, source: Path, where: str, field_name: str) -> int:
    """The schema index of a joint name read from a file, or an error naming the element."""
    try:
        return schema.JOINT_NAMES.index(name)
    except ValueError:
        raise InputError(source, f"unknown joint {name!r} (expected one of "
                                 f"{', '.join(schema.JOINT_NAMES)})", record=where,
                         field=field_name) from None


def load_json(path: Path):
    """A JSON file from a tool, perhaps edited by hand: one-line errors for anything broken
    or hostile (nesting, huge numbers, NaN, duplicate keys)."""
    return safe_json.load(path)


def read_any(path: str | os.PathLike, fmt: str | None = None) -> list[ImportedImage]:
    """The persons of an interchange file of format ``fmt``; None: ``.xml`` is CVAT, a
    ``.json`` holding a COCO object (``images``, ``annotations``) is COCO, any other
    ``.json`` (a list of tasks, or one task) is Label Studio."""
    from pascal_person_pose.label.interchange_coco import coco_images
    from pascal_person_pose.label.interchange_cvat import read_cvat
    from pascal_person_pose.label.interchange_labelstudio import labelstudio_images

    path = Path(path)
    suffix = path.suffix.lower()
    if fmt is None and suffix not in (".xml", ".json"):
        raise InputError(path, "cannot tell the format from the file name: pass --format")
    if fmt == "cvat" or (fmt is None and suffix == ".xml"):
        return read_cvat(path)
    doc = load_json(path)
    if fmt == "coco" or (fmt is None and isinstance(doc, dict) and "data" not in doc
                         and "annotations" in doc and "images" in doc):
        return coco_images(doc, path)
    return labelstudio_images(doc, path)
