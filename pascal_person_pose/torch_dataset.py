"""The torch adapter: the canonical dataset as a ``torch.utils.data.Dataset``.

This is the one library module that imports torch; nothing imports it unless asked, so the
toolkit stays usable without torch. Transforms are the numpy ones of ``transforms.py``:
image, part map, instance map, masks, joints and boxes move together. Their random numbers
come from a generator seeded from torch's own generator for every item, so
``torch.manual_seed`` makes a run repeatable and each data-loader worker (which torch
seeds differently per worker and epoch) draws its own augmentations.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset as _TorchDataset

from pascal_person_pose import schema
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.transforms import SampleArrays, Transform


class TorchDataset(_TorchDataset):
    """Samples as tensors: ``image`` (3, H, W) float32 in [0, 1], ``part_map`` (H, W) int64
    (255 ignore), ``instance_map`` (H, W) int64, ``masks`` (G, H, W) bool, ``keypoints``
    (G, 14, 3) float32, ``boxes`` (G, 4) float32 COCO [x, y, w, h], ``image_id`` int64."""

    def __init__(self, dataset: Dataset, transform: Transform | None = None):
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.dataset[index]
        arrays = SampleArrays.from_sample(sample)
        if self.transform is not None:
            seed = int(torch.randint(np.iinfo(np.int64).max, ()).item())
            arrays = self.transform(arrays, np.random.default_rng(seed))
        # The image is scaled in numpy: a per-sample torch op would start torch's intra-op
        # threads, which on a busy machine wait for a core for milliseconds each time.
        image = np.ascontiguousarray(arrays.image.transpose(2, 0, 1), dtype=np.float32)
        image *= np.float32(1 / 255)
        return {
            "image": torch.from_numpy(image),
            "part_map": torch.from_numpy(arrays.part_map.astype(np.int64)),
            "instance_map": torch.from_numpy(arrays.instance_map.astype(np.int64)),
            "masks": torch.from_numpy(np.ascontiguousarray(arrays.masks)),
            "keypoints": torch.from_numpy(arrays.keypoints.astype(np.float32)),
            "boxes": torch.from_numpy(arrays.boxes.astype(np.float32)),
            "image_id": torch.tensor(sample.image_id, dtype=torch.int64),
        }


def collate(batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Batch samples of different sizes and person counts by padding.

    Pixels are padded at the bottom and right (image 0, part map 255 ignore, instance map 0,
    masks false) to the largest image; persons are padded to the largest count with
    all-zero joints and boxes. ``person_valid`` (B, P) marks real persons and
    ``image_size`` (B, 2) holds each image's height and width before padding.
    """
    height = max(item["image"].shape[1] for item in batch)
    width = max(item["image"].shape[2] for item in batch)
    persons = max(item["keypoints"].shape[0] for item in batch)
    size = len(batch)
    out = {
        "image": torch.zeros(size, 3, height, width),
        "part_map": torch.full((size, height, width), schema.IGNORE_LABEL, dtype=torch.int64),
        "instance_map": torch.zeros(size, height, width, dtype=torch.int64),
        "masks": torch.zeros(size, persons, height, width, dtype=torch.bool),
        "keypoints": torch.zeros(size, persons, schema.NUM_JOINTS, 3),
        "boxes": torch.zeros(size, persons, 4),
        "person_valid": torch.zeros(size, persons, dtype=torch.bool),
        "image_size": torch.tensor([item["image"].shape[1:] for item in batch], dtype=torch.int64),
        "image_id": torch.stack([item["image_id"] for item in batch]),
    }
    for b, item in enumerate(batch):
        h, w = item["image"].shape[1:]
        g = item["keypoints"].shape[0]
        out["image"][b, :, :h, :w] = item["image"]
        out["part_map"][b, :h, :w] = item["part_map"]
        out["instance_map"][b, :h, :w] = item["instance_map"]
        out["masks"][b, :g, :h, :w] = item["masks"]
        out["keypoints"][b, :g] = item["keypoints"]
        out["boxes"][b, :g] = item["boxes"]
        out["person_valid"][b, :g] = True
    return out
