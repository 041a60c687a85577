"""The ground-truth fingerprint: what it covers, that the documented shell command gives the
same value, and that it changes with any byte the metrics read."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from canonical_fixture import write_canonical_dataset
from pascal_person_pose.cli import main
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.errors import InputError
from pascal_person_pose.fingerprint import ground_truth_files, ground_truth_fingerprint

DOCS = Path(__file__).resolve().parents[1] / "docs" / "leaderboard.md"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("canonical")
    write_canonical_dataset(root)
    return root


def _copy(root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, symlinks=True)
    return copy


def test_covers_annotations_part_and_instance_maps_of_the_split_only(root):
    dataset = Dataset(root, "val")
    files = ground_truth_files(dataset)
    ids = sorted(im["voc_id"] for im in dataset.images)
    assert files == ["annotations/person_pose_val.json",
                     *(f"instances/{i}.png" for i in ids), *(f"parts/{i}.png" for i in ids)]
    assert not any("2008_000003" in f for f in files)  # a train image
    assert re.fullmatch("sha256:[0-9a-f]{64}", ground_truth_fingerprint(dataset))
    assert ground_truth_fingerprint(dataset) != ground_truth_fingerprint(Dataset(root, "train"))


def test_the_documented_shell_command_recomputes_it(root):
    """docs/leaderboard.md gives a coreutils command; run it as written (python3 being this
    interpreter) on the fixture and compare."""
    block = re.search(r"<!-- fingerprint-command -->\s*```sh\n(.*?)```", DOCS.read_text(),
                      re.S)
    assert block, "docs/leaderboard.md lost its fingerprint command"
    command = block.group(1).replace("python3", sys.executable).replace("cd DATA",
                                                                       f"cd '{root}'")
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True)
    assert "sha256:" + out.stdout.split()[0] == ground_truth_fingerprint(Dataset(root, "val"))


def test_independent_of_location_and_changes_with_any_scored_byte(root, tmp_path):
    before = ground_truth_fingerprint(Dataset(root, "val"))
    copy = _copy(root, tmp_path)
    assert ground_truth_fingerprint(Dataset(copy, "val")) == before
    (copy / "images" / "2009_000012.jpg").write_bytes(b"not scored")
    assert ground_truth_fingerprint(Dataset(copy, "val")) == before

    for name in ("parts/2009_000012.png", "instances/2010_000005.png",
                 "annotations/person_pose_val.json"):
        changed = _copy(root, tmp_path / name.replace("/", "_"))
        path = changed / name
        path.write_bytes(path.read_bytes() + b"\n")  # the same content, other bytes
        assert ground_truth_fingerprint(Dataset(changed, "val")) != before, name


def test_missing_map_is_one_line_naming_it(root, tmp_path):
    copy = _copy(root, tmp_path)
    (copy / "instances" / "2010_000001.png").unlink()
    with pytest.raises(InputError, match=r"instances/2010_000001\.png: missing"):
        ground_truth_fingerprint(Dataset(copy, "val"))


def test_info_prints_the_fingerprint_of_each_split(root, tmp_path):
    out = tmp_path / "info.json"
    result = CliRunner().invoke(main, ["info", str(root), "--json", str(out)])
    assert result.exit_code == 0, result.output
    for split in ("train", "val"):
        value = ground_truth_fingerprint(Dataset(root, split))
        assert re.search(rf"^  {split}\s+{value}$", result.output, re.M)
    assert json.loads(out.read_text())["val"]["ground_truth"] == \
        ground_truth_fingerprint(Dataset(root, "val"))


def test_fingerprint_benchmark_runs_on_a_tiny_case(tmp_path):
    """benchmark/perf/fingerprint_speed.py keeps working (the real run is 1817 images)."""
    repo = DOCS.parents[1]
    run = subprocess.run([sys.executable, str(repo / "benchmark" / "perf" /
                                              "fingerprint_speed.py"),
                          "--images", "6", "--repeats", "1", "--workdir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=repo)
    assert run.returncode == 0, run.stderr
    for line in ("13 files", "read the files (baseline)", "ground-truth fingerprint",
                 "x the plain read", "score end to end", "load average"):
        assert line in run.stdout
