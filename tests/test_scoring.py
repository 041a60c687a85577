"""Scoring a submission end to end: the JSON of docs/metrics.md, the CLI, COCO OKS extra."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from pascal_person_pose import submission as submission_module
from pascal_person_pose.cli import main
from pascal_person_pose.metrics.coco_oks import COCO_SIGMAS, sigmas
from pascal_person_pose.schema import JOINT_NAMES, PART_NAMES
from pascal_person_pose.scoring import score
from pascal_person_pose.submission import InvalidSubmission, read_submission, write_submission

POSE_AP_TABLE = ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "U-Body", "Total"]
ADK_TABLE = ["Forehead", "Neck", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Ave."]


@pytest.fixture(scope="module")
def data(canonical, oracle):
    return {"root": canonical["root"], "written": canonical, "dataset": oracle["dataset"],
            "poses": oracle["poses"], "parts": oracle["parts"], "perfect": oracle["perfect_zip"]}


def test_perfect_submission_scores_100_and_0(data):
    result = score(data["root"], data["perfect"])
    assert set(result["pose_ap"]["per_joint"].values()) == {100.0}
    assert set(result["pose_ap"]["table"].values()) == {100.0}
    assert set(result["adk"]["per_joint"].values()) == {0.0}
    assert set(result["adk"]["table"].values()) == {0.0}
    assert (result["adk"]["unmatched_gt"], result["adk"]["skipped_gt"]) == (0, 0)
    assert set(result["parts"]["per_class"].values()) == {100.0}
    assert result["parts"]["miou"] == 100.0
    assert [result["parts_by_size"][b] for b in "XS S M L".split()] == [100.0] * 4


def test_json_keys_are_exactly_the_design(data):
    result = score(data["root"], data["perfect"])
    assert list(result) == ["pose_ap", "adk", "parts", "parts_by_size", "params"]
    assert list(result["pose_ap"]) == ["per_joint", "table"]
    assert list(result["pose_ap"]["per_joint"]) == list(JOINT_NAMES)
    assert list(result["pose_ap"]["table"]) == POSE_AP_TABLE
    assert list(result["adk"]) == ["per_joint", "table", "unmatched_gt", "skipped_gt"]
    assert list(result["adk"]["table"]) == ADK_TABLE
    assert list(result["parts"]) == ["per_class", "miou"]
    assert list(result["parts"]["per_class"]) == list(PART_NAMES)
    assert list(result["parts_by_size"]) == ["XS", "S", "M", "L", "counts", "thresholds"]
    assert list(result["parts_by_size"]["counts"]) == ["XS", "S", "M", "L"]
    assert result["params"]["split"] == "val" and result["params"]["alpha"] == 0.5
    json.dumps(result, allow_nan=False)  # plain JSON: no NaN, no numpy types


def test_a_task_absent_from_the_submission_is_absent_from_the_output(data, tmp_path):
    poses_only = write_submission(tmp_path / "p", data["poses"], None)
    parts_only = write_submission(tmp_path / "q", None, data["parts"])
    assert list(score(data["root"], poses_only)) == ["pose_ap", "adk", "params"]
    assert list(score(data["root"], parts_only)) == ["parts", "parts_by_size", "params"]


def test_images_without_pose_annotation_are_left_out_of_pose_metrics(data, tmp_path):
    """2010_000005 has pose_annotated false: poses there are neither fp nor tp."""
    unannotated = data["written"]["images"]["2010_000005"]
    stray = [{"image_id": unannotated["image_id"], "category_id": 1, "score": 1.0,
              "keypoints": [v for _ in range(14) for v in (40.0, 30.0, 0.9)]}] * 3
    path = write_submission(tmp_path / "s", stray + data["poses"], None)
    assert score(data["root"], path)["pose_ap"]["table"]["Total"] == 100.0


def test_a_missed_person_lowers_recall_exactly(data, tmp_path):
    """Dropping the first person of 2009_000012 (all joints labelled): 2 of 3 found."""
    path = write_submission(tmp_path / "s", data["poses"][1:], None)
    per_joint = score(data["root"], path)["pose_ap"]["per_joint"]
    assert per_joint["forehead"] == pytest.approx(200 / 3)
    assert per_joint["l_ankle"] == pytest.approx(50.0)  # the third person's is unlabelled


def test_part_errors_lower_miou(data, tmp_path):
    parts = {voc: labels.copy() for voc, labels in data["parts"].items()}
    parts["2009_000012"][parts["2009_000012"] == 1] = 2  # every head pixel called torso
    result = score(data["root"], write_submission(tmp_path / "s", None, parts))
    assert result["parts"]["per_class"]["head"] < 100.0
    assert result["parts"]["per_class"]["upper_leg"] == 100.0
    assert result["parts"]["miou"] < 100.0


def test_result_does_not_depend_on_thread_count(data, tmp_path):
    rng = np.random.default_rng(1)
    parts = {voc: rng.integers(0, 7, labels.shape, dtype=np.uint8)
             for voc, labels in data["parts"].items()}
    path = write_submission(tmp_path / "s", None, parts)
    sub = read_submission(path)
    assert score(data["root"], sub, workers=1) == score(data["root"], sub, workers=3)


def test_each_part_png_is_read_once(data, monkeypatch):
    reads = []
    original = submission_module.Submission.part_bytes
    monkeypatch.setattr(submission_module.Submission, "part_bytes",
                        lambda self, voc: reads.append(voc) or original(self, voc))
    score(data["root"], data["perfect"])
    assert sorted(reads) == sorted(data["written"]["splits"]["val"])


def test_pixel_problems_void_the_whole_score(data, tmp_path):
    parts = {voc: labels.copy() for voc, labels in data["parts"].items()}
    path = write_submission(tmp_path / "s", data["poses"], parts)
    bad = parts["2010_000001"].copy()
    bad[0, 0] = 9
    from PIL import Image
    Image.fromarray(bad, mode="L").save(path / "parts" / "2010_000001.png")
    with pytest.raises(InvalidSubmission, match="parts/2010_000001.png, record image "
                                                "2010_000001, field values"):
        score(data["root"], path)
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(main, ["score", str(data["root"]), str(path), "--json",
                                       str(out)])
    assert result.exit_code == 2 and not out.exists()
    assert result.stderr.strip().splitlines() == [
        "error: parts/2010_000001.png, record image 2010_000001, field values: 1 pixels have "
        "values above 6 (max 9); part ids are 0-6"]


def test_cli_score_prints_the_tables_and_writes_json(data, tmp_path):
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(main, ["score", str(data["root"]), str(data["perfect"]),
                                       "--split", "val", "--json", str(out)])
    assert result.exit_code == 0, result.stderr
    tables = {}
    for title, columns in (("Table 1: pose mAP", POSE_AP_TABLE), ("Table 2: ADK", ADK_TABLE),
                           ("Table 3: part IoU", ["Head", "Torso", "U-arms", "L-arms",
                                                  "U-legs", "L-legs", "Background", "Ave."]),
                           ("Table 4: part mIOU by person size", ["XS", "S", "M", "L"])):
        lines = result.output.split(title, 1)[1].splitlines()
        assert lines[1].split() == ["Method", *columns]
        tables[title] = [line.split() for line in lines[2:4]]
    assert tables["Table 1: pose mAP"][0] == ["Oracle"] + ["100.0"] * 9
    assert tables["Table 2: ADK"][0] == ["Oracle"] + ["0.0"] * 9
    assert tables["Table 3: part IoU"][0] == ["Oracle"] + ["100.00"] * 8
    assert tables["Table 4: part mIOU by person size"] == [["Oracle"] + ["100.0"] * 4,
                                                           ["persons", "1", "1", "1", "2"]]
    assert json.loads(out.read_text()) == score(data["root"], data["perfect"])
    assert "coco_oks" not in result.output


def test_cli_score_coco_oks_extra_and_add_to(data, tmp_path):
    out, results = tmp_path / "scores.json", tmp_path / "results"
    result = CliRunner().invoke(main, ["score", str(data["root"]), str(data["perfect"]),
                                       "--json", str(out), "--coco-oks", "--add-to",
                                       str(results), "--method", "Oracle v1"])
    assert result.exit_code == 0, result.stderr
    assert "not the paper's metric" in result.output
    oks = json.loads(out.read_text())["coco_oks"]
    assert oks["AP"] == 100.0 and oks["sigmas"] == COCO_SIGMAS and "not the paper" in oks["note"]
    row = json.loads((results / "oracle-v1.json").read_text())
    assert row["source"] == "scored" and row["method"] == "Oracle v1"
    assert row["tables"]["pose_ap"]["Total"] == 100.0
    assert row["tables"]["parts"]["Ave."] == 100.0 and row["params"]["split"] == "val"


def test_coco_oks_uses_14_documented_sigmas():
    assert list(COCO_SIGMAS) == list(JOINT_NAMES)
    coco = {"r_shoulder": .079, "r_elbow": .072, "r_wrist": .062, "r_hip": .107,
            "r_knee": .087, "r_ankle": .089}
    for name, value in coco.items():
        assert COCO_SIGMAS[name] == COCO_SIGMAS["l" + name[1:]] == value
    assert sigmas().shape == (14,)


def test_coco_oks_drops_with_jitter(data, tmp_path):
    rng = np.random.default_rng(0)
    poses = []
    for pose in data["poses"]:
        keypoints = np.array(pose["keypoints"]).reshape(14, 3)
        keypoints[:, :2] += rng.normal(0, 3, (14, 2)) * (keypoints[:, 2:] > 0)
        poses.append(dict(pose, keypoints=keypoints.ravel().tolist()))
    result = score(data["root"], write_submission(tmp_path / "s", poses, None), coco_oks=True)
    assert 0 <= result["coco_oks"]["AP"] < 100.0


def test_cli_score_errors_are_one_line(data, tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["score", str(tmp_path), str(data["perfect"])])
    assert missing.exit_code == 2 and "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    assert "annotation file not found" in missing.stderr
    no_method = runner.invoke(main, ["score", str(data["root"]),
                                     str(write_submission(tmp_path / "s", data["poses"], None)),
                                     "--add-to", str(tmp_path / "r")])
    assert no_method.exit_code == 2 and "--add-to needs --method" in no_method.stderr
    for thresholds in ("small,big", "0.1,0.05,0.2", "0.01,0.02"):
        bad = runner.invoke(main, ["score", str(data["root"]), str(data["perfect"]),
                                   "--size-thresholds", thresholds])
        assert bad.exit_code == 2 and "three increasing" in bad.stderr
        assert "Traceback" not in bad.stderr
