"""Error diagnosis: each injected error type is counted exactly; the report is written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from brute_force_metrics import person
from canonical_fixture import write_pose_split
from pascal_person_pose.analysis import CATEGORIES, Analysis, joint_categories
from pascal_person_pose.cli import main
from pascal_person_pose.schema import JOINT_NAMES, name2joint
from pascal_person_pose.scoring import evaluation
from pascal_person_pose.submission import write_submission

R_WRIST, L_WRIST = name2joint["r_wrist"].index, name2joint["l_wrist"].index
IMAGES, EMPTY = 15, 2  # 15 images with two persons side by side (head size 10), 2 empty


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """30 persons, two per image, 100 px apart; joints 41 x 101 px, head size 10."""
    root = tmp_path_factory.mktemp("analysis")
    gts = [np.stack([person(10, 20), person(110, 20)]) for _ in range(IMAGES)]
    gts += [np.zeros((0, 14, 3))] * EMPTY
    image_ids = write_pose_split(root, gts, size=(200, 160))
    return {"root": root, "gts": gts, "image_ids": image_ids}


def _analyze(split, tmp_path, edit=lambda preds: None, extra=()):
    """Diagnose the perfect submission after ``edit(preds)`` (in place) plus ``extra``."""
    preds = [[g.copy() for g in gt] for gt in split["gts"]]
    for image in preds:
        for p in image:
            p[:, 2] = np.linspace(0.5, 0.9, 14)  # joint scores
    edit(preds)
    records = [{"image_id": split["image_ids"][i], "category_id": 1, "score": 1.0,
                "keypoints": p.ravel().tolist()} for i, image in enumerate(preds) for p in image]
    records += list(extra)
    sub = write_submission(tmp_path / "s", records, None)
    analysis = Analysis(evaluation(split["root"], sub))
    return analysis.run()["pose"]


def _totals(pose) -> dict:
    return {c: sum(pose["by_joint"][c].values()) for c in pose["by_joint"]}


def test_perfect_submission_is_all_good(split, tmp_path):
    pose = _analyze(split, tmp_path)
    assert _totals(pose) == {**{c: 0 for c in pose["by_joint"]}, "good": 30 * 14}
    assert all(row["Total"] == 100.0 for row in pose["ap_after_correcting"].values())


def test_left_right_wrists_swapped_are_inversions(split, tmp_path):
    def edit(preds):
        for image in preds[:IMAGES]:
            for p in image:  # all 30 persons
                p[[R_WRIST, L_WRIST], :2] = p[[L_WRIST, R_WRIST], :2]

    pose = _analyze(split, tmp_path, edit)
    totals = _totals(pose)
    assert totals["inversion"] == 60 and totals["good"] == 30 * 12
    assert pose["by_joint"]["inversion"]["r_wrist"] == pose["by_joint"]["inversion"]["l_wrist"] \
        == 30
    assert sum(v for c, v in totals.items() if c not in ("good", "inversion")) == 0
    ap = pose["ap_after_correcting"]
    assert ap["as scored"]["Wrist"] == 0.0 and ap["inversion"]["Total"] == 100.0


def test_jitter_swap_miss_and_background_are_counted_exactly(split, tmp_path):
    def edit(preds):
        for k, image in enumerate(preds[:IMAGES]):
            first, second = image
            if k < 5:  # jitter: 0.75 head sizes off
                first[R_WRIST, 0] -= 7.5
            elif k < 10:  # swap: the first person's r_wrist on the second's r_wrist
                first[R_WRIST, :2] = second[R_WRIST, :2]
            else:  # miss: between the knees, far from either wrist
                first[R_WRIST, :2] = first[name2joint["r_knee"].index, :2] + (6, 0)

    stray = person(20, 30, value=0.95)  # ranked above every true positive
    extra = [{"image_id": image_id, "category_id": 1, "score": 0.3,
              "keypoints": stray.ravel().tolist()} for image_id in split["image_ids"][-EMPTY:]]
    pose = _analyze(split, tmp_path, edit, extra)
    by_joint = pose["by_joint"]
    assert (by_joint["jitter"]["r_wrist"], by_joint["swap"]["r_wrist"],
            by_joint["miss"]["r_wrist"]) == (5, 5, 5)
    assert by_joint["background"] == dict.fromkeys(JOINT_NAMES, EMPTY)
    totals = _totals(pose)
    assert totals["good"] == 30 * 14 - 15 and totals["background"] == 14 * EMPTY
    assert totals["inversion"] == totals["unlabelled"] == totals["missed_person"] == 0
    ap = pose["ap_after_correcting"]
    assert ap["background"]["Total"] > ap["as scored"]["Total"]
    for fixed in ("jitter", "swap", "miss"):
        assert ap[fixed]["Wrist"] > ap["as scored"]["Wrist"]
    assert pose["by_size"]["jitter"] == {"XS": 0, "S": 0, "M": 0, "L": 0} | {
        b: 5 for b, n in pose["persons_by_size"].items() if n}


def test_missed_persons_and_absent_joints(split, tmp_path):
    def edit(preds):
        for image in preds[:4]:
            image.pop()  # the second person of 4 images is missed
        for image in preds[4:7]:
            image[0][R_WRIST] = 0  # the r_wrist of 3 persons is left out

    pose = _analyze(split, tmp_path, edit)
    totals = _totals(pose)
    assert totals["missed_person"] == 4 * 14 and totals["absent"] == 3
    assert sum(pose["missed_persons_by_size"].values()) == 4
    assert totals["good"] == 26 * 14 - 3


def test_categories_of_one_image_by_hand():
    gt = np.stack([person(0, 0), person(100, 0)])
    pred = gt.copy()
    pred[:, :, 2] = 1
    pred[0, L_WRIST, 2] = 0  # absent
    pred[1, R_WRIST, :2] = gt[1, R_WRIST, :2] + (0, 5.0)  # exactly alpha: good
    pred[1, L_WRIST, :2] = gt[1, L_WRIST, :2] + (0, 10.0)  # exactly 1 head: jitter
    cats = joint_categories(pred, gt, np.array([0, 1]))
    assert cats[0, L_WRIST] == -1
    assert CATEGORIES[cats[1, R_WRIST]] == "good" and CATEGORIES[cats[1, L_WRIST]] == "jitter"
    unassigned = joint_categories(pred, gt, np.array([-1, 1]))
    assert {CATEGORIES[c] for c in unassigned[0] if c >= 0} == {"background"}


def test_cli_writes_a_self_contained_report(canonical, oracle, tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["analyze", str(canonical["root"]),
                                       str(oracle["perfect_dir"]), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5 and "src=\"http" not in page
    doc = json.loads((out / "analysis.json").read_text())
    assert doc["parts"]["confusion_by_gt"][1][1] == 1.0
    assert doc["pose"]["ap_after_correcting"]["as scored"]["Total"] == 100.0
    for name in ("part_confusion.png", "miou_by_size.png", "ap_after_correcting.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    bad = CliRunner().invoke(main, ["analyze", str(canonical["root"]),
                                    str(oracle["perfect_dir"]), "--out", str(out),
                                    "--jitter", "0.3"])
    assert bad.exit_code == 2 and "must exceed --alpha" in bad.stderr
