"""Other frameworks: COCO keypoint evaluation by pycocotools and faster-coco-eval with our
sigmas, mmpose-style dataset info and detectron2-style keypoint metadata read the way
those frameworks read them."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from canonical_fixture import write_canonical_dataset
from pascal_person_pose import schema
from pascal_person_pose.metrics.coco_oks import coco_oks_ap, sigmas
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.frameworks import (JOINT_WEIGHTS_BY_TYPE, coco_keypoint_eval,
                                           detectron2_keypoint_metadata, mmpose_dataset_info)
from pascal_person_pose.submission import oracle_submission, write_submission


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The canonical fixture and a noisy submission: jittered joints, random scores, one
    person missed, one false pose, so OKS AP lies strictly between 0 and 1."""
    root = tmp_path_factory.mktemp("canonical")
    write_canonical_dataset(root)
    dataset = Dataset(root, "val")
    poses, parts = oracle_submission(dataset)
    rng = np.random.default_rng(0)
    noisy = []
    for record in poses[1:]:
        keypoints = np.array(record["keypoints"], dtype=np.float64).reshape(-1, 3)
        present = keypoints[:, 2] > 0
        keypoints[present, :2] += rng.normal(0, 1.5, (present.sum(), 2))
        keypoints[present, 2] = rng.uniform(0.1, 1, present.sum())
        noisy.append({**record, "keypoints": keypoints.ravel().tolist(),
                      "score": float(rng.uniform(0.2, 1))})
    false_pose = np.array(noisy[0]["keypoints"]).reshape(-1, 3)
    false_pose[false_pose[:, 2] > 0, :2] += [20, 10]
    noisy.append({**noisy[0], "keypoints": false_pose.ravel().tolist(), "score": 0.9})
    out = tmp_path_factory.mktemp("subs")
    write_submission(out / "noisy.zip", noisy, parts, {"method": "Noisy oracle"})
    (out / "pose.json").write_text(json.dumps(noisy))
    return {"gt": dataset.annotation_file, "sub": out / "noisy.zip", "pose_json": out / "pose.json",
            "poses": noisy, "dataset": dataset}


def test_coco_default_sigmas_fail_on_our_14_joints(data):
    """The case a user met: COCOeval's 17 default sigmas do not fit 14 joints."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(data["gt"]))
        evaluator = COCOeval(gt, gt.loadRes(json.loads(data["pose_json"].read_text())),
                             iouType="keypoints")
        with pytest.raises(ValueError):
            evaluator.evaluate()


def test_one_call_evaluation_agrees_across_libraries_and_with_ppp_score(data):
    coco = coco_keypoint_eval(data["gt"], data["sub"], verbose=False)
    fast = coco_keypoint_eval(data["gt"], data["sub"], library="faster_coco_eval",
                              verbose=False)
    assert 0.05 < coco.stats[0] < 0.95
    np.testing.assert_allclose(fast.stats, coco.stats, atol=1e-12)
    np.testing.assert_array_equal(coco.params.kpt_oks_sigmas, sigmas())
    ours = coco_oks_ap(data["dataset"].coco, data["poses"])
    assert ours["AP"] == pytest.approx(100 * coco.stats[0], abs=1e-9)
    # only pose-annotated images are evaluated, as by the paper's metrics
    assert coco.params.imgIds == sorted(im["id"] for im in data["dataset"].images
                                        if im.get("pose_annotated", True))


@pytest.mark.parametrize("results", ["sub", "pose_json", "poses"])
def test_results_may_be_a_submission_a_pose_json_or_records(data, results):
    reference = coco_keypoint_eval(data["gt"], data["poses"], verbose=False).stats
    gt = json.loads(data["gt"].read_text())
    stats = coco_keypoint_eval(gt, data[results], verbose=False).stats
    np.testing.assert_array_equal(stats, reference)


def test_summary_printed_only_when_verbose(data, capsys):
    coco_keypoint_eval(data["gt"], data["sub"], library="faster_coco_eval")
    assert "Average Precision" in capsys.readouterr().out
    coco_keypoint_eval(data["gt"], data["sub"], verbose=False)
    assert capsys.readouterr().out == ""


def test_unknown_library_is_refused(data):
    with pytest.raises(ValueError, match="pycocotools, faster_coco_eval"):
        coco_keypoint_eval(data["gt"], data["sub"], library="xtcocotools")


def test_mmpose_dataset_info_parses_as_mmpose_parses_it():
    """What mmpose's ``parse_pose_metainfo`` derives (flip indices from ``swap`` names,
    upper/lower ids, link ids, colours as uint8, one weight and sigma per keypoint)
    matches the schema."""
    info = mmpose_dataset_info()
    json.dumps(info)  # plain values only: writable into a config file
    keypoints = info["keypoint_info"]
    name2id = {kpt["name"]: kpt_id for kpt_id, kpt in keypoints.items()}
    assert [kpt["id"] for kpt in keypoints.values()] == list(keypoints) == \
        list(range(schema.NUM_JOINTS))
    assert list(name2id) == list(schema.JOINT_NAMES)
    flip = [name2id[kpt["swap"] or kpt["name"]] for kpt in keypoints.values()]
    assert flip == schema.FLIP_INDEX.tolist()
    upper = [i for i, kpt in keypoints.items() if kpt["type"] == "upper"]
    lower = [i for i, kpt in keypoints.items() if kpt["type"] == "lower"]
    assert {schema.JOINT_NAMES[i] for i in upper} == set(schema.POSE_AP_COLUMNS["U-Body"])
    assert sorted(upper + lower) == list(range(schema.NUM_JOINTS))
    links = [tuple(name2id[n] for n in link["link"]) for link in info["skeleton_info"].values()]
    assert links == list(schema.SKELETON_INDEX)
    for colour in [k["color"] for k in keypoints.values()] + \
            [s["color"] for s in info["skeleton_info"].values()]:
        assert len(colour) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in colour)
    assert [k["color"] for k in keypoints.values()] == [list(j.colour) for j in schema.JOINTS]
    assert info["sigmas"] == sigmas().tolist()
    weights = dict(zip(schema.JOINT_NAMES, info["joint_weights"]))
    assert weights["l_wrist"] == weights["r_ankle"] == JOINT_WEIGHTS_BY_TYPE["Wrist"] == 1.5
    assert weights["r_knee"] == 1.2 and weights["forehead"] == weights["l_hip"] == 1.0


def test_detectron2_metadata_gives_the_schema_flip_indices():
    """detectron2 turns ``keypoint_flip_map`` into flip indices (both directions, names not
    in the map stay): those must be the schema's."""
    metadata = detectron2_keypoint_metadata()
    names = metadata["keypoint_names"]
    flip_map = dict(metadata["keypoint_flip_map"])
    flip_map.update({v: k for k, v in flip_map.items()})
    assert [names.index(flip_map.get(n, n)) for n in names] == schema.FLIP_INDEX.tolist()
    assert names == list(schema.JOINT_NAMES) and metadata["thing_classes"] == ["person"]
    rules = metadata["keypoint_connection_rules"]
    assert [(names.index(a), names.index(b)) for a, b, _ in rules] == \
        list(schema.SKELETON_INDEX)
    assert [colour for _, _, colour in rules] == list(schema.SKELETON_COLOURS)
