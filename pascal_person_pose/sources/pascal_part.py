"""PASCAL-Part ``Annotations_Part/<id>.mat``: objects with silhouettes and fine parts.

``loadmat(f)['anno'][0, 0]`` has ``imname`` (char) and ``objects``, a 1xN struct array of
``class`` (char), ``class_ind`` (uint8 1x1, VOC class index, person = 15), ``mask`` (HxW
uint8 0/1 silhouette) and ``parts``, a 1xP struct array of ``part_name`` (char) and ``mask``
(HxW uint8 0/1), or an empty 0x0 array when the object has no parts.

Person objects become :class:`PersonInstance` s: the silhouette, a map of the fine parts
(``schema.FINE_PARTS`` ids, sides included) and the part map of the six classes of
``schema.PARTS`` merged from it. Fine parts overlap in the real files (an arm drawn over the
torso, hair over the head); as in the PASCAL-Part devkit (``mat2map.m``), parts are painted
in file order, later over earlier. Parts are clipped to the silhouette (the devkit asserts
they lie inside it). Record and field names in errors use MATLAB's 1-based notation,
``objects(3)``, ``parts(5).part_name``, as a user would type them to inspect the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from pascal_person_pose.atomic import atomic_open
from pascal_person_pose.errors import InputError
from pascal_person_pose.schema import FINE_ID_TO_PART, name2fine, name2part
from pascal_person_pose.sources import load_mat, save_mat

PERSON_CLASS = "person"
PERSON_CLASS_IND = 15  # the VOC index of person (the 20 classes in alphabetical order)

_ANNO_FIELDS = ("imname", "objects")
_OBJECT_FIELDS = ("class", "class_ind", "mask", "parts")
_PART_FIELDS = ("part_name", "mask")


@dataclass
class PartObject:
    """One object of an annotation file, any class."""

    class_name: str
    class_ind: int
    mask: np.ndarray  # bool HxW silhouette
    parts: list[tuple[str, np.ndarray]]  # (fine part name, bool HxW mask), file order


@dataclass
class PersonInstance:
    """One person: silhouette, fine part ids and part ids 0-6 (0 where no part covers the
    silhouette)."""

    mask: np.ndarray  # bool HxW
    part_map: np.ndarray  # uint8 HxW, part class ids
    fine_map: np.ndarray  # uint8 HxW, schema.FINE_PARTS ids


def fine_to_part(neck_in_head: bool = False) -> np.ndarray:
    """Lookup fine part id -> part class id; some releases count the neck as head."""
    lookup = FINE_ID_TO_PART.copy()
    if neck_in_head:
        lookup[name2fine["neck"].id] = name2part["head"].id
    return lookup


def _struct(path, value: np.ndarray, fields: tuple[str, ...], record: str | None,
            field: str) -> np.ndarray:
    """The elements (file order) of a struct array; an empty array is an empty struct."""
    if value.size == 0:
        return value.reshape(0)
    if value.dtype.names is None or not set(fields) <= set(value.dtype.names):
        raise InputError(path, f"expected a struct array with fields {', '.join(fields)}",
                         record=record, field=field)
    # MATLAB stores arrays column-major; the upstream struct arrays are 1xN, where it agrees.
    return value.ravel(order="F")


def _string(path, value: np.ndarray, record: str | None, field: str) -> str:
    if not isinstance(value, np.ndarray) or value.dtype.kind != "U" or value.size > 1:
        raise InputError(path, "expected a character string", record=record, field=field)
    return str(value.item()) if value.size else ""


def _mask(path, value: np.ndarray, shape: tuple[int, ...] | None, record: str,
          field: str) -> np.ndarray:
    if (not isinstance(value, np.ndarray) or value.ndim != 2
            or value.dtype.kind not in "buif"):
        raise InputError(path, "expected a 2-D numeric mask", record=record, field=field)
    if shape is not None and value.shape != shape:
        raise InputError(path, f"mask is {value.shape[0]}x{value.shape[1]}, expected "
                         f"{shape[0]}x{shape[1]} like the other masks of the file",
                         record=record, field=field)
    return value != 0


def read_anno(path: str | os.PathLike) -> tuple[str, list[PartObject]]:
    """(imname, every object in file order) of one annotation file."""
    anno = load_mat(path, ("anno",))["anno"]
    if anno.size != 1:
        raise InputError(path, "expected a 1x1 struct", field="anno")
    anno = _struct(path, anno, _ANNO_FIELDS, None, "anno")[0]
    imname = _string(path, anno["imname"], None, "imname")
    shape = None
    objects = []
    for i, obj in enumerate(_struct(path, anno["objects"], _OBJECT_FIELDS, None, "objects"),
                            start=1):
        record = f"objects({i})"
        class_ind = obj["class_ind"]
        if (not isinstance(class_ind, np.ndarray) or class_ind.size != 1
                or class_ind.dtype.kind not in "uif"):
            raise InputError(path, "expected a numeric scalar", record=record,
                             field="class_ind")
        if not float(class_ind.item()).is_integer():  # NaN, inf, 15.5
            raise InputError(path, f"expected a whole VOC class index, got "
                             f"{class_ind.item():g}", record=record, field="class_ind")
        mask = _mask(path, obj["mask"], shape, record, "mask")
        shape = mask.shape
        parts = [(_string(path, part["part_name"], record, f"parts({j}).part_name"),
                  _mask(path, part["mask"], shape, record, f"parts({j}).mask"))
                 for j, part in enumerate(_struct(path, obj["parts"], _PART_FIELDS, record,
                                                  "parts"), start=1)]
        objects.append(PartObject(_string(path, obj["class"], record, "class"),
                                  int(class_ind.item()), mask, parts))
    return imname, objects


def read_persons(path: str | os.PathLike, neck_in_head: bool = False) -> list[PersonInstance]:
    """The person objects of an annotation file, in file order, fine parts merged."""
    _, objects = read_anno(path)
    to_part = fine_to_part(neck_in_head)
    persons = []
    for i, obj in enumerate(objects, start=1):
        is_person = obj.class_name == PERSON_CLASS
        if is_person != (obj.class_ind == PERSON_CLASS_IND):
            raise InputError(path, f"class {obj.class_name!r} disagrees with class_ind "
                             f"{obj.class_ind} (person is {PERSON_CLASS_IND})",
                             record=f"objects({i})", field="class_ind")
        if not is_person:
            continue
        fine_map = np.zeros(obj.mask.shape, np.uint8)
        for j, (name, mask) in enumerate(obj.parts, start=1):
            if name not in name2fine:
                raise InputError(path, f"unknown person part {name!r}", record=f"objects({i})",
                                 field=f"parts({j}).part_name")
            fine_map[mask] = name2fine[name].id
        fine_map[~obj.mask] = 0
        persons.append(PersonInstance(obj.mask, to_part[fine_map], fine_map))
    return persons


def merge_part_maps(persons: list[PersonInstance], shape: tuple[int, int],
                    fine: bool = False) -> np.ndarray:
    """The image's part map (``fine``: its fine part map): each person's labels over its
    whole silhouette, in file order.

    Later persons occlude earlier ones (the devkit's object order), and a pixel's label
    always comes from the person that owns it in the instance map painted the same way,
    so silhouette pixels that no part covers are background even over an earlier person.
    """
    out = np.zeros(shape, np.uint8)
    for person in persons:
        if person.mask.shape != tuple(shape):
            raise ValueError(f"person mask {person.mask.shape} does not match shape {shape}")
        np.copyto(out, person.fine_map if fine else person.part_map, where=person.mask)
    return out


def write_anno(path: str | os.PathLike, imname: str, objects: list[PartObject]) -> None:
    """Write an annotation file with exactly the upstream structure, atomically."""
    struct = np.empty((1, len(objects)), dtype=[(f, object) for f in _OBJECT_FIELDS])
    for i, obj in enumerate(objects):
        parts = np.empty((1, len(obj.parts)) if obj.parts else (0, 0),
                         dtype=[(f, object) for f in _PART_FIELDS])
        for j, (name, mask) in enumerate(obj.parts):
            parts[0, j] = (name, _uint8_mask(mask, obj.mask.shape))
        struct[0, i] = (obj.class_name, np.array([[obj.class_ind]], np.uint8),
                        _uint8_mask(obj.mask, obj.mask.shape), parts)
    anno = np.empty((1, 1), dtype=[(f, object) for f in _ANNO_FIELDS])
    anno[0, 0] = (imname, struct)
    with atomic_open(path, "wb") as f:
        save_mat(f, {"anno": anno})


def _uint8_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if mask.shape != shape or mask.ndim != 2:
        raise ValueError(f"mask {mask.shape} does not match the object's {shape}")
    return (np.asarray(mask) != 0).astype(np.uint8)
