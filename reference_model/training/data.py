"""What each training stage learns from: jittered person crops, detector windows, and the
second stage's cached inputs.

Every item's randomness comes from its own generator, seeded by ``(seed, salt, epoch,
index)`` (:func:`item_rng`), so an item is the same whichever process or loader worker
draws it, and a resumed run replays it exactly. Crops are mirrored with the flips of
``pascal_person_pose.transforms``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from torch.utils.data import Dataset as TorchDataset

from pascal_person_pose.dataset import Dataset, Sample
from pascal_person_pose.transforms import hflip_boxes, hflip_image, hflip_keypoints

from ..autozoom import BoxTransform, crop_image, crop_labels
from ..config import ZoomConfig

# Per purpose, in the seeds of the augmentations: no two purposes draw the same crops.
SALT = {"detector": 0, "fcn": 1, "pairwise": 2, "refine": 3}
_MIN_BOX_PX = 2.0  # a person the detector window cuts thinner than this is no target


def item_rng(seed: int, purpose: str, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SALT[purpose], epoch, index])


def edges(coco_boxes: np.ndarray) -> np.ndarray:
    """COCO ``[x, y, w, h]`` -> ``x1, y1, x2, y2`` pixel edges."""
    b = np.asarray(coco_boxes, np.float32).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def coco(edge_boxes: np.ndarray) -> np.ndarray:
    """``x1, y1, x2, y2`` pixel edges -> COCO ``[x, y, w, h]``."""
    b = np.asarray(edge_boxes, np.float32).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


@dataclass
class Crop:
    """One auto-zoomed person crop and everything it is trained or labelled with."""

    image_index: int
    transform: BoxTransform
    flipped: bool  # the crop is mirrored after cropping
    image: np.ndarray  # (s, s, 3) uint8
    labels: np.ndarray  # (s, s) uint8 part ids, 255 outside the image
    keypoints: np.ndarray  # (G, 14, 3) every person of the image, crop pixels
    box: np.ndarray  # (4,) the person's box in crop pixel edges


def crop_labels_of(sample: Sample, transform: BoxTransform, flipped: bool) -> np.ndarray:
    """The part labels of a (possibly mirrored) crop."""
    labels = crop_labels(sample.part_map, transform)
    return hflip_image(labels) if flipped else labels


def person_crop(sample: Sample, image_index: int, box: np.ndarray, zoom: ZoomConfig,
                rng: np.random.Generator | None = None, box_jitter: float = 0.0,
                scale_jitter: float = 0.0) -> Crop:
    """The crop of ``box`` (pixel edges); with ``rng``, a jittered and maybe mirrored one."""
    box = np.asarray(box, np.float64)
    flipped = False
    if rng is not None:
        size = box[2:] - box[:2]
        centre = (box[:2] + box[2:]) / 2 + rng.uniform(-box_jitter, box_jitter, 2) * size
        half = size * np.exp(rng.uniform(-scale_jitter, scale_jitter)) / 2
        box = np.concatenate([centre - half, centre + half])
        flipped = bool(rng.random() < 0.5)
    t = BoxTransform.around_box(box, zoom.crop_size, zoom.margin)
    image = crop_image(sample.image, t)
    keypoints = t.keypoints_to_crop(sample.keypoints)
    crop_box = t.boxes_to_crop(box)
    if flipped:
        image = hflip_image(image)
        keypoints = hflip_keypoints(keypoints, t.width)
        crop_box = edges(hflip_boxes(coco(crop_box), t.width))[0]
    return Crop(image_index, t, flipped, image, crop_labels_of(sample, t, flipped),
                keypoints, crop_box)


def training_persons(dataset: Dataset) -> list[tuple[int, int, np.ndarray]]:
    """(image index, person index, box edges) of every person of the split whose box has
    a positive size."""
    persons = []
    for index in range(len(dataset)):
        for person, box in enumerate(edges(dataset[index].boxes)):
            if (box[2:] > box[:2]).all():
                persons.append((index, person, box))
    return persons


class PersonCrops(TorchDataset):
    """Crops of the training persons, jittered unless ``box_jitter`` and ``scale_jitter``
    are 0 and ``purpose`` is None; ``epoch`` selects the augmentations."""

    def __init__(self, dataset: Dataset, zoom: ZoomConfig, seed: int, purpose: str | None,
                 box_jitter: float = 0.0, scale_jitter: float = 0.0):
        self.dataset, self.zoom, self.seed, self.purpose = dataset, zoom, seed, purpose
        self.box_jitter, self.scale_jitter, self.epoch = box_jitter, scale_jitter, 0
        self.persons = training_persons(dataset)

    def __len__(self) -> int:
        return len(self.persons)

    def __getitem__(self, index: int) -> Crop:
        image_index, _, box = self.persons[index]
        rng = None if self.purpose is None else item_rng(self.seed, self.purpose,
                                                         self.epoch, index)
        return person_crop(self.dataset[image_index], image_index, box, self.zoom, rng,
                           self.box_jitter, self.scale_jitter)


class DetectorWindows(TorchDataset):
    """Training images rescaled (around the detector's input scale: the longer side to
    ``width``), shifted and mirrored into a ``width`` x ``height`` window; items are
    (window, boxes in window edges)."""

    def __init__(self, dataset: Dataset, width: int, height: int, scale_jitter: float,
                 seed: int):
        self.dataset, self.scale_jitter, self.seed = dataset, scale_jitter, seed
        self.width, self.height = width, height
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = item_rng(self.seed, "detector", self.epoch, index)
        sample = self.dataset[index]
        image, boxes = sample.image, sample.boxes
        height, width = image.shape[:2]
        if rng.random() < 0.5:
            image, boxes = hflip_image(image), hflip_boxes(boxes, width)
        scale = self.width / max(width, height) * np.exp(
            rng.uniform(-self.scale_jitter, self.scale_jitter))
        # the window's size in image pixels
        side_x, side_y = self.width / scale, self.height / scale
        x0 = rng.uniform(min(0.0, width - side_x), max(0.0, width - side_x))
        y0 = rng.uniform(min(0.0, height - side_y), max(0.0, height - side_y))
        t = BoxTransform(x0, y0, scale, self.width, self.height)
        inside = np.clip(t.boxes_to_crop(edges(boxes)), 0, [self.width, self.height] * 2)
        visible = (inside[:, 2:] - inside[:, :2] >= _MIN_BOX_PX).all(1)
        return crop_image(image, t), inside[visible]


class RefineExamples(TorchDataset):
    """The cached second-stage inputs: first-stage logits, the inferred pose, the labels."""

    def __init__(self, dataset: Dataset, cache: Mapping[str, np.ndarray]):
        self.dataset, self.cache, self.epoch = dataset, cache, 0

    def __len__(self) -> int:
        return len(self.cache["image_index"])

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sample = self.dataset[int(self.cache["image_index"][index])]
        x0, y0, scale, width, height = self.cache["transform"][index]
        t = BoxTransform(float(x0), float(y0), float(scale), int(width), int(height))
        labels = crop_labels_of(sample, t, bool(self.cache["flipped"][index]))
        return self.cache["logits"][index], self.cache["pose"][index], labels
