"""Synthetic scenes written as an upstream tree (``layout.RawLayout``), so that ``ppp
prepare`` runs the same code path on them as on the real downloads.

Per image: the VOC JPEG (quality 60-95, so the JPEG noise varies), the PASCAL-Part
``.mat`` (persons with fine parts and other objects, in shuffled order as upstream files
are), the Person-Part label PNG (mostly palette, some grayscale-colour and raw-id files,
as the real releases mix them), and the pose ``.mat`` (persons in another shuffled order,
so consumers must match people between the two files, as for the real data); then the
train/val id lists. Image ``i`` depends only on ``(seed, i)``, so a tree is the same
whatever the number of worker processes, and a larger tree extends a smaller one.
Ids are ``2008_000001`` upwards; files of the same ids in an existing tree are replaced.
"""

from __future__ import annotations

import os
from collections import Counter
from contextlib import nullcontext
from functools import partial
from pathlib import Path

import numpy as np

from pascal_person_pose import progress as progress_bar
from pascal_person_pose import schema
from pascal_person_pose.errors import InputError
from pascal_person_pose.layout import RawLayout
from pascal_person_pose.sources import pascal_part, person_part, pose_mat, voc
from pascal_person_pose.synth.scene import render_scene
from pascal_person_pose.workers import process_pool

ENCODINGS = ("palette", "gray", "raw")
_ENCODING_P = (0.8, 0.1, 0.1)
MAX_IMAGES = 999_999
MIN_SIDE, MAX_SIDE = 32, 4096


def synth_id(index: int) -> str:
    """The VOC-style id of image ``index`` (0-based): 2008_000001, 2008_000002, ..."""
    return f"2008_{index + 1:06d}"


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index``: independent of every other image and of workers."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def _write_image(root: str, seed: int, width: int, height: int, index: int) -> dict:
    """Render and write one image; returns its counts for the summary."""
    layout = RawLayout(root)
    name = synth_id(index)
    rng = image_rng(seed, index)
    scene = render_scene(rng, width, height)
    voc.write_jpeg(layout.jpeg(name), scene.image, quality=int(rng.integers(60, 96)))
    objects = [pascal_part.PartObject("person", 15, p.mask, p.parts) for p in scene.persons]
    objects += [pascal_part.PartObject(o.class_name, o.class_ind, o.mask, o.parts)
                for o in scene.objects]
    pascal_part.write_anno(layout.part_mat(name), name,
                           [objects[i] for i in rng.permutation(len(objects))])
    encoding = ENCODINGS[rng.choice(len(ENCODINGS), p=_ENCODING_P)]
    person_part.write_label_png(layout.label_png(name), scene.part_labels(), encoding)
    order = rng.permutation(len(scene.persons))
    pose_mat.write_pose_mat(layout.pose_mat(name), scene.keypoints[order], scene.boxes[order])
    sizes = [p.mask.sum() / (width * height) for p in scene.persons]
    v = scene.keypoints[..., 2].astype(int).ravel()
    return {
        "persons": len(scene.persons),
        "objects": len(scene.objects),
        "size_buckets": Counter(schema.SIZE_BUCKETS[b] for b in schema.size_bucket(sizes)),
        "truncated": sum(p.truncated for p in scene.persons),
        "occluded": sum(p.occluded for p in scene.persons),
        "joints": Counter({"unlabelled": int((v == 0).sum()), "occluded": int((v == 1).sum()),
                           "visible": int((v == 2).sum())}),
        "label_encodings": Counter([encoding]),
    }


def _check(out: Path, n_images: int, seed: int, width: int, height: int,
           val_fraction: float, workers: int) -> None:
    def bad(field: str, message: str) -> InputError:
        return InputError(out, message, field=field)

    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a directory")
    if not 1 <= n_images <= MAX_IMAGES:
        raise bad("images", f"must be between 1 and {MAX_IMAGES}, got {n_images}")
    if seed < 0:
        raise bad("seed", f"must be >= 0, got {seed}")
    for field, side in (("width", width), ("height", height)):
        if not MIN_SIDE <= side <= MAX_SIDE:
            raise bad(field, f"must be between {MIN_SIDE} and {MAX_SIDE} pixels, got {side}")
    if not 0.0 <= val_fraction <= 1.0:
        raise bad("val_fraction", f"must be between 0 and 1, got {val_fraction}")
    if workers < 1:
        raise bad("workers", f"must be >= 1, got {workers}")


def write_raw_tree(out: str | os.PathLike, n_images: int, seed: int, width: int = 320,
                   height: int = 240, val_fraction: float = 0.5, workers: int = 1,
                   progress: bool = True) -> dict:
    """Render ``n_images`` scenes into the upstream layout under ``out``; returns a summary
    (counts of images per split, persons per size bucket, truncated and occluded persons,
    joints per visibility, objects, label PNG encodings).

    ``round(n_images * val_fraction)`` images, drawn at random from ``seed``, go to val.
    """
    out = Path(out)
    _check(out, n_images, seed, width, height, val_fraction, workers)
    write = partial(_write_image, str(out), seed, width, height)
    with process_pool(workers) if workers > 1 else nullcontext() as pool:
        images = map(write, range(n_images)) if pool is None else \
            pool.map(write, range(n_images), chunksize=max(1, n_images // (4 * workers)))
        stats = list(progress_bar.bar(images, desc="synth", total=n_images, unit="img",
                                      enabled=progress))
    layout = RawLayout(out)
    val = set(np.random.default_rng(seed).permutation(n_images)[:round(n_images * val_fraction)]
              .tolist())
    voc.write_id_list(layout.id_list("train"),
                      [synth_id(i) for i in range(n_images) if i not in val])
    voc.write_id_list(layout.id_list("val"), [synth_id(i) for i in sorted(val)])

    def total(key: str, names: tuple[str, ...]) -> dict[str, int]:
        counts = sum((s[key] for s in stats), Counter())
        return {name: counts[name] for name in names}

    return {
        "out": str(out),
        "seed": seed,
        "width": width,
        "height": height,
        "images": n_images,
        "train": n_images - len(val),
        "val": len(val),
        "persons": sum(s["persons"] for s in stats),
        "size_buckets": total("size_buckets", schema.SIZE_BUCKETS),
        "truncated": sum(s["truncated"] for s in stats),
        "occluded": sum(s["occluded"] for s in stats),
        "joints": total("joints", ("visible", "occluded", "unlabelled")),
        "objects": sum(s["objects"] for s in stats),
        "label_encodings": total("label_encodings", ENCODINGS),
    }
