"""The evaluation phases and the per-image records (``ppp score --details``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from pascal_person_pose.cli import main
from pascal_person_pose.evaluation import (SKIPPED, UNMATCHED, Evaluation, accumulate,
                                           read_details, summarize)
from pascal_person_pose.schema import JOINT_NAMES, NUM_PARTS
from pascal_person_pose.scoring import score
from pascal_person_pose.submission import read_submission, write_submission

TABLES = ("pose_ap", "adk", "parts", "parts_by_size")


@pytest.fixture(scope="module")
def noisy(oracle, tmp_path_factory):
    """The oracle with jittered joints, a stray pose, a dropped person and noisy part maps."""
    rng = np.random.default_rng(3)
    poses = []
    for pose in oracle["poses"][1:]:
        kp = np.array(pose["keypoints"]).reshape(14, 3)
        present = kp[:, 2] > 0
        kp[present, :2] += rng.normal(0, 2.5, (present.sum(), 2))
        kp[present, 2] = rng.uniform(0.1, 1, present.sum())
        poses.append(dict(pose, keypoints=kp.ravel().tolist()))
    stray = np.zeros((14, 3))
    stray[:, :2], stray[:, 2] = (93.0, 68.0), 0.7
    poses.insert(1, dict(oracle["poses"][0], keypoints=stray.ravel().tolist()))
    parts = {voc: np.where(rng.uniform(size=labels.shape) < 0.15,
                           rng.integers(0, NUM_PARTS, labels.shape), labels).astype(np.uint8)
             for voc, labels in oracle["parts"].items()}
    return write_submission(tmp_path_factory.mktemp("noisy") / "s", poses, parts)


def test_split_numbers_are_computed_from_the_details_records(canonical, noisy, tmp_path):
    path = tmp_path / "details.jsonl"
    result = score(canonical["root"], noisy, details=path)
    header, images = read_details(path)
    assert header["tasks"] == ["pose", "parts"] and header["split"] == "val"
    assert [r.voc_id for r in images] == canonical["splits"]["val"]
    again = summarize(accumulate(images, header["params"]))
    assert again == {k: result[k] for k in TABLES}  # exactly, not approximately
    assert result["pose_ap"]["table"]["Total"] < 100 and result["parts"]["miou"] < 100


def test_records_of_the_perfect_submission(canonical, oracle):
    evaluated = Evaluation(oracle["dataset"], read_submission(oracle["perfect_dir"]))
    images = {r.voc_id: r for r in evaluated.evaluate()}
    crowded = images["2009_000012"]
    written = canonical["images"]["2009_000012"]
    assert crowded.annotation_ids.tolist() == written["annotation_ids"]
    assert crowded.match.tolist() == [0, 1, 2]  # pose.json rows of the oracle's poses
    np.testing.assert_array_equal(crowded.labelled, written["keypoints"][:, :, 2] > 0)
    assert (crowded.distance[crowded.labelled] == 0).all()
    assert np.isnan(crowded.distance[~crowded.labelled]).all()
    np.testing.assert_array_equal(crowded.hit, crowded.labelled)
    assert (crowded.adk_term[crowded.labelled] == 0).all()
    assert crowded.pose_person.tolist() == written["annotation_ids"]
    np.testing.assert_array_equal(crowded.tp, crowded.labelled)
    labelled_pixels = (written["part_map"] < NUM_PARTS).sum()
    assert crowded.confusion.trace() == crowded.confusion.sum() == labelled_pixels
    assert crowded.persons_by_size.tolist() == [0, 1, 1, 1]
    unannotated = images["2010_000005"]
    assert not unannotated.pose_annotated and len(unannotated.annotation_ids) == 0
    assert unannotated.persons_by_size.sum() == 2  # part metrics see every image


def test_records_say_what_each_person_and_prediction_got(canonical, noisy, tmp_path):
    path = tmp_path / "details.jsonl"
    score(canonical["root"], noisy, details=path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    crowded = next(r for r in lines[1:] if r["voc_id"] == "2009_000012")
    first, second = crowded["persons"][:2]
    assert first["match"] is None and first["hit"] == [False] * 14  # its pose was dropped
    stray = next(p for p in crowded["predictions"] if p["index"] == 1)
    assert stray["person"] is None and stray["tp"] == [False] * 14
    assert second["match"] == 0 and len(second["distance"]) == len(JOINT_NAMES)
    ankle = JOINT_NAMES.index("l_ankle")  # unlabelled on this person
    assert second["labelled"][ankle] is False and second["distance"][ankle] is None
    assert all(isinstance(d, float) for j, d in enumerate(second["distance"]) if j != ankle)
    assert set(crowded["parts"]["by_size"]) == {"XS", "S", "M", "L"}


def test_adk_codes_round_trip(oracle):
    evaluated = Evaluation(oracle["dataset"], read_submission(oracle["perfect_dir"]))
    image = evaluated.evaluate()[0]
    image.adk_match = np.array([SKIPPED, UNMATCHED, 2])
    record = image.to_json()
    assert [p["adk_match"] for p in record["persons"]] == ["skipped", "unmatched", 2]
    back = type(image).from_json(record)
    assert back.adk_match.tolist() == [SKIPPED, UNMATCHED, 2]


def test_cli_details(canonical, noisy, tmp_path):
    out = tmp_path / "d.jsonl"
    result = CliRunner().invoke(main, ["score", str(canonical["root"]), str(noisy),
                                       "--details", str(out)])
    assert result.exit_code == 0, result.stderr
    assert f"wrote {out}" in result.output
    assert len(out.read_text().splitlines()) == 1 + len(canonical["splits"]["val"])


def test_an_illegal_ground_truth_part_value_names_the_file(oracle, tmp_path):
    from PIL import Image

    from canonical_fixture import write_canonical_dataset
    from pascal_person_pose.errors import InputError

    root = tmp_path / "data"
    write_canonical_dataset(root)
    path = root / "parts" / "2010_000001.png"
    labels = np.array(Image.open(path))
    labels[0, 0] = 9
    Image.fromarray(labels, mode="L").save(path)
    with pytest.raises(InputError, match="parts/2010_000001.png, record image 2010_000001: "
                                         "GT map holds values outside 0-6"):
        score(root, oracle["perfect_dir"])


def test_reading_a_file_that_is_not_a_details_file_is_one_error(tmp_path):
    from pascal_person_pose.errors import InputError

    path = tmp_path / "d.jsonl"
    path.write_text('{"image_id": 1}\n')
    with pytest.raises(InputError, match="not a details file"):
        read_details(path)
