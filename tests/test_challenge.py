"""`ppp challenge-bundle`: a Codabench bundle whose scoring program, run the way the
platform's compute worker runs it, scores like `ppp score` and fails a malformed submission
with our one-line message.

The platform is emulated from its documented behaviour (docs.codabench.org, the v2 bundle
unpacker and compute worker): the bundle's YAML is read with PyYAML and checked for what
the unpacker requires; a scoring run lays out program/, input/ref (reference data),
input/res (the unzipped submission plus the ``metadata`` file the platform writes into
every prediction result) and output/, substitutes $program, $input and $output in the
command of program/metadata.yaml, runs it from program/ with ``python3``, and marks the
submission Finished when output/scores.json parses, Failed otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from dateutil import parser as date_parser

from canonical_fixture import write_canonical_dataset
from pascal_person_pose.challenge import COLUMNS, leaderboard_scores
from pascal_person_pose.cli import main
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.scoring import score
from pascal_person_pose.submission import oracle_submission, write_submission

NO_SCORES = "Could not find scores file, did the scoring program output it?"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The canonical fixture, a bundle of its val split (zip and directory) and a
    submission that is right on some images and wrong on others."""
    work = tmp_path_factory.mktemp("challenge")
    write_canonical_dataset(work / "data")
    poses, parts = oracle_submission(Dataset(work / "data", "val"))
    for record in poses[::2]:
        record["keypoints"] = [v + 3.0 if k % 3 < 2 and record["keypoints"][k - k % 3 + 2] > 0
                               else v for k, v in enumerate(record["keypoints"])]
    first = sorted(parts)[0]
    parts[first] = (parts[first] + 1) % 7
    write_submission(work / "submission.zip", poses, parts, {"method": "Shifted oracle"})
    cwd = os.getcwd()
    os.chdir(work)
    try:
        for out in ("bundle.zip", "bundle"):
            result = CliRunner().invoke(main, ["challenge-bundle", "data", "--split", "val",
                                               "--out", out, "--start", "2026-01-01"])
            assert result.exit_code == 0, result.output
    finally:
        os.chdir(cwd)
    unpacked = work / "unpacked"
    with zipfile.ZipFile(work / "bundle.zip") as archive:
        archive.extractall(unpacked)
    return {"work": work, "dir": unpacked, "data": work / "data",
            "submission": work / "submission.zip"}


def test_zip_and_directory_hold_the_same_bundle(bundle):
    zipped = sorted(p.relative_to(bundle["dir"]).as_posix()
                    for p in bundle["dir"].rglob("*") if p.is_file())
    directory = bundle["work"] / "bundle"
    assert zipped == sorted(p.relative_to(directory).as_posix()
                            for p in directory.rglob("*") if p.is_file())
    assert "reference_data/annotations/person_pose_val.json" in zipped
    assert not any(name.startswith("reference_data/images") for name in zipped)
    result = CliRunner().invoke(main, ["challenge-bundle", str(bundle["data"]), "--out",
                                       str(directory)])
    assert result.exit_code == 2 and "already exists" in result.output


def test_competition_yaml_is_what_the_v2_unpacker_accepts(bundle):
    root = bundle["dir"]
    competition = yaml.load((root / "competition.yaml").read_text(), Loader=yaml.FullLoader)
    assert competition["version"] == 2 and competition["title"]
    assert (root / competition["image"]).read_bytes()[:4] == b"\x89PNG"
    for page in [{"file": competition["terms"]}, *competition["pages"]]:
        assert (root / page["file"]).read_text().strip(), page
    tasks = {task["index"]: task for task in competition["tasks"]}
    for task in tasks.values():
        assert (root / task["scoring_program"] / "metadata.yaml").is_file()
        assert (root / task["reference_data"]).is_dir()
    for phase in competition["phases"]:
        assert phase["tasks"] and set(phase["tasks"]) <= set(tasks)
        assert date_parser.parse(phase["start"]).year == 2026
    (board,) = competition["leaderboards"]
    columns = board["columns"]
    assert [c["index"] for c in columns] == list(range(len(columns))) == \
        list(range(len(COLUMNS)))
    assert len({c["key"] for c in columns}) == len(columns)
    assert all(len(c["key"]) <= 36 and len(c["title"]) <= 36 for c in columns)
    assert {c["sorting"] for c in columns if c["key"].startswith("adk_")} == {"asc"}
    assert {c["sorting"] for c in columns if not c["key"].startswith("adk_")} == {"desc"}
    assert columns[board["primary_index"]]["key"] == "pose_ap_total"
    # the paper's Tables 1-4, in order: 9 + 9 + 8 + 4 columns
    assert [c["title"] for c in columns[:9]][-1] == "mAP Total"
    assert columns[9]["title"] == "ADK Forehead" and columns[-1]["title"] == "mIOU L"


