"""The schema is docs/formats.md's to the letter; these tests pin it."""

import subprocess
import sys

import numpy as np

from pascal_person_pose import schema


def test_joint_order_is_the_canonical_one():
    assert schema.JOINT_NAMES == (
        "forehead", "neck", "r_shoulder", "r_elbow", "r_wrist", "r_hip", "r_knee", "r_ankle",
        "l_shoulder", "l_elbow", "l_wrist", "l_hip", "l_knee", "l_ankle")
    assert [j.index for j in schema.JOINTS] == list(range(14))


def test_part_ids_and_grayscale_renderings():
    assert schema.PART_NAMES == ("background", "head", "torso", "upper_arm", "lower_arm",
                                 "upper_leg", "lower_leg")
    # The grayscale values are the VOC colours through ITU-R 601 luma, truncated.
    for part in schema.PARTS:
        r, g, b = part.colour
        assert int(0.299 * r + 0.587 * g + 0.114 * b) == part.gray
    palette = schema.voc_palette()
    assert [tuple(palette[3 * p.id:3 * p.id + 3]) for p in schema.PARTS] == [
        p.colour for p in schema.PARTS]


def test_flip_pairs_mirror_sides():
    assert schema.FLIP_PAIRS == ((2, 8), (3, 9), (4, 10), (5, 11), (6, 12), (7, 13))
    assert np.array_equal(schema.FLIP_INDEX[schema.FLIP_INDEX], np.arange(14))
    for a, b in schema.FLIP_PAIRS:
        assert schema.JOINT_NAMES[a][2:] == schema.JOINT_NAMES[b][2:]


def test_skeleton_edges_and_their_parts():
    assert len(schema.SKELETON) == 14
    names = {(e.a, e.b): e.part for e in schema.SKELETON}
    assert names[("forehead", "neck")] == "head"
    assert names[("r_hip", "l_hip")] == "torso"
    assert names[("l_knee", "l_ankle")] == "lower_leg"
    # every bone lies in a part that both of its joints touch, except the torso edges
    # from the neck, which the schema links to the torso
    for edge in schema.SKELETON:
        a, b = schema.name2joint[edge.a], schema.name2joint[edge.b]
        assert edge.part in a.parts or edge.part in b.parts


def test_fine_parts_map_to_six_classes():
    assert schema.FINE_PART_TO_ID["neck"] == schema.name2part["torso"].id
    assert schema.FINE_PART_TO_ID["rhand"] == schema.name2part["lower_arm"].id
    assert len(schema.FINE_PART_TO_ID) == 24
    assert set(schema.FINE_PART_TO_ID.values()) == set(range(1, 7))


def test_coco_category_skeleton_is_one_based():
    cat = schema.coco_category()
    assert cat["keypoints"] == list(schema.JOINT_NAMES)
    assert [1, 2] in cat["skeleton"] and min(min(e) for e in cat["skeleton"]) == 1


def test_size_buckets_thresholds_are_inclusive_below():
    got = schema.size_bucket(np.array([0.0, 0.00499, 0.005, 0.0199, 0.02, 0.0799, 0.08, 1.0]))
    assert got.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_importing_the_library_does_not_import_torch():
    code = ("import sys, pascal_person_pose, pascal_person_pose.cli, pascal_person_pose.schema;"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
