"""Joint proposals from part masks: geometry, left/right, storage, `ppp label propose`."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from pycocotools.coco import COCO

from canonical_fixture import write_canonical_dataset
from pascal_person_pose import schema
from pascal_person_pose.cli import main
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.label.proposals import propose_person, propose_split
from pascal_person_pose.label.store import PROPOSALS_KEY, AnnotationStore, person_arrays
from pascal_person_pose.metrics.pose_boxes import head_sizes


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return write_canonical_dataset(tmp_path_factory.mktemp("canonical"))


def fixture_persons(written, min_head_size=5.0):
    """(record, person index, GT keypoints) of the fixture's labelled persons big enough to
    judge in head sizes."""
    for record in written["images"].values():
        for g, kp in enumerate(record["keypoints"]):
            if kp[:, 2].any() and head_sizes(kp[None])[0] >= min_head_size:
                yield record, g, kp


def test_proposals_land_on_the_joints_of_drawn_bodies(written):
    persons = list(fixture_persons(written))
    assert len(persons) >= 5
    for record, g, kp in persons:
        proposed = propose_person(record["part_map"], record["instance_map"], g + 1)
        visible = kp[:, 2] == 2
        assert (proposed[visible, 2] > 0).all()
        distance = np.hypot(*(proposed[:, :2] - kp[:, :2]).T) / head_sizes(kp[None])[0]
        assert distance[visible].max() <= 0.5, distance
        # left and right: each side's proposal is nearer its own joint than the partner's
        mirrored = np.hypot(*(proposed[:, :2] - kp[schema.FLIP_INDEX, :2]).T)
        paired = visible & visible[schema.FLIP_INDEX] & (schema.FLIP_INDEX != np.arange(14))
        assert (distance[paired] * head_sizes(kp[None])[0] < mirrored[paired]).all()


def test_labelled_pairs_decide_left_and_right(written):
    """A person whose labels say it is seen from behind gets proposals on the same sides."""
    record, g, kp = next(fixture_persons(written))
    behind = kp[schema.FLIP_INDEX]  # the same picture labelled as a person facing away
    partial = np.zeros_like(behind)
    partial[[2, 8]] = behind[[2, 8]]  # only the shoulders are labelled
    proposed = propose_person(record["part_map"], record["instance_map"], g + 1, partial)
    visible = behind[:, 2] == 2
    distance = np.hypot(*(proposed[:, :2] - behind[:, :2]).T) / head_sizes(kp[None])[0]
    assert distance[visible].max() <= 0.5


def test_a_person_without_pixels_gets_no_proposal(written):
    record = next(iter(written["images"].values()))
    proposed = propose_person(record["part_map"], record["instance_map"], 200)
    assert not proposed.any()


def test_propose_split_stores_proposals_beside_labels_and_never_overwrites(tmp_path):
    written = write_canonical_dataset(tmp_path)
    path = written["annotation_files"]["val"]
    before = {a["id"]: a["keypoints"] for a in json.loads(path.read_text())["annotations"]}
    summary = propose_split(tmp_path, "val")

    doc = json.loads(path.read_text())
    assert doc["revision"] == summary.revision == 1
    pending_total = 0
    for ann in doc["annotations"]:
        assert ann["keypoints"] == before[ann["id"]]  # labels untouched
        keypoints, pending = person_arrays(ann)
        assert not (pending[keypoints[:, 2] > 0, 2] > 0).any()  # never where labelled
        pending_total += int((pending[:, 2] > 0).sum())
    assert pending_total == sum(summary.proposed.values())
    # the person with an unlabelled l_ankle, and the persons of the image without poses
    record = written["images"]["2009_000012"]
    second = next(a for a in doc["annotations"] if a["id"] == record["annotation_ids"][1])
    _, pending = person_arrays(second)
    assert np.flatnonzero(pending[:, 2]).tolist() == [schema.JOINT_NAMES.index("l_ankle")]
    unlabelled = sum(bool((kp[:, 2] == 0).any()) for voc_id in written["splits"]["val"]
                     for kp in written["images"][voc_id]["keypoints"])
    assert summary.persons == unlabelled and summary.proposed["l_ankle"] >= 1
    # the canonical readers see no proposal as a label
    assert Dataset(tmp_path, "val").keypoints(record["image_id"])[1, 13, 2] == 0
    assert COCO(str(path)).anns[second["id"]]["num_keypoints"] == 13


def test_propose_twice_replaces_pending_proposals(tmp_path):
    write_canonical_dataset(tmp_path)
    first = propose_split(tmp_path, "val")
    second = propose_split(tmp_path, "val")
    # the same proposals again: nothing changes on disk, no revision moves
    assert second.proposed == first.proposed and second.revision == first.revision


def test_ppp_label_propose(tmp_path):
    write_canonical_dataset(tmp_path)
    result = CliRunner().invoke(main, ["label", "propose", str(tmp_path), "--split", "val"])
    assert result.exit_code == 0, result.output
    assert "got proposals (revision 1)" in result.output and "l_ankle" in result.output
    assert PROPOSALS_KEY in AnnotationStore(tmp_path, "val").read()["annotations"][-1]


def test_ppp_label_propose_on_a_missing_split_is_one_line(tmp_path):
    write_canonical_dataset(tmp_path)
    (tmp_path / "annotations" / "person_pose_val.json").write_text("{not json")
    result = CliRunner().invoke(main, ["label", "propose", str(tmp_path), "--split", "val"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "person_pose_val.json" in result.output


def test_proposals_on_synthetic_scenes_are_mostly_within_half_a_head(tmp_path):
    """The benchmark's figure, in small: synthetic scenes through prepare, every joint
    proposed from the part maps alone, compared with the visible GT joints."""
    from pascal_person_pose.prepare import prepare
    from pascal_person_pose.synth import write_raw_tree

    write_raw_tree(tmp_path / "raw", 6, seed=3)
    prepare(tmp_path / "raw", tmp_path / "canonical", workers=1, progress=False)
    near = mirror_near = total = 0
    for split in ("train", "val"):
        for sample in Dataset(tmp_path / "canonical", split):
            for person in sample.persons:
                kp = person.keypoints
                visible = kp[:, 2] == 2
                if not visible.any():
                    continue
                proposed = propose_person(sample.part_map, sample.instance_map, person.instance)
                scale = head_sizes(kp[None])[0]

                def hits(candidate):
                    d = np.hypot(*(candidate[:, :2] - kp[:, :2]).T) / scale
                    return int(((d <= 0.5) & (candidate[:, 2] > 0) & visible).sum())

                near += hits(proposed)
                mirror_near += max(hits(proposed), hits(proposed[schema.FLIP_INDEX]))
                total += int(visible.sum())
    assert total > 50
    assert near / total > 0.5
    assert mirror_near / total > 0.75
