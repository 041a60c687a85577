"""Conformance of the readers and writers with the real PASCAL-Part files in shared/."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from pascal_person_pose.schema import IGNORE_LABEL, NUM_PARTS, name2part
from pascal_person_pose.sources import pascal_part, voc

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "upstream-samples" / "pascal-part"
# From the samples' README: the files with people, 19 persons in all.
WITH_PEOPLE = {"2008_000652", "2008_000700", "2008_000726", "2008_000939", "2008_003228",
               "2009_001103", "2010_002526", "2010_005243"}

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"{SAMPLES} is absent")


def sample_files():
    return sorted(SAMPLES.glob("*.mat")) if SAMPLES.is_dir() else []


def structure(value):
    """What loadmat returns, reduced to types, dtypes, shapes and nesting (no pixel values)."""
    if value.dtype.names:
        return ("struct", value.shape, value.dtype.names,
                [[structure(element[name]) for name in value.dtype.names]
                 for element in value.ravel()])
    if value.dtype == object:
        return ("cell", value.shape, [structure(element) for element in value.ravel()])
    return (value.dtype.str, value.shape)


def test_all_samples_are_there():
    files = sample_files()
    assert len(files) == 18
    assert all(f.with_suffix(".jpg").is_file() for f in files)


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: p.stem)
def test_masks_match_the_image_and_parts_lie_inside_objects(path):
    imname, objects = pascal_part.read_anno(path)
    assert imname == path.stem
    width, height = voc.image_size(path.with_suffix(".jpg"))
    assert objects
    for obj in objects:
        assert obj.mask.shape == (height, width)
        assert obj.mask.any()
        for _, mask in obj.parts:
            assert mask.shape == (height, width)
            assert not (mask & ~obj.mask).any()


def test_persons_of_every_sample(tmp_path):
    counts = {}
    for path in sample_files():
        persons = pascal_part.read_persons(path)
        counts[path.stem] = len(persons)
        height, width = voc.read_image(path.with_suffix(".jpg")).shape[:2]
        for person in persons:
            assert person.mask.dtype == bool and person.mask.shape == (height, width)
            assert person.part_map.dtype == np.uint8
            assert person.part_map.max() < NUM_PARTS
            assert not person.part_map[~person.mask].any()
            # the fine parts cover nearly all of each silhouette in the real data
            assert (person.part_map[person.mask] > 0).mean() > 0.9
        merged = pascal_part.merge_part_maps(persons, (height, width))
        assert merged.max() < NUM_PARTS and IGNORE_LABEL not in merged
        owner = np.zeros((height, width), int)
        for index, person in enumerate(persons, start=1):
            owner[person.mask] = index
        for index, person in enumerate(persons, start=1):
            assert np.array_equal(merged[owner == index], person.part_map[owner == index])
        assert not merged[owner == 0].any()
    assert {stem for stem, n in counts.items() if n} == WITH_PEOPLE
    assert sum(counts.values()) == 19


def test_neck_in_head_moves_only_neck_pixels():
    head, torso = name2part["head"].id, name2part["torso"].id
    moved = 0
    for stem in sorted(WITH_PEOPLE):
        path = SAMPLES / f"{stem}.mat"
        for default, necked in zip(pascal_part.read_persons(path),
                                   pascal_part.read_persons(path, neck_in_head=True),
                                   strict=True):
            changed = default.part_map != necked.part_map
            assert (default.part_map[changed] == torso).all()
            assert (necked.part_map[changed] == head).all()
            moved += changed.sum()
    assert moved > 0


def test_other_classes_are_kept_by_read_anno_and_skipped_by_read_persons():
    path = SAMPLES / "2010_005243.mat"
    _, objects = pascal_part.read_anno(path)
    assert [o.class_name for o in objects] == ["person"] * 6 + ["chair"] * 3 + [
        "tvmonitor", "horse"]
    assert [o.class_ind for o in objects][-2:] == [20, 13]
    assert objects[6].parts == [] and [n for n, _ in objects[9].parts] == ["screen"]
    assert len(pascal_part.read_persons(path)) == 6
    assert pascal_part.read_persons(SAMPLES / "2010_001199.mat") == []  # chairs, a table


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: p.stem)
def test_write_anno_reproduces_the_upstream_file(path, tmp_path):
    imname, objects = pascal_part.read_anno(path)
    out = tmp_path / path.name
    pascal_part.write_anno(out, imname, objects)
    real, written = scipy.io.loadmat(path), scipy.io.loadmat(out)
    assert sorted(k for k in written if not k.startswith("__")) == ["anno"]
    assert written["__version__"] == real["__version__"]
    assert structure(written["anno"]) == structure(real["anno"])
    a, b = real["anno"][0, 0], written["anno"][0, 0]
    assert a["imname"] == b["imname"]
    for x, y in zip(a["objects"].ravel(), b["objects"].ravel(), strict=True):
        assert x["class"] == y["class"] and x["class_ind"] == y["class_ind"]
        assert np.array_equal(x["mask"], y["mask"])
        for p, q in zip(x["parts"].ravel(), y["parts"].ravel(), strict=True):
            assert p["part_name"] == q["part_name"] and np.array_equal(p["mask"], q["mask"])
