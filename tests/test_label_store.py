"""The annotation store: per-image revisions, conflicts, proposals beside labels, no-op
edits, noticing changes on disk, canonical output. (Concurrent writers: tests/hostile.)"""

import json
import os

import numpy as np
import pytest
from pycocotools.coco import COCO

from canonical_fixture import write_canonical_dataset
from pascal_person_pose import schema
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.errors import InputError
from pascal_person_pose.label.store import (PROPOSALS_KEY, AnnotationStore, RevisionConflict,
                                            person_arrays)


@pytest.fixture
def written(tmp_path):
    return write_canonical_dataset(tmp_path)


def first_person(written, split="val"):
    voc_id = written["splits"][split][0]
    record = written["images"][voc_id]
    return record["annotation_ids"][0], record["keypoints"][0].copy(), record


def read(path):
    with open(path) as f:
        return json.load(f)


def test_update_person_bumps_the_revision_and_keeps_the_file_canonical(written, tmp_path):
    store = AnnotationStore(tmp_path, "val")
    assert store.revision == 0
    aid, kp, _ = first_person(written)
    kp[3] = (10.25, 20.5, 1)
    kp[4] = 0
    proposals = np.zeros((14, 3))
    proposals[4] = (11.0, 21.0, 2)
    proposals[0] = (5.0, 5.0, 2)  # the forehead is labelled: its proposal must be dropped
    saved = store.update_person(aid, kp, proposals, expected_revision=0)
    assert (saved.revision, saved.file_revision) == (1, 1)

    doc = read(written["annotation_files"]["val"])
    assert doc["revision"] == 1
    ann = next(a for a in doc["annotations"] if a["id"] == aid)
    assert saved.annotation == ann
    revisions = {im["id"]: im.get("revision") for im in doc["images"]}
    assert revisions == {im: (1 if im == ann["image_id"] else None) for im in revisions}
    saved, pending = person_arrays(ann)
    np.testing.assert_array_equal(saved, kp.astype(np.float32))
    assert ann["num_keypoints"] == int((kp[:, 2] > 0).sum())
    expected = np.zeros((14, 3), np.float32)
    expected[4] = (11, 21, 2)
    np.testing.assert_array_equal(pending, expected)
    # the readers of the canonical format still load it, and see labels only
    dataset = Dataset(tmp_path, "val")
    np.testing.assert_array_equal(dataset.keypoints(ann["image_id"])[0], kp.astype(np.float32))
    coco = COCO(str(written["annotation_files"]["val"]))
    assert coco.anns[aid]["num_keypoints"] == ann["num_keypoints"]


def test_confirming_every_proposal_removes_the_key(written, tmp_path):
    store = AnnotationStore(tmp_path, "val")
    aid, kp, _ = first_person(written)
    proposals = np.zeros((14, 3))
    proposals[[1, 2], :] = (30, 30, 2)
    kp[[1, 2]] = 0
    store.update_person(aid, kp, proposals, 0)
    assert PROPOSALS_KEY in store.annotation(aid)
    kp[[1, 2]] = (30, 30, 2)
    store.update_person(aid, kp, proposals, 1)
    assert PROPOSALS_KEY not in store.annotation(aid)


def test_a_save_based_on_an_old_revision_of_its_image_is_refused(written, tmp_path):
    first, second = AnnotationStore(tmp_path, "val"), AnnotationStore(tmp_path, "val")
    aid, kp, record = first_person(written)
    other = record["annotation_ids"][1]  # another person of the same image
    assert second.revision == 0
    kp[0, 2] = 1
    first.update_person(aid, kp, None, 0)
    kp[0, 2] = 0
    kp[0, :2] = 0
    with pytest.raises(RevisionConflict, match=r"image 2009_000012 changed .* \(revision 1 on "
                                               "disk, 0 here"):
        second.update_person(other, second.annotation(other)["keypoints"], None, 0)
    # nothing was written by the refused save, and the other store sees the new revision
    assert second.revision == 1
    assert second.annotation(aid)["keypoints"][2] == 1


def test_saves_on_different_images_never_conflict(written, tmp_path):
    first, second = AnnotationStore(tmp_path, "val"), AnnotationStore(tmp_path, "val")
    (a, b) = (written["images"][voc]["annotation_ids"][0] for voc in ("2009_000012",
                                                                     "2010_000005"))
    kp_a, kp_b = (np.array(first.annotation(aid)["keypoints"]).reshape(14, 3) for aid in (a, b))
    kp_a[0, 2], kp_b[0] = 1, (7, 7, 2)
    assert first.update_person(a, kp_a, None, 0).revision == 1
    saved = second.update_person(b, kp_b, None, 0)  # based on revision 0 of ITS image
    assert (saved.revision, saved.file_revision) == (1, 2)
    doc = read(written["annotation_files"]["val"])
    by_id = {ann["id"]: ann for ann in doc["annotations"]}
    assert by_id[a]["keypoints"][2] == 1 and by_id[b]["keypoints"][:3] == [7, 7, 2]


