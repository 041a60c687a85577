"""QA checks: each check fires on the error it is for, and stays quiet on clean labels."""

import json
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from click.testing import CliRunner

from canonical_fixture import write_canonical_dataset
from pascal_person_pose import schema
from pascal_person_pose.cli import main
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.label import qa
from pascal_person_pose.label.proposals import propose_split
from pascal_person_pose.label.store import AnnotationStore
from upstream_labels import SAMPLES, labelled_samples

J = {name: k for k, name in enumerate(schema.JOINT_NAMES)}


@pytest.fixture
def written(tmp_path):
    return write_canonical_dataset(tmp_path)


def big_person(written):
    """(annotation id, keypoints) of the largest person of the val split (faces the camera)."""
    record = written["images"]["2009_000012"]
    return record["annotation_ids"][0], record["keypoints"][0].copy()


def edit(root, annotation_id, keypoints):
    store = AnnotationStore(root, "val")
    store.update_person(annotation_id, keypoints, None, store.revision)


def flags_of(root, annotation_id):
    return [f for f in qa.check_split(root, "val") if f.annotation_id == annotation_id]


def test_clean_labels_raise_only_the_real_gap(written, tmp_path):
    assert qa.check_split(tmp_path, "train") == []
    flags = qa.check_split(tmp_path, "val")
    assert [(f.check, f.joints) for f in flags] == [("missing_joint", ("l_ankle",))]
    assert flags[0].annotation_id == written["images"]["2009_000012"]["annotation_ids"][1]


def test_swapped_hips_contradict_the_shoulders(written, tmp_path):
    aid, kp = big_person(written)
    kp[[J["r_hip"], J["l_hip"]]] = kp[[J["l_hip"], J["r_hip"]]]
    edit(tmp_path, aid, kp)
    flags = flags_of(tmp_path, aid)
    crossing = [f for f in flags if f.check == "lr_crossing" and f.severity == "error"]
    assert len(crossing) == 1
    assert set(crossing[0].joints) == {"r_shoulder", "l_shoulder", "r_hip", "l_hip"}


def test_crossed_knees_are_a_warning(written, tmp_path):
    aid, kp = big_person(written)
    kp[[J["r_knee"], J["l_knee"]]] = kp[[J["l_knee"], J["r_knee"]]]
    edit(tmp_path, aid, kp)
    flags = [f for f in flags_of(tmp_path, aid) if f.check == "lr_crossing"]
    assert [(f.severity, f.joints) for f in flags] == [("warning", ("r_knee", "l_knee"))]
    assert "faces the camera" in flags[0].message


def test_a_mirrored_person_is_not_a_crossing(written, tmp_path):
    """Every pair swapped is a person seen from behind, not an error."""
    aid, kp = big_person(written)
    edit(tmp_path, aid, kp[schema.FLIP_INDEX])
    assert not [f for f in flags_of(tmp_path, aid) if f.check == "lr_crossing"]


def test_a_visible_joint_off_the_person_is_outside_its_mask(written, tmp_path):
    aid, kp = big_person(written)
    kp[J["r_wrist"], :2] = (90, 68)  # the far corner of the 96x72 image, on background
    edit(tmp_path, aid, kp)
    flags = [f for f in flags_of(tmp_path, aid) if f.check == "outside_mask"]
    assert len(flags) == 1 and flags[0].joints == ("r_wrist",) and flags[0].severity == "error"
    assert flags[0].score > 2
    # occluded joints may lie behind something else: not flagged
    kp[J["r_wrist"], 2] = 1
    edit(tmp_path, aid, kp)
    assert not [f for f in flags_of(tmp_path, aid) if f.check == "outside_mask"]


def test_a_knee_on_the_torso_is_on_the_wrong_part(written, tmp_path):
    aid, kp = big_person(written)
    torso = [J[n] for n in ("r_shoulder", "l_shoulder", "r_hip", "l_hip")]
    kp[J["r_knee"], :2] = kp[torso, :2].mean(axis=0).round()
    edit(tmp_path, aid, kp)
    flags = [f for f in flags_of(tmp_path, aid) if f.check == "wrong_part"]
    assert [f.joints for f in flags] == [("r_knee",)]
    assert "upper_leg / lower_leg" in flags[0].message


