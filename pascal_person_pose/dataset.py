"""The canonical dataset (docs/formats.md): load one split, index it, iterate samples.

Loading reads and checks the COCO-style JSON once and builds a numpy index (keypoints,
boxes, instance numbers, annotation ids, grouped by image), so looking up an image or all
poses of a split costs no JSON walking. Pixels are read only when asked for: a sample's
``image``, ``part_map`` and ``instance_map`` read their file on first access, and a
person's ``mask`` is decoded from its RLE on first access, so iterating poses alone never
touches an image file. ``fine_part_map`` is the image's PASCAL-Part fine parts with their
sides (``schema.FINE_PARTS`` ids), or None where the source had none.

The JSON stays exactly what ``pycocotools.coco.COCO`` loads; ``Dataset.coco`` is that
dict, untouched.

Checked on load, each failure an ``InputError`` naming the file, the record (``image <id>``
or ``annotation <id>``) and the field: the category lists our 14 joints in schema order;
every image has an integer ``id``, ``file_name``, ``width``/``height`` of 1-65536 and the
``voc_id`` whose digits are its id (ids unique); every annotation has a unique ``id``, an
``image_id`` present in ``images``, ``category_id`` 1, a finite 4-number ``bbox`` and
``area``, ``iscrowd``, an RLE ``segmentation`` of the image's size whose runs cover the
mask exactly (checked before pycocotools, which would write past the mask), 42 finite
``keypoints`` with
visibility 0/1/2 and x = y = 0 where it is 0, ``num_keypoints`` equal to the labelled
joints, and an ``instance`` 1-255 unique within its image. Pixel files are checked when
read: they must exist, have the size the JSON gives, and (part maps) hold only 0-6 or 255,
(fine part maps) only 0 and the ids of ``schema.FINE_PARTS``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from pascal_person_pose import layout, rle, safe_json, schema
from pascal_person_pose import progress as progress_bar
from pascal_person_pose.errors import InputError
from pascal_person_pose.sources import voc

_KEYPOINT_LENGTH = 3 * schema.NUM_JOINTS
_VALID_PART_IDS = np.isin(np.arange(256), [*range(schema.NUM_PARTS), schema.IGNORE_LABEL])
_VALID_FINE_IDS = np.isin(np.arange(256), [0, *schema.id2fine])
_INVALID_PART_ID = (~_VALID_PART_IDS).astype(np.uint8)
_NUMBER_TYPES = {int, float}  # exact types: a JSON true/false is a bool, not a number
_MAX_SIDE = 1 << 16
_SIDE = f"a positive integer up to {_MAX_SIDE}"
_VOC_ID = re.compile(r"^\d{4}_\d{6}$", re.ASCII)


@dataclass(eq=False)
class Person:
    """One annotated person: its pose, box and (lazily decoded) mask."""

    annotation_id: int
    instance: int  # the person's value in instances/<id>.png
    keypoints: np.ndarray  # (14, 3) float64, COCO visibility in column 2
    bbox: np.ndarray  # (4,) float32 COCO [x, y, w, h]
    segmentation: dict = field(repr=False)  # the RLE as stored in the JSON

    @cached_property
    def mask(self) -> np.ndarray:
        """The person mask (bool HxW), decoded from the RLE on first use."""
        return _decode([self.segmentation])[0]


@dataclass(eq=False)
class Sample:
    """One image of a split with its persons; pixel arrays are read on first access."""

    voc_id: str
    image_id: int
    width: int
    height: int
    pose_annotated: bool
    persons: list[Person]
    layout: layout.CanonicalLayout = field(repr=False)

    @property
    def keypoints(self) -> np.ndarray:
        """All poses of the image, (G, 14, 3) float64 in annotation order."""
        return _stack([p.keypoints for p in self.persons], (0, schema.NUM_JOINTS, 3))

    @property
    def boxes(self) -> np.ndarray:
        """All person boxes, (G, 4) float32 COCO [x, y, w, h]."""
        return _stack([p.bbox for p in self.persons], (0, 4), np.float32)

    @property
    def instances(self) -> np.ndarray:
        """Each person's value in the instance map, (G,) int64."""
        return np.array([p.instance for p in self.persons], dtype=np.int64)

    @cached_property
    def image(self) -> np.ndarray:
        """The RGB image, (H, W, 3) uint8."""
        path = self.layout.image(self.voc_id)
        rgb = voc.read_image(path)
        self._check_shape(path, rgb)
        return rgb

    @cached_property
    def part_map(self) -> np.ndarray:
        """Part ids 0-6 per pixel (255 ignore), (H, W) uint8."""
        path = self.layout.parts(self.voc_id)
        labels = self._read_label_map(path)
        # max() is a fast test; the exact one (a table lookup) runs only when a value above
        # 6 is present, as the ignore label 255 often is.
        if labels.max() >= schema.NUM_PARTS and cv2.LUT(labels, _INVALID_PART_ID).any():
            bad = np.unique(labels[~_VALID_PART_IDS[labels]])
            raise InputError(path, f"values {bad.tolist()[:10]} are not part ids "
                                   f"(0-{schema.NUM_PARTS - 1}, {schema.IGNORE_LABEL} ignore)")
        return labels

    def unchecked_part_map(self) -> np.ndarray:
        """The stored part map without the value check, for a caller that checks the values
        in its own pass over the pixels (scoring does, while counting)."""
        return self._read_label_map(self.layout.parts(self.voc_id))

    @cached_property
    def fine_part_map(self) -> np.ndarray | None:
        """PASCAL-Part fine part ids per pixel (``schema.FINE_PARTS``, 0 none), (H, W) uint8;
        None when the image has no ``parts_fine/<id>.png`` (its source had no fine parts)."""
        path = self.layout.fine_parts(self.voc_id)
        if not path.is_file():
            return None
        labels = self._read_label_map(path)
        if not _VALID_FINE_IDS[labels].all():
            bad = np.unique(labels[~_VALID_FINE_IDS[labels]])
            raise InputError(path, f"values {bad.tolist()[:10]} are not fine part ids "
                                   f"(0, {min(schema.id2fine)}-{max(schema.id2fine)})")
        return labels

    @cached_property
    def instance_map(self) -> np.ndarray:
        """Person instance numbers per pixel (0 = no person), (H, W) uint8."""
        return self._read_label_map(self.layout.instances(self.voc_id))

    @cached_property
    def masks(self) -> np.ndarray:
        """All person masks, (G, H, W) bool."""
        if not self.persons:
            return np.zeros((0, self.height, self.width), dtype=bool)
        return _decode([p.segmentation for p in self.persons])

    def _read_label_map(self, path: Path) -> np.ndarray:
        """One 8-bit channel of label values, as written by ``ppp prepare`` (the index of a
        palette PNG, or grayscale values): no colour decoding, unlike the upstream PNGs."""
        labels = voc.read_label_values(path)
        self._check_shape(path, labels)
        return labels

    def _check_shape(self, path: Path, array: np.ndarray) -> None:
        if array.shape[:2] != (self.height, self.width):
            raise InputError(path, f"is {array.shape[1]}x{array.shape[0]} pixels but the "
                                   f"annotation file says {self.width}x{self.height}",
                             record=f"image {self.image_id}", field="width/height")


