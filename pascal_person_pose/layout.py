"""Where files live: the upstream (raw) layout and the canonical dataset layout.

Every module that reads or writes either tree takes its paths from here, so the layouts
(specified in docs/formats.md) are spelled once.

Raw (what ``ppp download`` fetches and ``ppp synth`` writes)::

    RAW/VOCdevkit/VOC2010/JPEGImages/<id>.jpg
    RAW/Annotations_Part/<id>.mat
    RAW/pascal_person_part/pascal_person_part_gt/<id>.png
    RAW/pascal_person_part/pascal_person_part_trainval_list/{train_id,val_id}.txt
    RAW/pose_annotations/<id>.mat

Canonical (what ``ppp prepare`` writes and everything else reads)::

    ROOT/images/<id>.jpg          a symbolic link to the raw JPEG, or a copy (--copy-images)
    ROOT/parts/<id>.png           uint8 part ids 0-6, 255 ignore
    ROOT/parts_fine/<id>.png      uint8 PASCAL-Part person part ids (schema.FINE_PARTS), 0 none;
                                  only for images whose source has fine parts
    ROOT/instances/<id>.png       uint8 person index 1..N, 0 none
    ROOT/annotations/person_pose_<split>.json

``ppp prepare`` keeps its state beside them: ``ROOT/.prepare/records/<id>.json`` (what it
learnt of an image) and ``ROOT/.prepare/staged/``, a canonical tree of the files not yet
moved into place.
"""

from __future__ import annotations

from pathlib import Path

SPLITS = ("train", "val")


class RawLayout:
    """Paths of the upstream tree rooted at ``root``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.jpeg_dir = self.root / "VOCdevkit" / "VOC2010" / "JPEGImages"
        self.part_mat_dir = self.root / "Annotations_Part"
        self.person_part_dir = self.root / "pascal_person_part"
        self.label_png_dir = self.person_part_dir / "pascal_person_part_gt"
        self.list_dir = self.person_part_dir / "pascal_person_part_trainval_list"
        self.pose_mat_dir = self.root / "pose_annotations"

    def jpeg(self, voc_id: str) -> Path:
        return self.jpeg_dir / f"{voc_id}.jpg"

    def part_mat(self, voc_id: str) -> Path:
        return self.part_mat_dir / f"{voc_id}.mat"

    def label_png(self, voc_id: str) -> Path:
        return self.label_png_dir / f"{voc_id}.png"

    def id_list(self, split: str) -> Path:
        return self.list_dir / f"{split}_id.txt"

    def pose_mat(self, voc_id: str) -> Path:
        return self.pose_mat_dir / f"{voc_id}.mat"


class CanonicalLayout:
    """Paths of the canonical dataset rooted at ``root``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.image_dir = self.root / "images"
        self.part_dir = self.root / "parts"
        self.fine_part_dir = self.root / "parts_fine"
        self.instance_dir = self.root / "instances"
        self.annotation_dir = self.root / "annotations"
        self.prepare_dir = self.root / ".prepare"

    def image(self, voc_id: str) -> Path:
        return self.image_dir / f"{voc_id}.jpg"

    def parts(self, voc_id: str) -> Path:
        return self.part_dir / f"{voc_id}.png"

    def fine_parts(self, voc_id: str) -> Path:
        return self.fine_part_dir / f"{voc_id}.png"

    def instances(self, voc_id: str) -> Path:
        return self.instance_dir / f"{voc_id}.png"

    def image_files(self, voc_id: str) -> dict[str, Path]:
        """Every per-image file of the tree, by kind (the fine parts may be absent)."""
        return {"image": self.image(voc_id), "parts": self.parts(voc_id),
                "parts_fine": self.fine_parts(voc_id), "instances": self.instances(voc_id)}

    def annotations(self, split: str) -> Path:
        return self.annotation_dir / f"person_pose_{split}.json"

    def prepare_record(self, voc_id: str) -> Path:
        """``ppp prepare``'s record of one image."""
        return self.prepare_dir / "records" / f"{voc_id}.json"

    def staging(self) -> "CanonicalLayout":
        """The tree where ``ppp prepare`` stages files until every image has succeeded."""
        return CanonicalLayout(self.prepare_dir / "staged")


def image_id(voc_id: str) -> int:
    """COCO image id of a VOC id: the digits without the underscore (2008_000652 -> 2008000652)."""
    return int(voc_id.replace("_", ""))


def voc_id(image_id: int) -> str:
    """Inverse of :func:`image_id` (2008000652 -> 2008_000652)."""
    digits = f"{image_id:010d}"
    return f"{digits[:4]}_{digits[4:]}"