def test_pending_proposals_are_listed_and_flags_sorted_by_severity(written, tmp_path):
    aid, kp = big_person(written)
    kp[J["r_hip"], :2] = (90, 68)
    edit(tmp_path, aid, kp)
    propose_split(tmp_path, "val")
    flags = qa.check_split(tmp_path, "val")
    severities = [qa.SEVERITIES.index(f.severity) for f in flags]
    assert severities == sorted(severities)
    assert {f.check for f in flags} >= {"outside_mask", "pending_proposal"}
    assert not [f for f in flags if f.check == "missing_joint"]  # proposed, so not missing
    info = [f for f in flags if f.check == "pending_proposal"]
    assert all(f.severity == "info" and f.joints for f in info)


def poses(count, rng):
    """``count`` copies of one standing pose at random scales with a little noise."""
    base = np.array([[0, -18], [0, -12], [-5, -11], [-8, -4], [-10, 2], [-3, 3], [-4, 11],
                     [-4, 19], [5, -11], [8, -4], [10, 2], [3, 3], [4, 11], [4, 19]], float)
    scale = rng.uniform(2, 8, count)[:, None, None]
    xy = base[None] * scale + rng.normal(0, 0.3, (count, 14, 2)) + 100
    return np.concatenate([xy, np.full((count, 14, 1), 2.0)], axis=2)


def test_bone_statistics_flag_a_too_long_bone_only():
    rng = np.random.default_rng(0)
    stats = qa.BoneStats.fit(poses(80, rng))
    person = poses(1, rng)[0]
    _, z = stats.residuals(person[None])
    assert np.nanmax(np.abs(z)) < stats.params.bone_z

    stretched = person.copy()
    stretched[J["r_wrist"], :2] += 3 * (person[J["r_wrist"], :2] - person[J["r_elbow"], :2])
    flags = qa._bone_lengths(stretched, stats)
    assert [f[3] for f in flags] == [("r_elbow", "r_wrist")]
    assert "4.0x too long" in flags[0][4]

    shortened = person.copy()  # a forearm pointing at the camera
    shortened[J["r_wrist"], :2] = person[J["r_elbow"], :2] + 1
    assert qa._bone_lengths(shortened, stats) == []

    few = np.zeros_like(person)
    few[:3] = stretched[:3]  # two bones: no reliable scale
    assert qa._bone_lengths(few, stats) == []


def test_bone_statistics_of_never_labelled_bones_are_nan_without_warnings_across_threads():
    """A bone no one labels is NaN, silently, in any thread: the labeling server checks in
    several at once, and ``warnings.catch_warnings`` (process-wide) let warnings through."""
    rng = np.random.default_rng(0)
    split = poses(40, rng)
    split[:, J["l_ankle"], 2] = 0  # the left shin is never labelled

    def fit(_):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning in this thread fails the fit
            return qa.BoneStats.fit(split)

    with ThreadPoolExecutor(8) as pool:
        fitted = list(pool.map(fit, range(32)))
    shin = qa._BONES.tolist().index([J["l_knee"], J["l_ankle"]])
    assert all(np.isnan(f.typical[shin]) and np.isnan(f.spread[shin]) for f in fitted)
    assert all(np.isfinite(np.delete(f.typical, shin)).all() for f in fitted)


def test_person_scale_falls_back_to_the_mask_box():
    kp = np.zeros((14, 3))
    kp[J["forehead"]] = (10, 10, 2)
    kp[J["neck"]] = (10, 16, 2)
    assert qa.person_scale(kp, np.array([0, 0, 30, 40])) == 6
    kp[J["neck"], 2] = 0
    assert qa.person_scale(kp, np.array([0, 0, 30, 40])) == 50 / 8


