"""PASCAL-Part Annotations_Part .mat: fixtures built by hand in the upstream struct layout."""

import numpy as np
import pytest
import scipy.io

from pascal_person_pose import schema
from pascal_person_pose.errors import InputError
from pascal_person_pose.schema import name2part
from pascal_person_pose.sources import pascal_part
from pascal_person_pose.sources.pascal_part import PartObject, PersonInstance

H, W = 12, 16
HEAD, TORSO, UARM, LARM, ULEG, LLEG = (name2part[n].id for n in (
    "head", "torso", "upper_arm", "lower_arm", "upper_leg", "lower_leg"))


def box(y0, y1, x0, x1):
    mask = np.zeros((H, W), np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def parts_struct(parts):
    """A 1xP struct array (part_name, mask), or MATLAB's empty 0x0 double when none."""
    if parts is None:
        return np.zeros((0, 0))
    struct = np.empty((1, len(parts)) if parts else (0, 0),
                      dtype=[("part_name", object), ("mask", object)])
    for j, (name, mask) in enumerate(parts):
        struct[0, j] = (name, mask)
    return struct


def save_anno(path, objects, imname="2008_000001"):
    """Write ``objects`` [(class, class_ind, mask, parts)] exactly as upstream lays them out."""
    struct = np.empty((1, len(objects)), dtype=[
        ("class", object), ("class_ind", object), ("mask", object), ("parts", object)])
    for i, (cls, ind, mask, parts) in enumerate(objects):
        struct[0, i] = (cls, np.array([[ind]], np.uint8), mask, parts_struct(parts))
    anno = np.empty((1, 1), dtype=[("imname", object), ("objects", object)])
    anno[0, 0] = (imname, struct)
    scipy.io.savemat(path, {"anno": anno}, do_compression=True)
    return path


def person_a():
    """A person whose arm is drawn over the torso and whose neck overlaps the torso."""
    return ("person", 15, box(0, 12, 0, 8), [
        ("head", box(0, 3, 2, 6)), ("hair", box(0, 1, 2, 6)), ("torso", box(3, 8, 1, 7)),
        ("neck", box(3, 4, 3, 5)), ("luarm", box(4, 6, 5, 8)), ("llarm", box(6, 8, 6, 8)),
        ("lhand", box(8, 9, 6, 8)), ("ruleg", box(8, 10, 1, 4)), ("rlleg", box(10, 11, 1, 4)),
        ("rfoot", box(11, 12, 1, 4))])


@pytest.fixture
def anno_file(tmp_path):
    cat = ("cat", 8, box(0, 4, 10, 16), [("head", box(0, 2, 10, 12)), ("tail", box(3, 4, 14, 16))])
    chair = ("chair", 9, box(6, 12, 10, 16), None)  # no parts: a 0x0 double
    person_b = ("person", 15, box(2, 12, 6, 12), [("head", box(2, 4, 8, 10)),
                                                  ("torso", box(4, 9, 7, 11))])
    return save_anno(tmp_path / "2008_000001.mat", [person_a(), cat, chair, person_b])


def test_read_anno_returns_every_object_in_file_order(anno_file):
    imname, objects = pascal_part.read_anno(anno_file)
    assert imname == "2008_000001"
    assert [(o.class_name, o.class_ind) for o in objects] == [
        ("person", 15), ("cat", 8), ("chair", 9), ("person", 15)]
    person, cat, chair, _ = objects
    assert person.mask.dtype == bool and person.mask.shape == (H, W)
    assert person.mask.sum() == 12 * 8
    assert [name for name, _ in person.parts][:3] == ["head", "hair", "torso"]
    assert np.array_equal(cat.parts[1][1], box(3, 4, 14, 16).astype(bool))
    assert chair.parts == []


def test_read_persons_merges_fine_parts_later_over_earlier(anno_file):
    persons = pascal_part.read_persons(anno_file)
    assert len(persons) == 2  # the cat and the chair are skipped
    a = persons[0].part_map
    assert a.dtype == np.uint8 and a.shape == (H, W)
    assert a[0, 3] == HEAD  # hair is head
    assert a[3, 3] == TORSO  # neck is torso by default
    assert a[4, 5] == UARM and a[4, 4] == TORSO  # the arm is drawn over the torso
    assert a[6, 6] == LARM and a[8, 7] == LARM  # lower arm and hand
    assert a[9, 2] == ULEG and a[10, 2] == LLEG and a[11, 2] == LLEG
    assert a[11, 7] == 0  # silhouette that no part covers
    assert not a[~persons[0].mask].any()
    assert np.array_equal(np.unique(a), np.arange(7))
    # the fine map keeps what the merge throws away: which part, on which side
    fine = persons[0].fine_map
    assert fine.dtype == np.uint8 and fine[0, 3] == schema.name2fine["hair"].id
    assert np.array_equal(schema.FINE_ID_TO_PART[fine], a)


def test_overlap_rule_follows_file_order(tmp_path):
    cls, ind, mask, _ = person_a()
    first = save_anno(tmp_path / "a.mat", [(cls, ind, mask, [("torso", box(3, 8, 1, 7)),
                                                             ("luarm", box(4, 6, 5, 8))])])
    second = save_anno(tmp_path / "b.mat", [(cls, ind, mask, [("luarm", box(4, 6, 5, 8)),
                                                              ("torso", box(3, 8, 1, 7))])])
    assert pascal_part.read_persons(first)[0].part_map[4, 5] == UARM
    assert pascal_part.read_persons(second)[0].part_map[4, 5] == TORSO


def test_neck_in_head_option(anno_file):
    assert pascal_part.read_persons(anno_file)[0].part_map[3, 3] == TORSO
    assert pascal_part.read_persons(anno_file, neck_in_head=True)[0].part_map[3, 3] == HEAD
    neck = schema.name2fine["neck"].id
    assert pascal_part.fine_to_part(True)[neck] == HEAD
    assert pascal_part.fine_to_part()[neck] == TORSO
    # the fine map keeps the neck whatever the option
    assert pascal_part.read_persons(anno_file, neck_in_head=True)[0].fine_map[3, 3] == neck


def test_parts_are_clipped_to_the_silhouette(tmp_path):
    path = save_anno(tmp_path / "x.mat", [("person", 15, box(0, 6, 0, 6),
                                           [("torso", box(2, 10, 2, 10))])])
    person = pascal_part.read_persons(path)[0]
    assert person.part_map.sum() == TORSO * 16


def test_person_without_parts_and_file_without_persons(tmp_path):
    path = save_anno(tmp_path / "x.mat", [("person", 15, box(0, 6, 0, 6), [])])
    (person,) = pascal_part.read_persons(path)
    assert person.mask.sum() == 36 and not person.part_map.any()
    path = save_anno(tmp_path / "y.mat", [("boat", 4, box(0, 6, 0, 6), None)])
    assert pascal_part.read_persons(path) == []


def test_merge_part_maps_paints_later_persons_over_earlier():
    a = np.zeros((H, W), np.uint8)
    a[:, :8] = TORSO
    b = np.zeros((H, W), np.uint8)
    b[:6, 6:] = HEAD  # b's silhouette covers rows 0-7; rows 6-7 carry no part
    persons = [PersonInstance(a > 0, a, a + 10), PersonInstance(box(0, 8, 6, 16) > 0, b, b + 10)]
    merged = pascal_part.merge_part_maps(persons, (H, W))
    fine = pascal_part.merge_part_maps(persons, (H, W), fine=True)
    assert np.array_equal(fine[merged > 0], merged[merged > 0] + 10)
    assert merged[0, 7] == HEAD and merged[0, 5] == TORSO
    assert merged[7, 7] == 0  # owned by the later person, which has no part there
    assert merged[9, 7] == TORSO
    assert not merged[:, 8:][8:].any()
    assert np.array_equal(pascal_part.merge_part_maps([], (3, 4)), np.zeros((3, 4), np.uint8))
    with pytest.raises(ValueError):
        pascal_part.merge_part_maps(persons, (H + 1, W))


def test_write_anno_round_trips_and_keeps_the_upstream_structure(anno_file, tmp_path):
    imname, objects = pascal_part.read_anno(anno_file)
    out = tmp_path / "out" / "written.mat"
    pascal_part.write_anno(out, imname, objects)
    again = pascal_part.read_anno(out)
    assert again[0] == imname
    for a, b in zip(objects, again[1], strict=True):
        assert (a.class_name, a.class_ind) == (b.class_name, b.class_ind)
        assert np.array_equal(a.mask, b.mask)
        assert [n for n, _ in a.parts] == [n for n, _ in b.parts]
        assert all(np.array_equal(m, n) for (_, m), (_, n) in zip(a.parts, b.parts))
    raw = scipy.io.loadmat(out)["anno"][0, 0]
    chair = raw["objects"][0, 2]
    assert chair["parts"].shape == (0, 0) and chair["parts"].dtype.names == ("part_name", "mask")
    assert raw["objects"][0, 0]["class_ind"].dtype == np.uint8
    assert raw["objects"][0, 0]["mask"].dtype == np.uint8
    assert sorted(p.name for p in out.parent.iterdir()) == ["written.mat"]


def test_write_anno_rejects_mismatched_part_masks(tmp_path):
    obj = PartObject("person", 15, np.ones((4, 4), bool), [("head", np.ones((4, 5), bool))])
    with pytest.raises(ValueError):
        pascal_part.write_anno(tmp_path / "x.mat", "x", [obj])
    assert not (tmp_path / "x.mat").exists()


def one_line_error(excinfo, *needles):
    message = str(excinfo.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_unknown_person_part_names_file_object_and_part(tmp_path):
    cat = ("cat", 8, box(0, 4, 0, 4), [("tail", box(0, 1, 0, 1))])  # a cat may have a tail
    person = ("person", 15, box(0, 6, 0, 6), [("head", box(0, 2, 0, 2)),
                                              ("tail", box(2, 4, 0, 2))])
    path = save_anno(tmp_path / "bad.mat", [cat, person])
    with pytest.raises(InputError) as e:
        pascal_part.read_persons(path)
    one_line_error(e, "bad.mat", "objects(2)", "parts(2).part_name", "'tail'")


def test_class_and_class_ind_must_agree(tmp_path):
    path = save_anno(tmp_path / "bad.mat", [("person", 8, box(0, 4, 0, 4), None)])
    with pytest.raises(InputError) as e:
        pascal_part.read_persons(path)
    one_line_error(e, "bad.mat", "objects(1)", "class_ind")


def test_mask_of_another_size_is_refused(tmp_path):
    path = save_anno(tmp_path / "bad.mat", [("person", 15, box(0, 4, 0, 4),
                                             [("head", np.ones((3, 3), np.uint8))])])
    with pytest.raises(InputError) as e:
        pascal_part.read_anno(path)
    one_line_error(e, "bad.mat", "objects(1)", "parts(1).mask", "3x3", f"{H}x{W}")


@pytest.mark.parametrize("cut", [0, 60, 127, 300, -20, -1])
def test_truncated_file_is_one_input_error(anno_file, tmp_path, cut):
    data = anno_file.read_bytes()
    broken = tmp_path / "truncated.mat"
    broken.write_bytes(data[:cut])
    with pytest.raises(InputError) as e:
        pascal_part.read_anno(broken)
    one_line_error(e, "truncated.mat")


def test_missing_file_and_missing_variable(tmp_path):
    with pytest.raises(InputError) as e:
        pascal_part.read_anno(tmp_path / "absent.mat")
    one_line_error(e, "absent.mat", "not found")
    scipy.io.savemat(tmp_path / "other.mat", {"joints": np.zeros((1, 1))})
    with pytest.raises(InputError) as e:
        pascal_part.read_anno(tmp_path / "other.mat")
    one_line_error(e, "other.mat", "anno")


def test_wrong_struct_fields_are_refused(tmp_path):
    anno = np.empty((1, 1), dtype=[("imname", object), ("things", object)])
    anno[0, 0] = ("x", np.zeros((1, 1)))
    scipy.io.savemat(tmp_path / "bad.mat", {"anno": anno})
    with pytest.raises(InputError) as e:
        pascal_part.read_anno(tmp_path / "bad.mat")
    one_line_error(e, "bad.mat", "field anno", "objects")
