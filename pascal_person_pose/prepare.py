"""Raw upstream sources -> the canonical dataset (``ppp prepare RAW OUT``, docs/formats.md).

Per image listed in ``train_id.txt`` / ``val_id.txt``:

- persons are the person objects of ``Annotations_Part/<id>.mat`` in file order; person k
  is instance k in ``instances/<id>.png``. Where silhouettes overlap, the later person
  owns the pixel (the PASCAL-Part devkit's painting order, the same rule
  ``sources.pascal_part.merge_part_maps`` uses for parts), so a person's pixel count in the
  instance map can be smaller than its annotation ``area``, which counts the full mask;
- each person of the pose file is matched to one instance by a Hungarian assignment
  maximising the IoU of the pose file's ``boxes`` with the tight boxes of the instance
  masks (inclusive pixel convention). The pose file may list people in any order; a pair
  with IoU 0 is never matched. Unmatched pose people and instances are warnings, not
  errors; a person without a matched pose has all keypoints 0 (``num_keypoints`` 0);
- ``parts/<id>.png`` is the Person-Part label PNG; without one it is the merge of the
  .mat's fine parts. When the PNG and fine parts (some person with a labelled part) both
  exist, the share of non-ignore pixels on which they differ is reported;
- ``parts_fine/<id>.png`` holds the fine parts themselves (``schema.FINE_PARTS`` ids, sides
  included), painted by the same rule as the merge, for every image where some person has
  a labelled part; an image without any has no such file;
- an image without a pose file is kept for the part task with ``pose_annotated: false``.

Every output file is written atomically, into a staging tree first
(``layout.CanonicalLayout.staging``) beside a per-image :class:`ImageRecord`
(``layout.CanonicalLayout.prepare_record``) holding everything the JSON needs. Only when
every image succeeded are the staged files moved into place and the split JSONs written,
so a failed run leaves the previous outputs of OUT as they were. A re-run skips an image
whose record matches its inputs (size and modification time of each source file) and
options, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from concurrent.futures import as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pascal_person_pose import atomic, layout, safe_json, schema
from pascal_person_pose import progress as progress_bar
from pascal_person_pose.errors import InputError
from pascal_person_pose.workers import process_pool

if TYPE_CHECKING:
    from pascal_person_pose.sources.pascal_part import PersonInstance

logger = logging.getLogger(__name__)

# Bump when a change of this module changes what a record or a staged file holds, so that
# records from older versions are redone instead of reused.
RECORD_VERSION = 2
_VOC_ID = re.compile(r"^\d{4}_\d{6}$")


@dataclass
class PersonRecord:
    """One person of an image: its COCO annotation (without ids) and what only the summary
    needs (``instance_pixels``, ``pose_matched``)."""

    bbox: list[float]
    area: int
    segmentation: dict
    keypoints: list[float]
    num_keypoints: int
    instance: int
    instance_pixels: int  # the pixels it owns in the instance map (size buckets)
    pose_matched: bool

    def annotation(self) -> dict:
        """The COCO annotation fields (the JSON adds ids and the category)."""
        return {"bbox": self.bbox, "area": self.area, "segmentation": self.segmentation,
                "keypoints": self.keypoints, "num_keypoints": self.num_keypoints,
                "instance": self.instance}


@dataclass
class ImageRecord:
    """What preparing one image learnt: written to its record file, read back to build the
    split JSONs and the summary, and to decide whether a re-run can reuse it."""

    fingerprint: dict
    width: int
    height: int
    pose_annotated: bool
    persons: list[PersonRecord]
    parts_source: str  # "png" (the Person-Part label PNG) or "fine_parts" (their merge)
    has_fine_parts: bool  # whether parts_fine/<id>.png exists
    part_disagreement: list[int] | None  # [differing, compared] pixels, PNG vs fine parts
    unmatched_poses: int
    warnings: list[str]

    @property
    def files(self) -> tuple[str, ...]:
        """The kinds of ``CanonicalLayout.image_files`` this image has."""
        return ("image", "parts", "instances") + (("parts_fine",) if self.has_fine_parts else ())

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ImageRecord:
        return cls(**{**data, "persons": [PersonRecord(**p) for p in data["persons"]]})


@dataclass
class PrepareSummary:
    """What ``prepare`` built, for the table the CLI prints and for tests."""

    images: dict[str, int]  # split -> number of images
    persons: int
    pose_annotated_images: int
    persons_with_pose: int
    labelled_joints: dict[str, int]  # joint name -> labelled (v > 0) joints
    size_buckets: dict[str, int]  # schema.SIZE_BUCKETS -> persons
    unmatched_poses: int  # pose-file people matched to no instance
    unmatched_instances: int  # persons of pose-annotated images without a pose
    parts_from_png: int  # images whose parts come from the Person-Part PNG
    parts_from_fine_parts: int  # images whose parts are merged from the .mat fine parts
    fine_part_maps: int  # images with a parts_fine/<id>.png
    part_disagreement: float | None  # share of compared pixels where PNG and fine parts differ
    processed: int  # images computed by this run
    resumed: int  # images whose earlier result was reused
    warnings: list[str] = field(default_factory=list)

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) rows of the summary table."""
        rows = [(f"images ({split})", str(n)) for split, n in self.images.items()]
        rows += [("persons", str(self.persons)),
                 ("pose-annotated images", str(self.pose_annotated_images)),
                 ("persons with a pose", str(self.persons_with_pose)),
                 ("unmatched pose people", str(self.unmatched_poses)),
                 ("persons without a pose (pose-annotated images)",
                  str(self.unmatched_instances))]
        rows += [(f"labelled joints: {name}", str(n)) for name, n in self.labelled_joints.items()]
        rows += [(f"persons of size {bucket}", str(n)) for bucket, n in self.size_buckets.items()]
        rows += [("parts from Person-Part PNGs", str(self.parts_from_png)),
                 ("parts from PASCAL-Part fine parts", str(self.parts_from_fine_parts)),
                 ("fine part maps (parts_fine/)", str(self.fine_part_maps)),
                 ("PNG vs fine parts disagreement",
                  "n/a" if self.part_disagreement is None
                  else f"{100 * self.part_disagreement:.2f}% of pixels"),
                 ("images processed / resumed", f"{self.processed} / {self.resumed}"),
                 ("warnings", str(len(self.warnings)))]
        return rows


