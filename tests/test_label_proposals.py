"""Joint proposals from part masks: geometry, left/right, storage, `ppp label propose`."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from pycocotools.coco import COCO

from canonical_fixture import write_canonical_dataset
from pascal_person_pose import layout, schema
from pascal_person_pose.cli import main
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.label import accuracy
from pascal_person_pose.label.proposals import propose_person, propose_split
from pascal_person_pose.label.store import PROPOSALS_KEY, AnnotationStore, person_arrays
from pascal_person_pose.metrics.pose_boxes import head_sizes
from pascal_person_pose.prepare import prepare
from pascal_person_pose.synth import render_scene, write_raw_tree
from pascal_person_pose.synth.tree import image_rng, synth_id
from upstream_labels import LABELS, SAMPLES, labelled_samples


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


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A small synthetic tree through prepare: (dataset root, scenes by VOC id)."""
    root = tmp_path_factory.mktemp("synthetic")
    seed, n = 3, 8
    write_raw_tree(root / "raw", n, seed)
    prepare(root / "raw", root / "canonical", workers=1, progress=False)
    scenes = {synth_id(i): render_scene(image_rng(seed, i), 320, 240) for i in range(n)}
    return root / "canonical", scenes


def synthetic_persons(synthetic):
    """(sample, person, its scene person) of every labelled synthetic person."""
    root, scenes = synthetic
    for split in layout.SPLITS:
        for sample in Dataset(root, split):
            for person, mask in zip(sample.persons, sample.masks):
                drawn = next(p for p in scenes[sample.voc_id].persons
                             if np.array_equal(p.mask, mask))
                if (person.keypoints[:, 2] == 2).any():
                    yield sample, person, drawn


def test_proposals_on_synthetic_scenes_with_fine_parts(synthetic):
    """The benchmark's figures, in small: with the fine parts nearly every visible joint is
    proposed under its own name, most within half a unit; without them (the part classes
    alone) left and right come from the facing rule and half a unit is reached less often."""
    gt, fine, coarse, boxes = [], [], [], []
    for sample, person, _ in synthetic_persons(synthetic):
        gt.append(person.keypoints)
        boxes.append(person.bbox)
        fine.append(propose_person(sample.part_map, sample.instance_map, person.instance,
                                   fine_map=sample.fine_part_map))
        coarse.append(propose_person(sample.part_map, sample.instance_map, person.instance))
    gt, units = np.stack(gt), accuracy.box_units(np.stack(boxes))
    visible = gt[..., 2] == 2
    assert visible.sum() > 100
    with_fine = accuracy.accuracy(gt, np.stack(fine), units, visible)[-1]
    without = accuracy.accuracy(gt, np.stack(coarse), units, visible)[-1]
    assert with_fine.named > 0.95 and with_fine.pck[1.0] > 0.9 and with_fine.pck[0.5] > 0.8
    assert without.pck_any_side[0.5] > 0.75
    assert with_fine.pck[0.5] > without.pck[0.5]


def test_a_person_facing_away_gets_its_own_sides_from_the_fine_parts(synthetic):
    """Seen from behind, a person's right side is on the image's right: the fine parts say
    so, and every sided proposal lands nearer its own joint than its mirror partner's. The
    facing rule alone, without fine parts, mirrors such a person."""
    paired = (schema.FLIP_INDEX != np.arange(schema.NUM_JOINTS))
    right = mirrored = away = 0
    for sample, person, drawn in synthetic_persons(synthetic):
        kp = person.keypoints
        both = paired & (kp[:, 2] == 2) & (kp[schema.FLIP_INDEX, 2] == 2)
        spread = np.hypot(*(kp[:, :2] - kp[schema.FLIP_INDEX, :2]).T)
        both &= spread > 0.5 * head_sizes(kp[None])[0]  # a pair far enough apart to tell
        if drawn.facing_camera or both.sum() < 4:
            continue
        away += 1
        for fine_map, counter in ((sample.fine_part_map, "fine"), (None, "facing")):
            proposed = propose_person(sample.part_map, sample.instance_map, person.instance,
                                      fine_map=fine_map)
            own = np.hypot(*(proposed[:, :2] - kp[:, :2]).T)
            partner = np.hypot(*(proposed[:, :2] - kp[schema.FLIP_INDEX, :2]).T)
            judged = both & (proposed[:, 2] > 0)
            if counter == "fine":
                assert (own[judged] < partner[judged]).all(), sample.voc_id
                right += int(judged.sum())
            else:
                mirrored += int((own[judged] > partner[judged]).sum())
    assert away >= 2 and right >= 10
    assert mirrored > right / 2


