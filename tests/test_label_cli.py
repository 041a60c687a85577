"""`ppp label check` as a gate: its exit status follows --fail-on."""

import numpy as np
import pytest
from click.testing import CliRunner

from canonical_fixture import write_canonical_dataset
from pascal_person_pose import schema
from pascal_person_pose.cli import label as label_cli
from pascal_person_pose.cli import main
from pascal_person_pose.label import qa
from pascal_person_pose.label.store import AnnotationStore


def check(root, *options):
    return CliRunner().invoke(
        main, ["label", "check", str(root), "--split", "val", *options])


@pytest.fixture
def root(tmp_path):
    """val holds one warning (an unlabelled l_ankle whose part is visible) and no error."""
    write_canonical_dataset(tmp_path)
    return tmp_path


@pytest.mark.parametrize("options, status", [
    ((), 0), (("--fail-on", "error"), 0), (("--fail-on", "warning"), 1),
    (("--fail-on", "info"), 1), (("--fail-on", "never"), 0)])
def test_the_exit_status_follows_fail_on(root, options, status):
    result = check(root, *options)
    assert result.exit_code == status, result.output + result.stderr
    assert "error: 0, warning: 1, info: 0" in result.stdout
    if status:
        assert result.stderr == f"failed: 1 findings of severity {options[1]} or worse\n"


def test_an_error_fails_the_default_check(root):
    store = AnnotationStore(root, "val")
    ann = store.read()["annotations"][0]
    keypoints = np.array(ann["keypoints"]).reshape(schema.NUM_JOINTS, 3)
    keypoints[0] = (1, 70, 2)  # the forehead far off the person's mask
    store.update_person(ann["id"], keypoints, None, 0)
    result = check(root)
    assert result.exit_code == 1 and "outside_mask" in result.stdout
    assert result.stderr == "failed: 1 findings of severity error or worse\n"
    assert check(root, "--fail-on", "never").exit_code == 0


def test_the_severities_are_qa_s():
    assert label_cli.SEVERITIES == qa.SEVERITIES
