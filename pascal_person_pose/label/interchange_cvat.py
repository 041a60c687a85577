"""CVAT for images 1.1 XML: export a split's poses, import them back.

Two layouts of a person (``shapes``), both read back:

- ``skeleton`` (CVAT's own, the default): a ``<skeleton label="person">`` whose 14
  ``<points>`` elements are labelled with the joint names (sub-labels of the skeleton
  label in ``<meta>``); its ``annotation_id`` attribute names the canonical annotation.
  CVAT imports and exports it; datumaro (and the tools built on it) do not read skeletons.
- ``points``: flat shapes that datumaro's CVAT importer reads: per person a ``<box
  label="person">`` (the mask box, with the ``annotation_id`` attribute) and one
  ``<points>`` shape per joint labelled with the joint name, all of one person sharing a
  ``group_id``. Unlabelled joints have no shape.

Visibility maps onto CVAT's flags: visible (2) -> ``occluded="0"``, occluded (1) ->
``occluded="1"``, not labelled (0) -> ``outside="1"`` at 0,0 (skeleton) or no shape
(points). Every joint point carries the checkbox attribute ``proposed``: true for a
pending proposal, which an import brings back as a proposal, not a label (untick it in
CVAT to confirm the joint). Points are in CVAT's continuous image coordinates (pixel
centre + 0.5) and written with full precision, so a round trip gives back the same
float32 joints.

Datumaro, and CVAT's "import dataset", look for the images in an ``images/`` folder beside
the XML: ``ppp label export --images link`` (or ``copy``) puts them there.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import numpy as np

from pascal_person_pose import atomic, safe_json, schema
from pascal_person_pose.errors import InputError
from pascal_person_pose.label.interchange import (PIXEL_CENTRE, PROPOSED, ExportImage,
                                                  ImportedImage, ImportedPerson, export_images,
                                                  joint_index)

PERSON = "person"
ID_ATTRIBUTE = "annotation_id"
SHAPES = ("skeleton", "points")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = text
    return element


def _attribute_spec(parent: ET.Element, name: str, mutable: bool, input_type: str,
                    default: str, values: str) -> None:
    attribute = _sub(parent, "attribute")
    _sub(attribute, "name", name)
    _sub(attribute, "mutable", str(mutable))
    _sub(attribute, "input_type", input_type)
    _sub(attribute, "default_value", default)
    _sub(attribute, "values", values)


def _meta(parent: ET.Element, split: str, size: int, shapes: str) -> None:
    task = _sub(_sub(parent, "meta"), "task")
    _sub(task, "name", f"pascal-person-pose {split}")
    _sub(task, "size", str(size))
    _sub(task, "mode", "annotation")
    labels = _sub(task, "labels")
    label = _sub(labels, "label")
    _sub(label, "name", PERSON)
    _sub(label, "type", "skeleton" if shapes == "skeleton" else "rectangle")
    _attribute_spec(_sub(label, "attributes"), ID_ATTRIBUTE, False, "text", "", "")
    for name in schema.JOINT_NAMES:
        point = _sub(labels, "label")
        _sub(point, "name", name)
        _sub(point, "type", "points")
        _attribute_spec(_sub(point, "attributes"), PROPOSED, True, "checkbox", "false",
                        "false")
        if shapes == "skeleton":
            _sub(point, "parent", PERSON)


def _number(value: float) -> str:
    return repr(float(value))


def _person_shapes(element: ET.Element, person, group: int, shapes: str) -> None:
    joints = {j: (x, y, v, proposed) for j, _, x, y, v, proposed in person.joints()}
    if shapes == "skeleton":
        parent = _sub(element, "skeleton", label=PERSON, source="manual", z_order="0")
        for j, name in enumerate(schema.JOINT_NAMES):
            x, y, v, proposed = joints.get(j, (0.0, 0.0, 0, False))
            point = _sub(parent, "points", label=name, source="manual",
                         outside=str(int(v == 0)), occluded=str(int(v == 1)),
                         points=f"{_number(x)},{_number(y)}" if v else "0.0,0.0")
            _sub(point, "attribute", str(proposed).lower(), name=PROPOSED)
        _sub(parent, "attribute", str(person.annotation_id), name=ID_ATTRIBUTE)
        return
    x, y, w, h = person.bbox.tolist()
    box = _sub(element, "box", label=PERSON, source="manual", occluded="0", xtl=_number(x),
               ytl=_number(y), xbr=_number(x + w), ybr=_number(y + h), z_order="0",
               group_id=str(group))
    _sub(box, "attribute", str(person.annotation_id), name=ID_ATTRIBUTE)
    for j, (x, y, v, proposed) in joints.items():
        point = _sub(element, "points", label=schema.JOINT_NAMES[j], source="manual",
                     occluded=str(int(v == 1)), points=f"{_number(x)},{_number(y)}",
                     z_order="0", group_id=str(group))
        _sub(point, "attribute", str(proposed).lower(), name=PROPOSED)


def cvat_document(images: list[ExportImage], split: str, shapes: str = "skeleton") -> bytes:
    """The CVAT for images 1.1 XML of these images."""
    if shapes not in SHAPES:
        raise ValueError(f"shapes must be one of {SHAPES}, not {shapes!r}")
    document = ET.Element("annotations")
    _sub(document, "version", "1.1")
    _meta(document, split, len(images), shapes)
    for k, image in enumerate(images):
        element = _sub(document, "image", id=str(k), name=image.file_name,
                       width=str(image.width), height=str(image.height))
        for group, person in enumerate(image.persons, start=1):
            _person_shapes(element, person, group, shapes)
    ET.indent(document)
    return ET.tostring(document, encoding="utf-8", xml_declaration=True) + b"\n"


def export_cvat(root: str | os.PathLike, split: str, out: str | os.PathLike,
                shapes: str = "skeleton") -> int:
    """Write the split as CVAT for images 1.1 XML; returns the number of persons written."""
    images = list(export_images(root, split))
    atomic.write_bytes(out, cvat_document(images, split, shapes))
    return sum(len(image.persons) for image in images)


# ------------------------------------------------------------------------------- reading
def _flag(element: ET.Element, name: str, source: Path, where: str) -> bool:
    value = element.get(name, "0")
    if value not in ("0", "1"):
        raise InputError(source, f"must be 0 or 1, got {value!r}", record=where, field=name)
    return value == "1"


def _attributes(element: ET.Element) -> dict[str, str]:
    return {a.get("name"): (a.text or "").strip() for a in element.findall("attribute")}


def _annotation_id(element: ET.Element, source: Path, where: str) -> int | None:
    text = _attributes(element).get(ID_ATTRIBUTE, "")
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InputError(source, f"must be an integer, got {text!r}", record=where,
                         field=ID_ATTRIBUTE) from None


def _coordinates(text: str | None, count: int, source: Path, where: str, field: str):
    try:
        values = [float(v) for v in (text or "").split(",")]
    except ValueError:
        values = []
    if len(values) != count or not np.isfinite(values).all():
        expected = "'x,y'" if count == 2 else "a number"
        raise InputError(source, f"must be {expected}, got {text!r}", record=where, field=field)
    return values


def _add_point(person: ImportedPerson, points: ET.Element, source: Path, where: str,
               seen: set[int]) -> None:
    """One ``<points>`` element of a joint into ``person`` (label or proposal)."""
    label = points.get("label", "")
    at = f"{where}, points {label or '(no label)'}"
    j = joint_index(label, source, at, "label")
    if j in seen:
        raise InputError(source, "joint given twice for one person", record=at, field="label")
    seen.add(j)
    if _flag(points, "outside", source, at):
        return
    x, y = _coordinates(points.get("points"), 2, source, at, "points")
    v = 1 if _flag(points, "occluded", source, at) else 2
    proposed = _attributes(points).get(PROPOSED, "false").lower()
    if proposed not in ("true", "false"):
        raise InputError(source, f"must be true or false, got {proposed!r}", record=at,
                         field=PROPOSED)
    target = person.proposals if proposed == "true" else person.keypoints
    target[j] = (x - PIXEL_CENTRE, y - PIXEL_CENTRE, v)


def _new_person(where: str, annotation_id: int | None) -> ImportedPerson:
    return ImportedPerson(where, annotation_id, np.zeros((schema.NUM_JOINTS, 3)))


def _skeleton_person(skeleton: ET.Element, source: Path, where: str) -> ImportedPerson:
    person = _new_person(where, _annotation_id(skeleton, source, where))
    seen: set[int] = set()
    for points in skeleton.iter("points"):
        _add_point(person, points, source, where, seen)
    return person


def _grouped_persons(element: ET.Element, source: Path, where: str) -> list[ImportedPerson]:
    """Persons of the ``points`` layout: shapes of one person share a ``group_id``."""
    groups: dict[str, list[ET.Element]] = defaultdict(list)
    for shape in element:
        if shape.tag == "points" or (shape.tag == "box" and shape.get("label") == PERSON):
            group = shape.get("group_id", "0")
            if group in ("", "0"):
                raise InputError(source, "a joint or person box outside any group: group "
                                         "the shapes of each person (CVAT: select, press G)",
                                 record=f"{where}, {shape.tag} {shape.get('label')}",
                                 field="group_id")
            groups[group].append(shape)
    persons = []
    for group, shapes in groups.items():
        at = f"{where}, group {group}"
        boxes = [s for s in shapes if s.tag == "box"]
        if len(boxes) > 1:
            raise InputError(source, "two person boxes in one group", record=at,
                             field="group_id")
        person = _new_person(at, _annotation_id(boxes[0], source, at) if boxes else None)
        if boxes:
            xtl, ytl, xbr, ybr = (_coordinates(boxes[0].get(k), 1, source, at, k)[0]
                                  for k in ("xtl", "ytl", "xbr", "ybr"))
            person.box = np.round([xtl, ytl, xbr - 1, ybr - 1])
        seen: set[int] = set()
        for points in (s for s in shapes if s.tag == "points"):
            _add_point(person, points, source, at, seen)
        persons.append(person)
    return persons


def read_cvat(path: str | os.PathLike) -> list[ImportedImage]:
    """The persons of a CVAT for images 1.1 XML file, in either layout."""
    source = Path(path)
    data = safe_json.read_bytes(source)  # a regular file only: a FIFO would block the parser
    try:
        document = ET.fromstring(data)  # expat refuses entity bombs and external entities
    except ET.ParseError as e:
        raise InputError(source, f"not well-formed XML ({e})") from None
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
        skeletons = [s for s in element.findall("skeleton") if s.get("label") == PERSON]
        image.persons = [_skeleton_person(s, source, f"{where}, skeleton {n + 1}")
                         for n, s in enumerate(skeletons)]
        image.persons += _grouped_persons(element, source, where)
        images.append(image)
    return images
