"""The annotation store: revisions, conflicts, proposals beside labels, canonical output."""

import json

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
    assert store.update_person(aid, kp, proposals, expected_revision=0) == 1

    doc = read(written["annotation_files"]["val"])
    assert doc["revision"] == 1
    ann = next(a for a in doc["annotations"] if a["id"] == aid)
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


def test_a_save_based_on_an_old_revision_is_refused(written, tmp_path):
    first, second = AnnotationStore(tmp_path, "val"), AnnotationStore(tmp_path, "val")
    aid, kp, _ = first_person(written)
    assert second.revision == 0
    kp[0, 2] = 1
    first.update_person(aid, kp, None, 0)
    kp[0, 2] = 0
    kp[0, :2] = 0
    with pytest.raises(RevisionConflict, match="revision 1 on disk, 0 here"):
        second.update_person(aid, kp, None, 0)
    # nothing was written by the refused save, and the other store sees the new revision
    assert second.revision == 1
    assert second.annotation(aid)["keypoints"][2] == 1


def test_an_edit_that_fails_writes_nothing(written, tmp_path):
    store = AnnotationStore(tmp_path, "val")
    before = written["annotation_files"]["val"].read_bytes()
    with pytest.raises(RuntimeError):
        with store.edit(0) as doc:
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