def test_ppp_label_check_prints_a_table_and_writes_the_report(written, tmp_path):
    aid, kp = big_person(written)
    kp[J["r_wrist"], :2] = (2, 70)  # bottom left, on background, on the person's right
    edit(tmp_path, aid, kp)
    out = tmp_path / "qa.json"
    result = CliRunner().invoke(main, ["label", "check", str(tmp_path), "--split", "val",
                                       "--json", str(out)])
    assert result.exit_code == 1, result.output  # an error fails the check (--fail-on)
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["severity", "check", "image", "person"]
    assert lines[1].startswith("error") and "outside_mask" in lines[1]
    assert lines[-1] == "error: 1, warning: 1, info: 0"
    report = json.loads(out.read_text())
    assert report["counts"]["outside_mask"]["error"] == 1
    assert report["flags"][0]["check"] == "outside_mask"
    assert report["flags"][0]["annotation_id"] == aid
    assert report["params"]["mask_margin"] == qa.QAParams().mask_margin


@pytest.fixture(scope="module")
def real_labelled(tmp_path_factory):
    """The real PASCAL-Part samples with our labels as their ground truth."""
    if not SAMPLES.is_dir():
        pytest.skip(f"{SAMPLES} is absent")
    return labelled_samples(tmp_path_factory.mktemp("real"), with_poses=True)


def side_flags(root, annotation_id=None):
    return [f for f in qa.check_split(root, "val", progress=False)
            if f.check in ("wrong_side", "swapped_sides")
            and (annotation_id is None or f.annotation_id == annotation_id)]


def _real_person(root, voc_id, instance):
    """(a copy of the real split in a fresh folder, annotation id, keypoints) of one person."""
    dataset = Dataset(root, "val")
    sample = dataset[dataset.index_of(voc_id)]
    person = next(p for p in sample.persons if p.instance == instance)
    return person.annotation_id, person.keypoints.copy()


def _copy(root, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(root, copy, symlinks=True)
    return copy


def test_our_real_labels_agree_with_the_fine_parts(real_labelled):
    """Labelled by eye with the person's own left and right, front and back views alike."""
    assert side_flags(real_labelled) == []


def test_a_person_mirrored_as_a_whole_is_one_swapped_sides_error(real_labelled, tmp_path):
    root = _copy(real_labelled, tmp_path)
    aid, kp = _real_person(root, "2010_005243", 3)  # seen from behind, on a chair
    edit(root, aid, kp[schema.FLIP_INDEX])
    flags = side_flags(root)
    assert [(f.check, f.severity, f.annotation_id) for f in flags] == [
        ("swapped_sides", "error", aid)]
    assert "mirror the labels" in flags[0].message and len(flags[0].joints) >= 2


def test_one_swapped_pair_is_two_wrong_side_errors(real_labelled, tmp_path):
    root = _copy(real_labelled, tmp_path)
    aid, kp = _real_person(root, "2010_005243", 5)  # the child facing the camera
    kp[[J["r_elbow"], J["l_elbow"]]] = kp[[J["l_elbow"], J["r_elbow"]]]
    edit(root, aid, kp)
    flags = side_flags(root)
    assert sorted((f.check, f.joints) for f in flags) == [
        ("wrong_side", ("l_elbow",)), ("wrong_side", ("r_elbow",))]
    assert all(f.annotation_id == aid for f in flags)
    message = next(f.message for f in flags if f.joints == ("r_elbow",))
    assert "left" in message and ("luarm" in message or "llarm" in message)


def test_ppp_label_check_fails_on_a_person_with_swapped_sides(real_labelled, tmp_path):
    root = _copy(real_labelled, tmp_path)
    result = CliRunner().invoke(main, ["label", "check", str(root), "--split", "val",
                                       "--json", str(tmp_path / "clean.json")])
    clean = json.loads((tmp_path / "clean.json").read_text())
    assert clean["counts"]["swapped_sides"]["error"] == 0, result.output
    aid, kp = _real_person(root, "2010_002526", 1)  # the man seen from behind
    edit(root, aid, kp[schema.FLIP_INDEX])
    result = CliRunner().invoke(main, ["label", "check", str(root), "--split", "val",
                                       "--json", str(tmp_path / "report.json")])
    assert result.exit_code == 1 and "swapped_sides" in result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["counts"]["swapped_sides"]["error"] == 1
