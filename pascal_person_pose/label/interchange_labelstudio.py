"""Label Studio JSON: export a split's poses as tasks, import annotated tasks back.

One task per image: ``id`` is the image id, ``data.image`` the image URL, ``data.voc_id``
and ``data.image_id`` name it. Its one annotation (``id`` = the image id as well) holds,
per person, a ``rectanglelabels`` region (``person``, the mask box, id
``person-<annotation id>``) and a ``keypointlabels`` region per labelled or proposed joint
(the joint name as label, ``parentID`` = the person's rectangle). Coordinates are
percentages of the image size, as Label Studio stores them: ``100 * (x + 0.5) / width``
for our pixel-centre ``x``. Keypoints have no visibility flag in Label Studio, so an
occluded joint carries a per-region ``choices`` result (``visibility``: ``occluded``) with
its region's id, and a pending proposal one (``status``: ``proposed``; untick it to
confirm the joint); an unlabelled joint has no region.

:func:`label_config` is the labelling interface to paste into the project settings (also
written beside the export): its keypoint labels carry ``model_index``, the joint's index
in our schema, which Label Studio's converter needs to order keypoints in its COCO and
YOLO exports. Task and annotation ids are what the converter needs to read the file.

On import, a keypoint without ``parentID`` belongs to the smallest person rectangle that
contains it; a rectangle without our id is matched to the split's persons by box IoU.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from pascal_person_pose import atomic, schema
from pascal_person_pose.errors import InputError
from pascal_person_pose.label.interchange import (PIXEL_CENTRE, PROPOSED, ImportedImage,
                                                  ImportedPerson, export_images, joint_index,
                                                  load_json)

DEFAULT_IMAGE_URL = "/data/local-files/?d=images/"  # Label Studio's local-files storage
PERSON = "person"
RECTANGLES, KEYPOINTS, VISIBILITY, STATUS, IMAGE = ("person", "joints", "visibility",
                                                     "status", "image")
OCCLUDED = "occluded"
POINT_SIZE = 0.6  # keypoint radius in percent of the image width (display only)
_PERSON_ID = re.compile(r"^person-(\d+)$")


def label_config() -> str:
    """The Label Studio labelling interface (XML) that matches exported tasks."""
    labels = "\n".join(f'    <Label value="{j.name}" model_index="{k}" '
                       f'background="#{bytes(j.colour).hex()}"/>'
                       for k, j in enumerate(schema.JOINTS))
    return (f'<View>\n  <Image name="{IMAGE}" value="$image" zoom="true"/>\n'
            f'  <RectangleLabels name="{RECTANGLES}" toName="{IMAGE}">\n'
            f'    <Label value="{PERSON}"/>\n  </RectangleLabels>\n'
            f'  <KeyPointLabels name="{KEYPOINTS}" toName="{IMAGE}">\n{labels}\n'
            f'  </KeyPointLabels>\n'
            f'  <Choices name="{VISIBILITY}" toName="{IMAGE}" perRegion="true" '
            f'whenTagName="{KEYPOINTS}">\n    <Choice value="{OCCLUDED}"/>\n  </Choices>\n'
            f'  <Choices name="{STATUS}" toName="{IMAGE}" perRegion="true" '
            f'whenTagName="{KEYPOINTS}">\n    <Choice value="{PROPOSED}"/>\n  </Choices>\n'
            f'</View>\n')


def _region(region_id: str, kind: str, from_name: str, width: int, height: int,
            value: dict) -> dict:
    return {"id": region_id, "type": kind, "from_name": from_name, "to_name": IMAGE,
            "original_width": width, "original_height": height, "image_rotation": 0,
            "value": value}


def export_labelstudio(root: str | os.PathLike, split: str, out: str | os.PathLike,
                       image_url: str = DEFAULT_IMAGE_URL) -> int:
    """Write the split as Label Studio tasks (JSON list) and the labelling interface beside
    it (``<out stem>.label_config.xml``); returns the number of persons written."""
    tasks, persons = [], 0
    for image in export_images(root, split):
        w, h = image.width, image.height
        result = []
        for person in image.persons:
            rect_id = f"person-{person.annotation_id}"
            x, y, bw, bh = person.bbox.tolist()
            result.append(_region(rect_id, "rectanglelabels", RECTANGLES, w, h, {
                "x": 100 * x / w, "y": 100 * y / h, "width": 100 * bw / w,
                "height": 100 * bh / h, "rotation": 0, "rectanglelabels": [PERSON]}))
            for _, name, jx, jy, v, proposed in person.joints():
                point = {"x": 100 * jx / w, "y": 100 * jy / h, "width": POINT_SIZE}
                region = _region(f"{rect_id}-{name}", "keypointlabels", KEYPOINTS, w, h,
                                 {**point, "keypointlabels": [name]})
                result.append({**region, "parentID": rect_id})
                for choice, tag, wanted in ((OCCLUDED, VISIBILITY, v == 1),
                                            (PROPOSED, STATUS, proposed)):
                    if wanted:
                        result.append(_region(f"{rect_id}-{name}", "choices", tag, w, h,
                                              {**point, "choices": [choice]}))
            persons += 1
        tasks.append({"id": image.image_id,
                      "data": {IMAGE: f"{image_url}{image.file_name}", "voc_id": image.voc_id,
                               "image_id": image.image_id},
                      "annotations": [{"id": image.image_id, "result": result}]})
    out = Path(out)
    atomic.write_json(out, tasks, indent=1)
    atomic.write_text(out.with_name(f"{out.stem}.label_config.xml"), label_config())
    return persons


def _number(value: dict, key: str, source: Path, where: str) -> float:
    number = value.get(key)
    if isinstance(number, bool) or not isinstance(number, (int, float)) \
            or not np.isfinite(number):
        raise InputError(source, f"must be a number, got {number!r}", record=where,
                         field=f"value.{key}")
    return float(number)


def _size(item: dict, source: Path, where: str) -> tuple[float, float]:
    try:
        return (_number(item, "original_width", source, where),
                _number(item, "original_height", source, where))
    except InputError:
        raise InputError(source, "missing or not a number", record=where,
                         field="original_width/original_height") from None


def _label(value: dict, key: str, source: Path, where: str) -> str:
    labels = value.get(key)
    if not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str):
        raise InputError(source, f"must be a list of one label, got {labels!r:.60}",
                         record=where, field=f"value.{key}")
    return labels[0]


def _task(task: dict, k: int, source: Path) -> ImportedImage:
    where = f"task {k + 1}"
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise InputError(source, "missing or not an object", record=where, field="data")
    data = task["data"]
    voc_id = data.get("voc_id") or Path(str(data.get(IMAGE, ""))).stem
    where = f"task {k + 1} ({voc_id})"
    image = ImportedImage(voc_id, where)
    annotations = [a for a in task.get("annotations") or []
                   if isinstance(a, dict) and not a.get("was_cancelled")]
    if not annotations:
        return image
    result = annotations[0].get("result")
    if not isinstance(result, list):
        raise InputError(source, "missing or not a list", record=where, field="result")

    rectangles: dict[str, ImportedPerson] = {}
    boxes: dict[str, tuple[float, float, float, float]] = {}
    points: list[tuple[str, dict, str]] = []  # (where, item, joint name)
    occluded: set[str] = set()
    proposed: set[str] = set()
    for r, item in enumerate(result):
        at = f"{where}, result {r + 1}"
        if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
            raise InputError(source, "missing or not an object", record=at, field="value")
        value, kind = item["value"], item.get("type")
        if kind == "rectanglelabels" and _label(value, "rectanglelabels", source, at) == PERSON:
            w, h = _size(item, source, at)
            x, y = _number(value, "x", source, at), _number(value, "y", source, at)
            bw, bh = _number(value, "width", source, at), _number(value, "height", source, at)
            box = (x * w / 100, y * h / 100, (x + bw) * w / 100, (y + bh) * h / 100)
            region = str(item.get("id", f"#{r + 1}"))
            match = _PERSON_ID.fullmatch(region)
            rectangles[region] = ImportedPerson(
                f"{where}, rectangle {region}", int(match.group(1)) if match else None,
                np.zeros((schema.NUM_JOINTS, 3)),
                np.array([box[0], box[1], box[2] - 1, box[3] - 1]).round())
            boxes[region] = box
        elif kind == "keypointlabels":
            points.append((at, item, _label(value, "keypointlabels", source, at)))
        elif kind == "choices" and isinstance(value.get("choices"), list):
            for choice, regions in ((OCCLUDED, occluded), (PROPOSED, proposed)):
                if choice in value["choices"]:
                    regions.add(str(item.get("id")))

    for at, item, name in points:
        j = joint_index(name, source, at, "value.keypointlabels")
        w, h = _size(item, source, at)
        x = _number(item["value"], "x", source, at) * w / 100
        y = _number(item["value"], "y", source, at) * h / 100
        parent = item.get("parentID")
        if parent is None:
            around = [(bx1 - bx0) * (by1 - by0) for bx0, by0, bx1, by1 in boxes.values()]
            inside = [(area, region) for area, (region, (bx0, by0, bx1, by1))
                      in zip(around, boxes.items()) if bx0 <= x <= bx1 and by0 <= y <= by1]
            if not inside:
                raise InputError(source, f"keypoint {name} lies in no person rectangle",
                                 record=at, field="parentID")
            parent = min(inside)[1]
        if parent not in rectangles:
            raise InputError(source, f"no person rectangle with id {parent!r}", record=at,
                             field="parentID")
        person = rectangles[parent]
        if person.keypoints[j, 2] > 0 or person.proposals[j, 2] > 0:
            raise InputError(source, f"joint {name} given twice for one person", record=at,
                             field="value.keypointlabels")
        region = str(item.get("id"))
        target = person.proposals if region in proposed else person.keypoints
        target[j] = (x - PIXEL_CENTRE, y - PIXEL_CENTRE, 1 if region in occluded else 2)
    # a rectangle drawn in Label Studio without any keypoint carries nothing to import
    image.persons = [p for p in rectangles.values() if p.annotation_id is not None
                     or (p.keypoints[:, 2] > 0).any() or (p.proposals[:, 2] > 0).any()]
    return image


def labelstudio_images(tasks, source: Path) -> list[ImportedImage]:
    """The persons of Label Studio tasks (a list of tasks, or one task) read from ``source``."""
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise InputError(source, "must be a list of Label Studio tasks")
    return [_task(task, k, source) for k, task in enumerate(tasks)]


def read_labelstudio(path: str | os.PathLike) -> list[ImportedImage]:
    """The persons of a Label Studio JSON export (a list of tasks, or one task)."""
    return labelstudio_images(load_json(Path(path)), Path(path))