class Dataset:
    """One split of the canonical dataset at ``root`` (``Dataset(root, "val")``)."""

    def __init__(self, root: str | os.PathLike, split: str):
        self.root = Path(root)
        self.split = split
        self.layout = layout.CanonicalLayout(self.root)
        self.annotation_file = self.layout.annotations(split)
        self.coco: dict = _read_json(self.annotation_file)
        _validate(self.coco, self.annotation_file)
        self.images: list[dict] = self.coco["images"]
        self._build_index()

    def _build_index(self) -> None:
        """Group annotations by image (stable, so annotation order is kept) into arrays."""
        annotations = self.coco["annotations"]
        self._position = {im["id"]: i for i, im in enumerate(self.images)}
        self._voc_position = {im["voc_id"]: i for i, im in enumerate(self.images)}
        image_of = np.array([self._position[a["image_id"]] for a in annotations], dtype=np.int64)
        self._order = np.argsort(image_of, kind="stable")
        self._starts = np.searchsorted(image_of[self._order], np.arange(len(self.images) + 1))
        ordered = [annotations[k] for k in self._order]
        # float64: the metrics measure distances to the labelled coordinates exactly.
        self._keypoints = np.array([a["keypoints"] for a in ordered], dtype=np.float64).reshape(
            -1, schema.NUM_JOINTS, 3)
        self._boxes = np.array([a["bbox"] for a in ordered], dtype=np.float32).reshape(-1, 4)
        self._instances = np.array([a["instance"] for a in ordered], dtype=np.int64)
        self._annotation_ids = np.array([a["id"] for a in ordered], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        index %= len(self)
        entry = self.images[index]
        start, stop = self._starts[index], self._starts[index + 1]
        keypoints = self._keypoints[start:stop].copy()
        boxes = self._boxes[start:stop].copy()
        annotations = self.coco["annotations"]
        persons = [Person(annotation_id=int(self._annotation_ids[k]),
                          instance=int(self._instances[k]),
                          keypoints=keypoints[k - start], bbox=boxes[k - start],
                          segmentation=annotations[self._order[k]]["segmentation"])
                   for k in range(start, stop)]
        return Sample(voc_id=entry["voc_id"], image_id=entry["id"], width=entry["width"],
                      height=entry["height"], pose_annotated=entry.get("pose_annotated", True),
                      persons=persons, layout=self.layout)

    def __iter__(self) -> Iterator[Sample]:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return (f"Dataset(root={str(self.root)!r}, split={self.split!r}, "
                f"images={len(self)}, persons={len(self._instances)})")

    def index_of(self, key: int | str) -> int:
        """Position of an image given its VOC id (``"2008_000652"``) or image id (2008000652)."""
        position = None
        if isinstance(key, str):
            position = self._voc_position.get(key)
            if position is None and key.isdigit():
                position = self._position.get(int(key))
        elif isinstance(key, (int, np.integer)):
            position = self._position.get(int(key))
        if position is None:
            raise InputError(self.annotation_file, f"no image {key!r} in the {self.split} split")
        return position

    def annotations(self, image_id: int | str) -> list[dict]:
        """The JSON annotation records of one image, in file order."""
        index = self.index_of(image_id)
        annotations = self.coco["annotations"]
        return [annotations[k] for k in self._order[self._starts[index]:self._starts[index + 1]]]

    def keypoints(self, image_id: int | str) -> np.ndarray:
        """The GT poses of one image, (G, 14, 3) float64 in annotation order."""
        index = self.index_of(image_id)
        return self._keypoints[self._starts[index]:self._starts[index + 1]].copy()

    def statistics(self, progress: bool = True) -> dict:
        """Counts that describe the split (``ppp info``); reads every part and instance map.

        Person sizes use the instance map, as the mIOU-by-size metric does; part shares are
        fractions of all pixels of the split, the ignore label counted on its own.
        """
        visibility = self._keypoints[..., 2].astype(np.int64)
        part_pixels = np.zeros(256, dtype=np.int64)
        sizes = []
        for sample in progress_bar.bar(self, desc=f"info {self.split}", total=len(self),
                                       unit="img", enabled=progress):
            part_pixels += np.bincount(sample.part_map.ravel(), minlength=256)
            instance_pixels = np.bincount(sample.instance_map.ravel(), minlength=256)
            sizes.append(instance_pixels[sample.instances] / (sample.width * sample.height))
        buckets = np.bincount(schema.size_bucket(np.concatenate([np.zeros(0), *sizes])),
                              minlength=len(schema.SIZE_BUCKETS))
        total_pixels = max(int(part_pixels.sum()), 1)
        shares = {name: part_pixels[i] / total_pixels for i, name in enumerate(schema.PART_NAMES)}
        shares["ignore"] = part_pixels[schema.IGNORE_LABEL] / total_pixels
        return {
            "split": self.split,
            "images": len(self),
            "pose_annotated_images": sum(im.get("pose_annotated", True) for im in self.images),
            "persons": len(self._instances),
            "joints": {name: {"visible": int((visibility[:, j] == 2).sum()),
                              "occluded": int((visibility[:, j] == 1).sum())}
                       for j, name in enumerate(schema.JOINT_NAMES)},
            "persons_by_size": dict(zip(schema.SIZE_BUCKETS, map(int, buckets))),
            "size_thresholds": list(schema.SIZE_THRESHOLDS),
            "part_pixel_share": {k: float(v) for k, v in shares.items()},
        }


def _rle(segmentation: dict) -> dict:
    """A pycocotools-ready RLE: the JSON stores ``counts`` as text, the C API wants bytes."""
    counts = segmentation["counts"]
    if isinstance(counts, list):
        return mask_utils.frPyObjects(segmentation, *segmentation["size"])
    return {"size": segmentation["size"],
            "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def _decode(segmentations: list[dict]) -> np.ndarray:
    """RLEs -> (G, H, W) bool masks in one pycocotools call.

    pycocotools decodes into column-major memory; the masks are handed out as a view of it
    (Fortran-ordered per mask) instead of a C-ordered copy, which would cost more than the
    decoding itself. Code that needs C order copies (the transforms and the torch adapter
    do, as part of their own work).
    """
    return mask_utils.decode([_rle(s) for s in segmentations]).transpose(2, 0, 1).view(bool)


def _stack(arrays: list[np.ndarray], empty_shape: tuple[int, ...],
           dtype=np.float64) -> np.ndarray:
    return np.stack(arrays) if arrays else np.zeros(empty_shape, dtype=dtype)


def _read_json(path: Path) -> dict:
    if not os.path.lexists(path):
        raise InputError(path, "annotation file not found (run `ppp prepare` first)")
    return safe_json.load(path, allow_nan=True)  # _validate names the field of a NaN


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return type(value) in _NUMBER_TYPES


def _numbers(length: int):
    """Check for a list of ``length`` JSON numbers (the type test runs in C via map)."""
    return lambda v: isinstance(v, list) and len(v) == length and set(map(type, v)) <= \
        _NUMBER_TYPES


def _require(path: Path, record: dict, name: str, fields: dict) -> None:
    """Raise on the first field of ``record`` that is missing or fails its check."""
    for key, (check, expected) in fields.items():
        if key not in record:
            raise InputError(path, "missing", record=name, field=key)
        if not check(record[key]):
            raise InputError(path, f"must be {expected}, got {record[key]!r:.60}",
                             record=name, field=key)


_IMAGE_FIELDS = {
    "id": (_is_int, "an integer"),
    "file_name": (lambda v: isinstance(v, str), "a string"),
    "width": (lambda v: _is_int(v) and 0 < v <= _MAX_SIDE, _SIDE),
    "height": (lambda v: _is_int(v) and 0 < v <= _MAX_SIDE, _SIDE),
    "voc_id": (lambda v: isinstance(v, str) and _VOC_ID.match(v) is not None,
               "a VOC id YYYY_NNNNNN"),
}
_ANNOTATION_FIELDS = {
    "id": (_is_int, "an integer"),
    "image_id": (_is_int, "an integer"),
    "category_id": (lambda v: v == 1, "1 (person)"),
    "bbox": (lambda v: _numbers(4)(v) and all(map(math.isfinite, v)),
             "4 finite numbers [x, y, w, h]"),
    "area": (lambda v: _is_number(v) and math.isfinite(v), "a finite number"),
    "iscrowd": (lambda v: v in (0, 1), "0 or 1"),
    "segmentation": (lambda v: isinstance(v, dict) and "counts" in v
                     and isinstance(v.get("size"), list) and len(v["size"]) == 2
                     and all(map(_is_int, v["size"])), "an RLE {size: [height, width], counts}"),
    "keypoints": (_numbers(_KEYPOINT_LENGTH), f"{_KEYPOINT_LENGTH} numbers [x, y, v] * 14"),
    "num_keypoints": (_is_int, "an integer"),
    "instance": (lambda v: _is_int(v) and 1 <= v <= 255, "an integer 1-255"),
}


def _validate(coco: dict, path: Path) -> None:
    """Check the JSON shape so that a broken file fails here, naming record and field."""
    if not isinstance(coco, dict):
        raise InputError(path, "top level must be a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise InputError(path, "missing or not a list", field=key)
    person = next((c for c in coco["categories"] if isinstance(c, dict) and c.get("id") == 1), None)
    if person is None or person.get("keypoints") != list(schema.JOINT_NAMES):
        raise InputError(path, "must list the 14 joints in schema order "
                               f"{list(schema.JOINT_NAMES)}", record="category 1", field="keypoints")

    sizes: dict[int, list[int]] = {}
    voc_ids: set[str] = set()
    for k, entry in enumerate(coco["images"]):
        if not isinstance(entry, dict):
            raise InputError(path, "must be an object", record=f"images[{k}]")
        name = f"image {entry.get('id', f'#{k}')}"
        _require(path, entry, name, _IMAGE_FIELDS)
        if entry["id"] in sizes:
            raise InputError(path, "duplicate image id", record=name, field="id")
        if not isinstance(entry.get("pose_annotated", True), bool):
            raise InputError(path, "must be true or false", record=name, field="pose_annotated")
        voc_id = entry["voc_id"]
        if voc_id in voc_ids or layout.image_id(voc_id) != entry["id"]:
            raise InputError(path, f"{voc_id!r} is not the unique VOC id of image id "
                                   f"{entry['id']}", record=name, field="voc_id")
        voc_ids.add(voc_id)
        sizes[entry["id"]] = [entry["height"], entry["width"]]

    annotation_ids: set[int] = set()
    instances: set[tuple[int, int]] = set()
    for k, ann in enumerate(coco["annotations"]):
        if not isinstance(ann, dict):
            raise InputError(path, "must be an object", record=f"annotations[{k}]")
        name = f"annotation {ann.get('id', f'#{k}')}"
        _require(path, ann, name, _ANNOTATION_FIELDS)
        if ann["id"] in annotation_ids:
            raise InputError(path, "duplicate annotation id", record=name, field="id")
        annotation_ids.add(ann["id"])
        if ann["image_id"] not in sizes:
            raise InputError(path, f"image {ann['image_id']} is not in images", record=name,
                             field="image_id")
        if ann["segmentation"]["size"] != sizes[ann["image_id"]]:
            raise InputError(path, f"RLE size {ann['segmentation']['size']} is not the image's "
                                   f"[height, width] {sizes[ann['image_id']]}",
                             record=name, field="segmentation")
        if (ann["image_id"], ann["instance"]) in instances:
            raise InputError(path, "instance number used twice in one image", record=name,
                             field="instance")
        instances.add((ann["image_id"], ann["instance"]))
    _validate_keypoints(coco["annotations"], path)
    bad = rle.first_bad_rle([(a["segmentation"]["counts"], *a["segmentation"]["size"])
                             for a in coco["annotations"]])
    if bad is not None:  # pycocotools would crash (or corrupt memory) decoding it
        raise InputError(path, f"invalid RLE: {bad[1]}",
                         record=f"annotation {coco['annotations'][bad[0]]['id']}",
                         field="segmentation.counts")


def _validate_keypoints(annotations: list[dict], path: Path) -> None:
    """Vectorised value checks of all poses at once; the first bad record is named."""
    keypoints = np.array([a["keypoints"] for a in annotations], dtype=np.float64).reshape(
        -1, schema.NUM_JOINTS, 3)
    visibility = keypoints[..., 2]
    problems = (
        (~np.isfinite(keypoints).all(axis=(1, 2)) | ~np.isin(visibility, (0, 1, 2)).all(axis=1),
         "keypoints", "coordinates must be finite and visibility 0, 1 or 2"),
        (((keypoints[..., :2] != 0).any(axis=2) & (visibility == 0)).any(axis=1),
         "keypoints", "an unlabelled joint (v = 0) must have x = y = 0"),
        (np.array([a["num_keypoints"] for a in annotations], dtype=np.int64).reshape(-1)
         != (visibility > 0).sum(axis=1),
         "num_keypoints", "must be the number of labelled joints (v > 0)"),
    )
    for bad, field_name, message in problems:
        if bad.any():
            ann = annotations[int(np.argmax(bad))]
            raise InputError(path, message, record=f"annotation {ann['id']}", field=field_name)