def _platform_scoring_run(bundle_dir: Path, submission_zip: Path, run: Path) -> dict:
    """One scoring run as Codabench's compute worker does it; returns status and logs."""
    shutil.copytree(bundle_dir / "scoring_program", run / "program")
    shutil.copytree(bundle_dir / "reference_data", run / "input" / "ref")
    with zipfile.ZipFile(submission_zip) as archive:
        archive.extractall(run / "input" / "res")
    (run / "input" / "res" / "metadata").write_text("exitCode: 0\nelapsedTime: 1.0\n")
    (run / "output").mkdir()
    metadata = yaml.load((run / "program" / "metadata.yaml").read_text(),
                         Loader=yaml.FullLoader)
    command = metadata["command"]
    for variable, path in (("$input", run / "input"), ("$output", run / "output"),
                           ("$program", run / "program")):
        command = command.replace(variable, str(path))
    bin_dir = run / "bin"  # the image's python3: this interpreter (a link would lose its venv)
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", PYTHONUNBUFFERED="1")
    process = subprocess.run(command, shell=True, cwd=run / "program", env=env,
                             capture_output=True, text=True, timeout=300)
    scores_file = run / "output" / "scores.json"
    if not scores_file.is_file():
        status, scores, message = "Failed", None, NO_SCORES
    else:
        status, scores, message = "Finished", json.loads(scores_file.read_text()), None
    return {"status": status, "scores": scores, "message": message,
            "stdout": process.stdout, "stderr": process.stderr, "exit": process.returncode}


def test_scoring_program_scores_like_ppp_score(bundle, tmp_path):
    run = _platform_scoring_run(bundle["dir"], bundle["submission"], tmp_path)
    assert run["status"] == "Finished", run["stderr"]
    expected = leaderboard_scores(score(bundle["data"], bundle["submission"], "val"))
    assert run["scores"] == pytest.approx(expected, abs=1e-9)
    assert set(run["scores"]) == {c.key for c in COLUMNS}
    assert 0 < run["scores"]["pose_ap_total"] < 100 and run["scores"]["parts_ave"] < 100
    assert "Table 1: pose mAP" in run["stdout"]
    assert (tmp_path / "output" / "detailed_results.html").is_file()


def test_a_zipped_folder_and_a_parts_only_submission_are_scored(bundle, tmp_path):
    sub = tmp_path / "sub"
    with zipfile.ZipFile(bundle["submission"]) as archive:
        archive.extractall(sub / "my_method")
    (sub / "my_method" / "pose.json").unlink()
    wrapped = tmp_path / "wrapped.zip"
    with zipfile.ZipFile(wrapped, "w") as archive:
        for path in sorted((sub).rglob("*")):
            archive.write(path, path.relative_to(sub).as_posix())
    run = _platform_scoring_run(bundle["dir"], wrapped, tmp_path / "run")
    assert run["status"] == "Finished", run["stderr"]
    assert set(run["scores"]) == {c.key for c in COLUMNS if c.table.startswith("parts")}


def test_malformed_submission_fails_with_our_one_line_message(bundle, tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bundle["submission"]) as source, zipfile.ZipFile(bad, "w") as archive:
        for name in source.namelist():
            data = source.read(name)
            if name == "pose.json":
                records = json.loads(data)
                del records[0]["score"]
                data = json.dumps(records).encode()
            archive.writestr(name, data)
    run = _platform_scoring_run(bundle["dir"], bad, tmp_path / "run")
    assert run["status"] == "Failed" and run["message"] == NO_SCORES
    assert run["exit"] == 2
    assert run["stderr"] == "error: pose.json, record 0, field score: missing\n"