@dataclass(frozen=True)
class _Task:
    voc_id: str
    raw: str
    out: str
    options: dict
    fingerprint: dict


def prepare(raw: str | os.PathLike, out: str | os.PathLike, workers: int | None = None,
            copy_images: bool = False, neck_in_head: bool = False,
            side_order: str = "right_first", progress: bool = True) -> PrepareSummary:
    """Build the canonical dataset in ``out`` from the raw tree ``raw`` (layout.RawLayout).

    ``workers`` processes (default: all cores) prepare images in parallel; ``copy_images``
    copies the JPEGs instead of linking them; ``neck_in_head`` and ``side_order`` are passed
    to the PASCAL-Part and pose readers.
    """
    from pascal_person_pose.sources.pose_mat import SIDE_ORDERS

    if side_order not in SIDE_ORDERS:
        raise ValueError(f"side_order must be one of {SIDE_ORDERS}, got {side_order!r}")
    raw_layout, out = layout.RawLayout(raw), Path(out)
    splits = _read_splits(raw_layout)
    atomic.make_dirs(layout.CanonicalLayout(out).prepare_dir)
    options = {"copy_images": copy_images, "neck_in_head": neck_in_head,
               "side_order": side_order}
    tasks = [_Task(voc_id, os.fspath(raw_layout.root.absolute()), os.fspath(out.absolute()),
                   options, _fingerprint(raw_layout, voc_id, options))
             for ids in splits.values() for voc_id in ids]
    todo = [t for t in tasks if not _is_done(t)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    with progress_bar.bar(desc="prepare", total=len(tasks), initial=len(tasks) - len(todo),
                          unit="img", enabled=progress) as bar:
        if workers == 1:
            for task in todo:
                _stage_image(task)
                bar.update()
        else:
            _run_parallel(todo, workers, bar)
    records = {t.voc_id: _read_record(out, t.voc_id) for t in tasks}
    _commit(out, records)
    summary = _write_annotations(out, splits, records)
    summary.processed, summary.resumed = len(todo), len(tasks) - len(todo)
    for warning in summary.warnings:
        logger.warning(warning)
    return summary


def _run_parallel(todo: list[_Task], workers: int, bar) -> None:
    """Prepare images in ``workers`` processes; the first error cancels the rest."""
    with process_pool(workers) as pool:
        futures = [pool.submit(_stage_image, task) for task in todo]
        try:
            for future in as_completed(futures):
                future.result()
                bar.update()
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


def _read_splits(raw: layout.RawLayout) -> dict[str, list[str]]:
    """The ids of each split, checked: VOC ids, in one split only, with a JPEG and a .mat."""
    from pascal_person_pose.sources.voc import read_id_list

    splits: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for split in layout.SPLITS:
        path = raw.id_list(split)
        ids = read_id_list(path)
        for voc_id in ids:
            if not _VOC_ID.match(voc_id):
                raise InputError(path, "not a VOC id (YYYY_NNNNNN)", record=voc_id)
            if voc_id in seen:
                raise InputError(path, f"also listed in {seen[voc_id]}", record=voc_id)
            seen[voc_id] = os.fspath(path)
            for what, required in (("JPEG", raw.jpeg(voc_id)),
                                   ("PASCAL-Part annotation", raw.part_mat(voc_id))):
                if not required.is_file():
                    raise InputError(path, f"listed, but its {what} {required} is missing",
                                     record=voc_id)
        splits[split] = ids
    return splits


def _fingerprint(raw: layout.RawLayout, voc_id: str, options: dict) -> dict:
    """What a record depends on: the options and the size and mtime of every source file."""
    def stat(path: Path) -> list[int] | None:
        try:
            s = path.stat()
        except FileNotFoundError:
            return None
        return [s.st_size, s.st_mtime_ns]

    return {"version": RECORD_VERSION, "options": options,
            "jpeg": stat(raw.jpeg(voc_id)), "mat": stat(raw.part_mat(voc_id)),
            "png": stat(raw.label_png(voc_id)), "pose": stat(raw.pose_mat(voc_id))}


def _read_record(out: Path, voc_id: str) -> ImageRecord | None:
    """The record of an image, or None (redo the image) when missing or not a record of
    this version (an older version's, or cut short)."""
    try:
        return ImageRecord.from_json(
            safe_json.load(layout.CanonicalLayout(out).prepare_record(voc_id)))
    except (InputError, TypeError, KeyError, AttributeError):
        return None


def _is_done(task: _Task) -> bool:
    """A record for the same inputs and options exists, and each of its files is staged or
    already in place (a record is written after its staged files, which only move later)."""
    canonical = layout.CanonicalLayout(task.out)
    staged = canonical.staging().image_files(task.voc_id)
    final = canonical.image_files(task.voc_id)
    record = _read_record(Path(task.out), task.voc_id)
    return (record is not None and record.fingerprint == task.fingerprint
            and all(os.path.lexists(staged[kind]) or os.path.lexists(final[kind])
                    for kind in record.files))


def _stage_image(task: _Task) -> None:
    from PIL import Image

    from pascal_person_pose.sources import pascal_part, person_part, voc

    raw, voc_id = layout.RawLayout(task.raw), task.voc_id
    canonical = layout.CanonicalLayout(task.out)
    staged = canonical.staging().image_files(voc_id)
    jpeg, mat = raw.jpeg(voc_id), raw.part_mat(voc_id)
    width, height = voc.image_size(jpeg)
    persons = pascal_part.read_persons(mat, neck_in_head=task.options["neck_in_head"])
    for person in persons:
        if person.mask.shape != (height, width):
            raise InputError(mat, f"masks are {person.mask.shape[1]}x{person.mask.shape[0]} "
                                  f"but the image {jpeg} is {width}x{height}")
    if len(persons) > 255:
        raise InputError(mat, f"{len(persons)} persons do not fit an 8-bit instance map")

    instance_map = np.zeros((height, width), np.uint8)
    for k, person in enumerate(persons, start=1):
        instance_map[person.mask] = k
    instance_pixels = np.bincount(instance_map.ravel(), minlength=len(persons) + 1)[1:]
    parts, disagreement = _part_map(task, persons, (height, width))
    has_fine_parts = any(p.fine_map.any() for p in persons)
    boxes = np.array([_mask_box(p.mask) for p in persons], np.float64).reshape(-1, 4)
    keypoints, matched, unmatched_poses, warnings = _poses(task, boxes)
    for k in np.flatnonzero(np.isnan(boxes).any(axis=1)):
        warnings.append(f"{voc_id}: person instance {k + 1} of {mat} has an empty mask")

    if task.options["copy_images"]:
        with open(jpeg, "rb") as src, atomic.atomic_open(staged["image"], "wb") as dst:
            shutil.copyfileobj(src, dst)
    else:
        _symlink(jpeg.absolute(), staged["image"])
    person_part.write_label_png(staged["parts"], parts)
    if has_fine_parts:
        fine = Image.fromarray(pascal_part.merge_part_maps(persons, (height, width), fine=True),
                               "P")
        fine.putpalette(schema.voc_palette())
        atomic.save_image(staged["parts_fine"], fine)
    elif os.path.lexists(staged["parts_fine"]):  # staged by a run on an older source
        staged["parts_fine"].unlink()
    atomic.save_image(staged["instances"], Image.fromarray(instance_map, "L"))

    record = ImageRecord(
        fingerprint=task.fingerprint, width=width, height=height,
        pose_annotated=task.fingerprint["pose"] is not None,
        persons=[_person_record(person.mask, box, kp, k, int(pixels), bool(has_pose))
                 for k, (person, box, kp, pixels, has_pose)
                 in enumerate(zip(persons, boxes, keypoints, instance_pixels, matched), start=1)],
        parts_source="png" if task.fingerprint["png"] is not None else "fine_parts",
        has_fine_parts=has_fine_parts, part_disagreement=disagreement,
        unmatched_poses=unmatched_poses, warnings=warnings)
    atomic.write_json(canonical.prepare_record(voc_id), record.to_json())


def _part_map(task: _Task, persons: list[PersonInstance], shape: tuple[int, int]
              ) -> tuple[np.ndarray, list[int] | None]:
    """The image's part ids (the Person-Part PNG, else the merged fine parts) and, when both
    exist, [pixels where they differ, non-ignore pixels compared]."""
    from pascal_person_pose.sources import pascal_part, person_part

    raw = layout.RawLayout(task.raw)
    merged = pascal_part.merge_part_maps(persons, shape)
    if task.fingerprint["png"] is None:
        return merged, None
    png = raw.label_png(task.voc_id)
    parts = person_part.read_label_png(png)
    if parts.shape != shape:
        raise InputError(png, f"label image is {parts.shape[1]}x{parts.shape[0]} but the "
                              f"image {raw.jpeg(task.voc_id)} is {shape[1]}x{shape[0]}")
    if not any(p.part_map.any() for p in persons):  # no fine parts to compare with
        return parts, None
    compared = parts != schema.IGNORE_LABEL
    return parts, [int(((parts != merged) & compared).sum()), int(compared.sum())]


def _poses(task: _Task, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, list[str]]:
    """Keypoints (N, 14, 3) of the N persons with instance boxes ``boxes`` from the pose file
    (zeros without one), which persons got a pose, how many pose people matched none, and
    the warnings about both."""
    from pascal_person_pose.sources import pose_mat

    keypoints = np.zeros((len(boxes), schema.NUM_JOINTS, 3), np.float32)
    matched = np.zeros(len(boxes), bool)
    if task.fingerprint["pose"] is None:
        return keypoints, matched, 0, []
    path = layout.RawLayout(task.raw).pose_mat(task.voc_id)
    pose = pose_mat.read_pose_mat(path, task.options["side_order"])
    pose_index, instance_index = match_poses(pose.boxes, boxes)
    keypoints[instance_index] = pose.keypoints[pose_index]
    matched[instance_index] = True
    unmatched = np.setdiff1d(np.arange(len(pose.boxes)), pose_index)
    warnings = [f"{task.voc_id}: pose person {i + 1} of {path} overlaps no person instance "
                "left to match; left out" for i in unmatched]
    warnings += [f"{task.voc_id}: person instance {k + 1} has no pose; its keypoints are all "
                 "unlabelled" for k in np.flatnonzero(~matched)]
    return keypoints, matched, len(unmatched), warnings


def match_poses(pose_boxes: np.ndarray, instance_boxes: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching of pose boxes to instance boxes (x1, y1, x2, y2, inclusive pixels)
    maximising the total IoU; returns (pose indices, instance indices) of the pairs with
    IoU > 0. A NaN box (an empty mask) overlaps nothing."""
    from scipy.optimize import linear_sum_assignment

    from pascal_person_pose.metrics.pose_boxes import box_iou

    iou = box_iou(pose_boxes, instance_boxes)
    rows, cols = linear_sum_assignment(iou, maximize=True)
    keep = iou[rows, cols] > 0
    return rows[keep], cols[keep]


def _mask_box(mask: np.ndarray) -> list[float]:
    """Tight inclusive box (x1, y1, x2, y2) of a mask; NaN for an empty mask."""
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    if not len(cols):
        return [np.nan] * 4
    return [cols[0], rows[0], cols[-1], rows[-1]]


def _person_record(mask: np.ndarray, box: np.ndarray, keypoints: np.ndarray, instance: int,
                   instance_pixels: int, pose_matched: bool) -> PersonRecord:
    """The record of one person."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    x1, y1, x2, y2 = box if np.isfinite(box).all() else (0, 0, -1, -1)
    # The shortest decimal of each float32 (str), so the JSON reads back to the same float32.
    kp = keypoints.astype(np.float32)
    return PersonRecord(
        bbox=[float(x1), float(y1), float(x2 - x1 + 1), float(y2 - y1 + 1)],
        area=int(mask.sum()),
        segmentation={"size": [int(s) for s in rle["size"]],
                      "counts": rle["counts"].decode("ascii")},
        keypoints=[float(str(v)) for v in kp.ravel()],
        num_keypoints=int((kp[:, 2] > 0).sum()),
        instance=instance, instance_pixels=instance_pixels, pose_matched=pose_matched)


def _symlink(target: Path, link: Path) -> None:
    """Create (or replace) the symbolic link ``link`` -> ``target`` atomically."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    if os.path.lexists(tmp):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def _commit(out: Path, records: dict[str, ImageRecord]) -> None:
    """Move every staged file into place (all images succeeded, so OUT changes only now);
    a file an image no longer has (fine parts gone from its source) is removed."""
    canonical = layout.CanonicalLayout(out)
    staging = canonical.staging()
    for voc_id, record in records.items():
        staged, final = staging.image_files(voc_id), canonical.image_files(voc_id)
        for kind in final:
            if kind not in record.files:
                for path in (staged[kind], final[kind]):
                    if os.path.lexists(path):
                        path.unlink()
            elif os.path.lexists(staged[kind]):
                final[kind].parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged[kind], final[kind])


def _write_annotations(out: Path, splits: dict[str, list[str]],
                       records: dict[str, ImageRecord]) -> PrepareSummary:
    """Write ``annotations/person_pose_<split>.json`` and summarise the records."""
    canonical = layout.CanonicalLayout(out)
    joints = np.zeros(schema.NUM_JOINTS, np.int64)
    buckets = np.zeros(len(schema.SIZE_BUCKETS), np.int64)
    differing = compared = 0
    summary = PrepareSummary(
        images={s: len(ids) for s, ids in splits.items()}, persons=0, pose_annotated_images=0,
        persons_with_pose=0, labelled_joints={}, size_buckets={}, unmatched_poses=0,
        unmatched_instances=0, parts_from_png=0, parts_from_fine_parts=0, fine_part_maps=0,
        part_disagreement=None, processed=0, resumed=0)
    annotation_id = 1
    for split, ids in splits.items():
        coco = {"images": [], "annotations": [], "categories": [schema.coco_category()],
                "part_categories": schema.part_categories()}
        for voc_id in ids:
            record = records[voc_id]
            image_id = layout.image_id(voc_id)
            coco["images"].append({"id": image_id, "file_name": f"{voc_id}.jpg",
                                   "width": record.width, "height": record.height,
                                   "voc_id": voc_id, "pose_annotated": record.pose_annotated})
            area = record.width * record.height
            for person in record.persons:
                coco["annotations"].append({"id": annotation_id, "image_id": image_id,
                                            "category_id": 1, "iscrowd": 0,
                                            **person.annotation()})
                annotation_id += 1
                visibility = np.asarray(person.keypoints[2::3])
                joints += visibility > 0
                buckets[schema.size_bucket(person.instance_pixels / area)] += 1
                summary.persons_with_pose += person.pose_matched
                summary.unmatched_instances += record.pose_annotated and not person.pose_matched
            summary.persons += len(record.persons)
            summary.pose_annotated_images += record.pose_annotated
            summary.unmatched_poses += record.unmatched_poses
            summary.parts_from_png += record.parts_source == "png"
            summary.parts_from_fine_parts += record.parts_source == "fine_parts"
            summary.fine_part_maps += record.has_fine_parts
            if record.part_disagreement is not None:
                differing += record.part_disagreement[0]
                compared += record.part_disagreement[1]
            summary.warnings += record.warnings
        atomic.write_json(canonical.annotations(split), coco)
    summary.labelled_joints = dict(zip(schema.JOINT_NAMES, joints.tolist()))
    summary.size_buckets = dict(zip(schema.SIZE_BUCKETS, buckets.tolist()))
    summary.part_disagreement = differing / compared if compared else None
    return summary