def test_an_edit_that_changes_nothing_writes_nothing(written, tmp_path):
    path = written["annotation_files"]["val"]
    store = AnnotationStore(tmp_path, "val")
    before, stat = path.read_bytes(), os.stat(path)
    aid, _, _ = first_person(written)
    same = np.array(store.annotation(aid)["keypoints"]).reshape(14, 3)
    saved = store.update_person(aid, same, None, 0)
    with store.edit() as doc:
        doc["annotations"][0]["keypoints"] = list(doc["annotations"][0]["keypoints"])
    assert (saved.revision, saved.file_revision, doc["revision"]) == (0, 0, 0)
    after = os.stat(path)
    assert path.read_bytes() == before
    assert (after.st_ino, after.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)


@pytest.mark.parametrize("where, value", [("file", -1), ("file", "3"), ("image", 1.5),
                                          ("image", True), ("image", None)])
def test_a_hand_edited_revision_is_one_line(written, tmp_path, where, value):
    path = written["annotation_files"]["val"]
    doc = read(path)
    (doc if where == "file" else doc["images"][0])["revision"] = value
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="field revision: must be a non-negative integer"):
        AnnotationStore(tmp_path, "val").read()


def test_two_quick_saves_by_another_writer_are_noticed(written, tmp_path):
    """Another process replaces the file twice with files of the same size and mtime: the
    file system would hand the first file's inode number to the second one unless the
    store keeps its file open; either way the store must re-read."""
    path = written["annotation_files"]["val"]
    store = AnnotationStore(tmp_path, "val")
    aid, _, _ = first_person(written)
    original = store.annotation(aid)["keypoints"][0]
    stat = os.stat(path)
    doc = read(path)
    for value in (original + 1, original + 2):  # same number of digits: same size
        doc["annotations"][0]["keypoints"][0] = value
        tmp = path.with_name("replacement.tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(path).st_size == stat.st_size
    assert store.annotation(doc["annotations"][0]["id"])["keypoints"][0] == original + 2


def test_an_edit_that_fails_writes_nothing(written, tmp_path):
    store = AnnotationStore(tmp_path, "val")
    before = written["annotation_files"]["val"].read_bytes()
    with pytest.raises(RuntimeError):
        with store.edit() as doc:
            doc["annotations"][0]["keypoints"][0] = 1234.0
            raise RuntimeError("abandoned")
    assert written["annotation_files"]["val"].read_bytes() == before
    assert store.read()["annotations"][0]["keypoints"][0] != 1234.0


@pytest.mark.parametrize("change, message", [
    (lambda kp: kp.__setitem__((5, 0), np.nan), "finite"),
    (lambda kp: kp.__setitem__((5, 2), 3), "visibility 0, 1 or 2"),
    (lambda kp: kp.__setitem__((5, 0), 500.0), "joint r_hip lies outside the 96x72 image"),
    (lambda kp: kp.__setitem__(5, (4.0, 4.0, 0)), "unlabelled joint"),
])
def test_bad_joints_are_refused_with_the_annotation_named(written, tmp_path, change, message):
    store = AnnotationStore(tmp_path, "val")
    aid, kp, _ = first_person(written)
    change(kp)
    with pytest.raises(InputError, match=message) as error:
        store.update_person(aid, kp, None, 0)
    assert f"annotation {aid}" in str(error.value) and "\n" not in str(error.value)
    assert store.revision == 0


def test_unknown_annotation_and_missing_file(written, tmp_path):
    store = AnnotationStore(tmp_path, "val")
    with pytest.raises(InputError, match="annotation 999"):
        store.update_person(999, np.zeros((14, 3)), None, 0)
    with pytest.raises(InputError, match="run `ppp prepare` first"):
        AnnotationStore(tmp_path / "nowhere", "val")


def test_a_change_on_disk_is_seen_by_the_next_read(written, tmp_path):
    store = AnnotationStore(tmp_path, "val")
    aid, _, _ = first_person(written)
    assert store.revision == 0
    doc = read(written["annotation_files"]["val"])
    doc["revision"] = 7
    written["annotation_files"]["val"].write_text(json.dumps(doc))
    assert store.revision == 7


def test_stale_temp_files_are_removed_but_fresh_ones_kept(written, tmp_path):
    import os
    import time

    folder = written["annotation_files"]["val"].parent
    old = folder / ".person_pose_val.json.abc.tmp"
    fresh = folder / ".person_pose_val.json.def.tmp"
    old.write_text("{")
    fresh.write_text("{")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert AnnotationStore(tmp_path, "val").remove_stale_temp_files() == 1
    assert not old.exists() and fresh.exists()


def test_keypoints_are_stored_as_float32_decimals(written, tmp_path):
    store = AnnotationStore(tmp_path, "val")
    aid, kp, _ = first_person(written)
    kp[1, :2] = (12.3456789, 7.1)
    store.update_person(aid, kp, None, 0)
    values = store.annotation(aid)["keypoints"]
    assert values[3:5] == [float(str(np.float32(12.3456789))), 7.1]
    assert len(values) == 3 * schema.NUM_JOINTS
