"""CVAT for images 1.1 XML: export a split's poses, import them back.

Each person is a ``<skeleton label="person">`` whose 14 ``<points>`` elements are labelled
with the joint names of the schema (sub-labels of the skeleton label in ``<meta>``), and
whose ``annotation_id`` attribute names the canonical annotation. Visibility maps onto
CVAT's flags: visible (2) -> ``outside="0" occluded="0"``, occluded (1) -> ``occluded="1"``,
not labelled (0) -> ``outside="1"`` (at 0,0). Points are in CVAT's continuous image
coordinates (pixel centre + 0.5) and written with full precision, so a round trip gives
back the same float32 joints.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from pascal_person_pose import atomic, schema
from pascal_person_pose.errors import InputError
from pascal_person_pose.label.interchange import (PIXEL_CENTRE, ImportedImage, ImportedPerson,
                                                  export_images, joint_index)
from pascal_person_pose.label.store import float32_list

SKELETON_LABEL = "person"
ID_ATTRIBUTE = "annotation_id"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = text
    return element


def _meta(parent: ET.Element, split: str, size: int) -> None:
    task = _sub(_sub(parent, "meta"), "task")
    _sub(task, "name", f"pascal-person-pose {split}")
    _sub(task, "size", str(size))
    _sub(task, "mode", "annotation")
    labels = _sub(task, "labels")
    label = _sub(labels, "label")
    _sub(label, "name", SKELETON_LABEL)
    _sub(label, "type", "skeleton")
    attribute = _sub(_sub(label, "attributes"), "attribute")
    _sub(attribute, "name", ID_ATTRIBUTE)
    _sub(attribute, "mutable", "False")
    _sub(attribute, "input_type", "text")
    _sub(attribute, "default_value", "")
    _sub(attribute, "values", "")
    for name in schema.JOINT_NAMES:
        point = _sub(labels, "label")
        _sub(point, "name", name)
        _sub(point, "type", "points")
        _sub(point, "attributes")
        _sub(point, "parent", SKELETON_LABEL)


def export_cvat(root: str | os.PathLike, split: str, out: str | os.PathLike) -> int:
    """Write the split as CVAT for images 1.1 XML; returns the number of persons written."""
    images = list(export_images(root, split))
    document = ET.Element("annotations")
    _sub(document, "version", "1.1")
    _meta(document, split, len(images))
    persons = 0
    for k, image in enumerate(images):
        element = _sub(document, "image", id=str(k), name=image.file_name,
                       width=str(image.width), height=str(image.height))
        for person in image.persons:
            skeleton = _sub(element, "skeleton", label=SKELETON_LABEL, source="manual",
                            z_order="0")
            joints = np.reshape(float32_list(person.keypoints), (schema.NUM_JOINTS, 3)).tolist()
            for name, (x, y, v) in zip(schema.JOINT_NAMES, joints):
                where = f"{x + PIXEL_CENTRE!r},{y + PIXEL_CENTRE!r}" if v > 0 else "0.0,0.0"
                _sub(skeleton, "points", label=name, source="manual", outside=str(int(v == 0)),
                     occluded=str(int(v == 1)), points=where)
            _sub(skeleton, "attribute", str(person.annotation_id), name=ID_ATTRIBUTE)
            persons += 1
    ET.indent(document)
    atomic.write_bytes(out, ET.tostring(document, encoding="utf-8", xml_declaration=True) + b"\n")
    return persons


def _flag(element: ET.Element, name: str, source: Path, where: str) -> bool:
    value = element.get(name, "0")
    if value not in ("0", "1"):
        raise InputError(source, f"must be 0 or 1, got {value!r}", record=where, field=name)
    return value == "1"


def _person(skeleton: ET.Element, source: Path, where: str) -> ImportedPerson:
    keypoints = np.zeros((schema.NUM_JOINTS, 3), np.float64)
    seen: set[int] = set()
    for points in skeleton.iter("points"):
        label = points.get("label", "")
        at = f"{where}, points {label or '(no label)'}"
        j = joint_index(label, source, at, "label")
        if j in seen:
            raise InputError(source, "joint given twice in one skeleton", record=at, field="label")
        seen.add(j)
        if _flag(points, "outside", source, at):
            continue
        try:
            x, y = (float(v) for v in points.get("points", "").split(","))
        except ValueError:
            raise InputError(source, f"must be 'x,y', got {points.get('points')!r}", record=at,
                             field="points") from None
        occluded = _flag(points, "occluded", source, at)
        keypoints[j] = (x - PIXEL_CENTRE, y - PIXEL_CENTRE, 1 if occluded else 2)
    annotation_id = None
    for attribute in skeleton.findall("attribute"):
        if attribute.get("name") == ID_ATTRIBUTE and (attribute.text or "").strip():
            try:
                annotation_id = int(attribute.text)
            except ValueError:
                raise InputError(source, f"must be an integer, got {attribute.text!r}",
                                 record=where, field=ID_ATTRIBUTE) from None
    return ImportedPerson(where, annotation_id, keypoints)


def read_cvat(path: str | os.PathLike) -> list[ImportedImage]:
    """The persons of a CVAT for images 1.1 XML file (skeletons labelled ``person``)."""
    source = Path(path)
    try:
        document = ET.parse(source).getroot()
    except ET.ParseError as e:
        raise InputError(source, f"not well-formed XML ({e})") from None
    except OSError as e:
        raise InputError(source, f"cannot read ({e.strerror})") from None
    if document.tag != "annotations":
        raise InputError(source, f"root element is <{document.tag}>, expected <annotations> "
                                 "(CVAT for images 1.1)")
    images = []
    for k, element in enumerate(document.findall("image")):
        name = element.get("name")
        if not name:
            raise InputError(source, "missing", record=f"image #{k}", field="name")
        where = f"image {name}"
        image = ImportedImage(Path(name).stem, where)
        skeletons = [s for s in element.findall("skeleton") if s.get("label") == SKELETON_LABEL]
        for s, skeleton in enumerate(skeletons):
            image.persons.append(_person(skeleton, source, f"{where}, skeleton {s + 1}"))
        images.append(image)
    return images
