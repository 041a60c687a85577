"""Fine parts with their sides: the schema table, `ppp prepare`'s parts_fine/<id>.png and
`Dataset.fine_part_map`, on hand-made, synthetic and real PASCAL-Part files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pascal_person_pose import layout, schema
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.errors import InputError
from pascal_person_pose.label.accuracy import link_part_samples
from pascal_person_pose.prepare import prepare
from pascal_person_pose.sources import pascal_part
from test_prepare import _person, write_raw_fixture

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "upstream-samples" / "pascal-part"


def test_fine_part_table_is_the_devkit_person_labels():
    # PASCAL-Part's part2ind.m numbers the person parts 1-24 in this order.
    devkit = ("head", "leye", "reye", "lear", "rear", "lebrow", "rebrow", "nose", "mouth",
              "hair", "torso", "neck", "llarm", "luarm", "lhand", "rlarm", "ruarm", "rhand",
              "llleg", "luleg", "lfoot", "rlleg", "ruleg", "rfoot")
    assert {f.name: f.id for f in schema.FINE_PARTS} == {n: i for i, n in enumerate(devkit, 1)}
    for fine in schema.FINE_PARTS:
        # the side is the name's l/r prefix exactly when the mirror name exists
        mirror = {"l": "r", "r": "l"}.get(fine.name[0], "") + fine.name[1:]
        assert fine.side == (fine.name[0] if mirror in schema.name2fine else None)
        assert fine.name in schema.name2part[fine.part].fine_parts
        assert schema.FINE_ID_TO_PART[fine.id] == schema.FINE_PART_TO_ID[fine.name]
        assert schema.FINE_ID_SIDE[fine.id] == {"l": -1, "r": 1, None: 0}[fine.side]
    assert schema.FINE_ID_TO_PART[0] == 0 and len(schema.FINE_ID_TO_PART) == 25
    assert [c["id"] for c in schema.fine_part_categories()] == list(range(1, 25))


def _expected_fine(objects, shape):
    """Independent re-statement: fine ids painted in file order, persons over whole
    silhouettes in file order."""
    out = np.zeros(shape, np.uint8)
    for obj in objects:
        if obj.class_name == "person":
            own = np.zeros(shape, np.uint8)
            for name, mask in obj.parts:
                own[mask] = schema.name2fine[name].id
            out[obj.mask] = own[obj.mask]
    return out


def test_prepare_writes_fine_part_maps_that_dataset_reads_back(tmp_path):
    written = write_raw_fixture(tmp_path / "raw")
    out = tmp_path / "out"
    summary = prepare(tmp_path / "raw", out, workers=1, progress=False)
    assert summary.fine_part_maps == 4
    seen = 0
    for split in layout.SPLITS:
        for sample in Dataset(out, split):
            want = written["images"][sample.voc_id]
            fine = sample.fine_part_map
            expected = _expected_fine(want["objects"], fine.shape)
            np.testing.assert_array_equal(fine, expected)
            # the 6-class map is unchanged, and where it is the merge of the fine parts,
            # the fine map's classes are exactly it
            np.testing.assert_array_equal(sample.part_map, want["parts"])
            np.testing.assert_array_equal(schema.FINE_ID_TO_PART[fine], want["fine_parts"])
            assert Image.open(layout.CanonicalLayout(out).fine_parts(sample.voc_id)).mode == "P"
            seen += 1
    assert seen == 4


def test_an_image_without_fine_parts_has_no_fine_map_even_after_an_earlier_run(tmp_path):
    written = write_raw_fixture(tmp_path / "raw")
    out = tmp_path / "out"
    prepare(tmp_path / "raw", out, workers=1, progress=False)
    fine_file = layout.CanonicalLayout(out).fine_parts("2009_000003")
    assert fine_file.is_file()
    # the source loses its fine parts: the re-run redoes the image and drops the stale map
    want = written["images"]["2009_000003"]
    shape = (want["height"], want["width"])
    bare = [_person(shape, (10, 5, 40, 38), with_parts=False)]
    pascal_part.write_anno(layout.RawLayout(tmp_path / "raw").part_mat("2009_000003"),
                           "2009_000003", bare)
    summary = prepare(tmp_path / "raw", out, workers=1, progress=False)
    assert summary.processed == 1 and summary.fine_part_maps == 3
    assert not fine_file.exists()
    sample = Dataset(out, "val")[Dataset(out, "val").index_of("2009_000003")]
    assert sample.fine_part_map is None and sample.part_map.shape == shape


def test_a_broken_fine_map_is_one_named_error(tmp_path):
    write_raw_fixture(tmp_path / "raw")
    out = tmp_path / "out"
    prepare(tmp_path / "raw", out, workers=1, progress=False)
    path = layout.CanonicalLayout(out).fine_parts("2009_000003")
    fine = np.asarray(Image.open(path)).copy()
    fine[0, 0] = 40
    Image.fromarray(fine, "L").save(path)
    with pytest.raises(InputError, match=r"parts_fine.*\[40\] are not fine part ids"):
        _ = Dataset(out, "val")[0].fine_part_map


def test_synthetic_fine_parts_carry_the_persons_own_sides(tmp_path):
    """Through synth and prepare, a visible joint of a side lies on a fine part of that
    side or of the centre line, for persons facing the camera and facing away alike."""
    from pascal_person_pose.synth import write_raw_tree

    write_raw_tree(tmp_path / "raw", 6, seed=11)
    prepare(tmp_path / "raw", tmp_path / "out", workers=1, progress=False)
    sided = agree = 0
    for split in layout.SPLITS:
        for sample in Dataset(tmp_path / "out", split):
            fine = sample.fine_part_map
            np.testing.assert_array_equal(schema.FINE_ID_TO_PART[fine], sample.part_map)
            for person in sample.persons:
                own = sample.instance_map == person.instance
                for j in np.flatnonzero(person.keypoints[:, 2] == 2):
                    side = {"r": 1, "l": -1}.get(schema.JOINT_NAMES[j][0], 0)
                    x, y = np.round(person.keypoints[j, :2]).astype(int)
                    label = schema.FINE_ID_SIDE[fine[y, x]] if own[y, x] else 0
                    if side and label:
                        sided += 1
                        agree += label == side
    assert sided > 50 and agree == sided


@pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"{SAMPLES} is absent")
def test_real_pascal_part_fine_parts_round_trip(tmp_path):
    ids = link_part_samples(SAMPLES, tmp_path / "raw")
    summary = prepare(tmp_path / "raw", tmp_path / "out", workers=1, progress=False)
    assert len(ids) == 18 and summary.fine_part_maps == 8  # the 8 images with people
    dataset = Dataset(tmp_path / "out", "val")
    for sample in dataset:
        persons = pascal_part.read_persons(SAMPLES / f"{sample.voc_id}.mat")
        if not persons:
            assert sample.fine_part_map is None
            continue
        _, objects = pascal_part.read_anno(SAMPLES / f"{sample.voc_id}.mat")
        np.testing.assert_array_equal(sample.fine_part_map,
                                      _expected_fine(objects, sample.part_map.shape))
        np.testing.assert_array_equal(schema.FINE_ID_TO_PART[sample.fine_part_map],
                                      sample.part_map)