def _body(shape, cx, thigh_gap, facing_camera=True):
    """A hand-drawn frontal person: its fine part map and true joints ((14, 3), x y v).
    ``thigh_gap`` 0 puts the thighs in contact; the shins always stand apart."""
    fine = np.zeros(shape, np.uint8)
    kp = np.zeros((schema.NUM_JOINTS, 3))
    near, far = ("r", "l") if facing_camera else ("l", "r")  # on the image's left, right

    def paint(name, x0, x1, y0, y1):
        x0, x1 = max(x0, 0), min(x1, shape[1])
        if x0 < x1:
            fine[y0:y1, x0:x1] = schema.name2fine[name].id

    def joint(name, x, y):
        if 0 <= x < shape[1]:
            kp[schema.name2joint[name].index] = (x, y, 2)

    yy, xx = np.mgrid[:shape[0], :shape[1]]
    fine[((xx - cx) / 12.0) ** 2 + ((yy - 30) / 15.0) ** 2 <= 1] = schema.name2fine["head"].id
    paint("neck", cx - 5, cx + 5, 44, 52)
    paint("torso", cx - 20, cx + 20, 52, 120)
    joint("forehead", cx, 20)
    joint("neck", cx, 52)
    for side, sign in ((near, -1), (far, 1)):
        arm = cx + sign * 26  # the arm's centre line, hanging beside the torso
        paint(f"{side}uarm", arm - 5, arm + 6, 54, 95)
        paint(f"{side}larm", arm - 5, arm + 6, 95, 128)
        paint(f"{side}hand", arm - 5, arm + 6, 128, 140)
        joint(f"{side}_shoulder", arm, 59)
        joint(f"{side}_elbow", arm, 95)
        joint(f"{side}_wrist", arm, 128)
        thigh = cx + sign * (thigh_gap // 2 + 10)
        shin = thigh + sign * 8
        paint(f"{side}uleg", thigh - 10, thigh + 10, 120, 175)
        paint(f"{side}lleg", shin - 7, shin + 8, 175, 222)
        paint(f"{side}foot", shin - 7, shin + 14 * sign + 8 * (sign < 0), 222, 230)
        joint(f"{side}_hip", thigh, 124)
        joint(f"{side}_knee", (thigh + shin) / 2, 175)
        joint(f"{side}_ankle", shin, 222)
    return fine, kp


def _maps(fine):
    part_map = schema.FINE_ID_TO_PART[fine]
    return part_map, (fine > 0).astype(np.uint8)


@pytest.mark.parametrize("with_fine", [True, False], ids=["fine parts", "part classes"])
def test_thighs_in_contact_give_two_hips_and_two_knees(with_fine):
    fine, kp = _body((240, 160), 80, thigh_gap=0)
    part_map, instance_map = _maps(fine)
    assert len(np.unique(cv2_components(part_map == schema.name2part["upper_leg"].id))) == 2
    proposed = propose_person(part_map, instance_map, 1, fine_map=fine if with_fine else None)
    legs = [schema.name2joint[n].index for n in ("r_hip", "l_hip", "r_knee", "l_knee")]
    assert (proposed[legs, 2] > 0).all()
    error = np.hypot(*(proposed[legs, :2] - kp[legs, :2]).T)
    assert error.max() <= 6, error  # a thigh is 20 px wide
    r_hip, l_hip = proposed[legs[:2], 0]
    assert r_hip < 80 < l_hip  # facing the camera: the right hip on the image's left


def cv2_components(mask):
    import cv2

    return cv2.connectedComponents(mask.astype(np.uint8))[1]


@pytest.mark.parametrize("with_fine", [True, False], ids=["fine parts", "part classes"])
@pytest.mark.parametrize("facing_camera", [True, False], ids=["facing", "from behind"])
def test_a_person_cut_by_the_border_gets_no_stacked_sides(with_fine, facing_camera):
    """Half of the person is outside the image: what shows is one side, proposed once,
    never also under the other side's names on top of it."""
    fine, kp = _body((240, 100), 12, thigh_gap=8, facing_camera=facing_camera)
    part_map, instance_map = _maps(fine)
    proposed = propose_person(part_map, instance_map, 1, fine_map=fine if with_fine else None)
    for r, l in schema.FLIP_PAIRS:
        if proposed[r, 2] > 0 and proposed[l, 2] > 0:
            assert np.hypot(*(proposed[r, :2] - proposed[l, :2])) > 10, schema.JOINT_NAMES[r]
    if with_fine:  # the visible side, under its own names, where it is
        seen = kp[:, 2] > 0
        sided = seen & (schema.FLIP_INDEX != np.arange(schema.NUM_JOINTS))
        assert (proposed[sided, 2] > 0).all()
        assert np.hypot(*(proposed[sided, :2] - kp[sided, :2]).T).max() <= 6


@pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"{SAMPLES} is absent")
def test_proposals_on_the_real_samples_reach_the_targets(tmp_path):
    """The issue's targets on real people, against our own labels: >= 92 % of the labelled
    joints proposed under the right name, PCK@1 >= 0.85 and PCK@0.5 >= 0.65 (left/right
    counted; unit = mask box diagonal / 8)."""
    root = labelled_samples(tmp_path, with_poses=False)
    labels = accuracy.read_labels(LABELS)
    truth, proposed, boxes = [], [], []
    for sample in Dataset(root, "val"):
        for person in sample.persons:
            if (sample.voc_id, person.instance) in labels:
                truth.append(labels[sample.voc_id, person.instance])
                boxes.append(person.bbox)
                proposed.append(propose_person(sample.part_map, sample.instance_map,
                                               person.instance, fine_map=sample.fine_part_map))
    assert len(truth) == 19
    total = accuracy.accuracy(np.stack(truth), np.stack(proposed),
                              accuracy.box_units(np.stack(boxes)))[-1]
    assert total.compared >= 120
    assert total.named >= 0.92 and total.pck[1.0] >= 0.85 and total.pck[0.5] >= 0.65
