"""Result records written by `ppp score --add-to`: the ground truth they were scored on, and
name clashes refused before anything is scored or written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from canonical_fixture import write_canonical_dataset
from pascal_person_pose import scoring
from pascal_person_pose.cli import main
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.errors import InputError
from pascal_person_pose.fingerprint import ground_truth_fingerprint
from pascal_person_pose.results import (PALETTE, free_colour, hashed_colour, load_results,
                                        slug)
from pascal_person_pose.submission import oracle_submission, write_submission

RESULTS = Path(__file__).resolve().parents[1] / "benchmark" / "results"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("canonical")
    write_canonical_dataset(root)
    dataset = Dataset(root, "val")
    poses, parts = oracle_submission(dataset)
    subs = tmp_path_factory.mktemp("subs")
    shifted = []
    for pose in poses:
        keypoints = np.array(pose["keypoints"]).reshape(14, 3)
        keypoints[keypoints[:, 2] > 0, 0] += 6.0
        shifted.append(dict(pose, keypoints=keypoints.ravel().tolist()))
    return {"root": root, "fingerprint": ground_truth_fingerprint(dataset),
            "perfect": write_submission(subs / "perfect", poses, parts),
            "shifted": write_submission(subs / "shifted", shifted, None)}


@pytest.fixture
def results(tmp_path) -> Path:
    copy = tmp_path / "results"
    shutil.copytree(RESULTS, copy)
    return copy


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _add(data, results: Path, method: str, *extra: str, submission: str = "perfect"):
    return CliRunner().invoke(main, ["score", str(data["root"]), str(data[submission]),
                                     "--add-to", str(results), "--method", method, *extra])


@pytest.fixture
def no_scoring(monkeypatch):
    """Fails the test if a submission gets scored: clashes must be found first."""
    def refuse(*args, **kwargs):
        raise AssertionError("scored before the name clash was found")

    monkeypatch.setattr(scoring, "score", refuse)


def test_a_scored_row_records_split_and_ground_truth_fingerprint(data, results):
    result = _add(data, results, "Oracle")
    assert result.exit_code == 0, result.stderr
    assert f"Scored on the val split, ground truth {data['fingerprint']} " in result.output
    row = json.loads((results / "oracle.json").read_text())
    assert row["ground_truth"] == {"split": "val", "fingerprint": data["fingerprint"],
                                   "images": 3}
    assert row["params"]["ground_truth"] == data["fingerprint"]
    assert row["colour"] in PALETTE
    assert row in load_results(results)


@pytest.mark.parametrize("method", ["Xia et al. (final)", "xia et al final", "HAZN"])
def test_a_published_name_is_refused_before_scoring(data, results, no_scoring, method):
    """What was seen: `--add-to --method "Xia et al. (final)"` wrote a file and exited 0,
    then `ppp leaderboard` refused the directory."""
    before = _snapshot(results)
    for extra in ((), ("--replace",)):
        result = _add(data, results, method, *extra)
        assert result.exit_code == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "of a published row; choose another method name" in lines[0]
        assert _snapshot(results) == before
    assert len(load_results(results)) == 12


def test_readding_a_method_needs_replace_which_keeps_its_colour(data, results):
    """What was seen: re-adding a method silently overwrote it."""
    assert _add(data, results, "Our Net").exit_code == 0
    path = results / "our-net.json"
    first = path.read_bytes()
    again = _add(data, results, "our net!", submission="shifted")
    assert again.exit_code == 2 and path.read_bytes() == first
    assert again.stderr.strip().splitlines() == [
        f"error: {path}, record Our Net, field method: method 'our net!' is too close to the "
        "name 'Our Net' of a scored row (val split, ground truth "
        f"{data['fingerprint'][:19]} (3 images)); pass --replace to replace it, or choose "
        "another method name"]
    assert _add(data, results, "Our Net", submission="shifted").exit_code == 2
    replaced = _add(data, results, "Our Net", "--replace", submission="shifted")
    assert replaced.exit_code == 0, replaced.stderr
    old, new = json.loads(first), json.loads(path.read_text())
    assert old["tables"]["pose_ap"]["Total"] == 100.0 > new["tables"]["pose_ap"]["Total"]
    assert "parts" not in new["tables"] and new["colour"] == old["colour"]
    assert len(list(results.glob("*.json"))) == 13


def test_other_clashes_are_refused_before_scoring(data, results, no_scoring, tmp_path):
    doc = json.loads((results / "hazn.json").read_text())
    (results / "our-net.json").write_text(json.dumps({**doc, "method": "Other"}))
    before = _snapshot(results)
    taken = _add(data, results, "Our Net", "--replace")
    assert taken.exit_code == 2 and "holds the row of 'Other'" in taken.stderr
    for method, message in [("x" * 101, "at most 100"), ("Tab\tnet", "control character"),
                            ("+++", "needs a letter or a digit")]:
        result = _add(data, results, method)
        assert result.exit_code == 2 and message in result.stderr, method
        assert len(result.stderr.strip().splitlines()) == 1
    assert _snapshot(results) == before

    (results / "broken.json").write_text("{")
    broken = _add(data, results, "Fine Name")
    assert broken.exit_code == 2 and "refuses: " in broken.stderr and "broken.json" in \
        broken.stderr
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert _add(data, a_file, "Fine Name").exit_code == 2


def test_replace_only_with_add_to(data):
    result = CliRunner().invoke(main, ["score", str(data["root"]), str(data["perfect"]),
                                       "--replace"])
    assert result.exit_code == 2 and "--replace only applies with --add-to" in result.stderr


def test_leaderboard_shows_the_added_row_on_its_own_ground_truth(data, results, tmp_path):
    assert _add(data, results, "Oracle").exit_code == 0
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["leaderboard", str(results), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    markdown = (out / "leaderboard.md").read_text()
    heading = f"## val split, ground truth {data['fingerprint'][:19]} (3 images)"
    assert heading in markdown
    assert markdown.index("## PASCAL-Person-Part val, published") < markdown.index(heading)
    assert markdown.split(heading)[1].count("| 1 | Oracle [") == 4


def test_colours():
    assert hashed_colour("Our Net") == hashed_colour("Our Net") != hashed_colour("Our Net 2")
    rows = [{"method": "A", "colour": PALETTE[0]}, {"method": "B"},
            {"method": "C", "colour": PALETTE[2]}]
    assert free_colour(rows, "D") == PALETTE[1]
    full = [{"method": str(i), "colour": c} for i, c in enumerate(PALETTE)]
    assert free_colour(full, "D") == hashed_colour("D")


def test_slug():
    assert slug("Xia et al. (ResNet-101, final)") == "xia-et-al-resnet-101-final"
    with pytest.raises(InputError):
        slug("+++")


def test_bootstrap_intervals_of_ppp_score_reach_the_leaderboard(data, results, tmp_path):
    """`ppp score --bootstrap N --seed S --add-to` keeps the intervals, and the leaderboard
    shows them beside the numbers (issue 10, item 5)."""
    result = _add(data, results, "Shifted", "--bootstrap", "40", "--seed", "3",
                  submission="shifted")
    assert result.exit_code == 0, result.stderr
    row = json.loads((results / "shifted.json").read_text())
    assert row["bootstrap"] == {"resamples": 40, "seed": 3, "level": 0.95,
                                "method": row["bootstrap"]["method"]}
    assert set(row["intervals"]) == {"pose_ap", "adk"}
    for table, pairs in row["intervals"].items():
        assert set(pairs) == set(row["tables"][table])
        for column, pair in pairs.items():
            value = row["tables"][table][column]
            assert (pair is None) == (value is None)
            assert pair is None or pair[0] <= pair[1]
    out = tmp_path / "out"
    assert CliRunner().invoke(main, ["leaderboard", str(results), "--out", str(out)]
                              ).exit_code == 0
    markdown = (out / "leaderboard.md").read_text()
    line = next(x for x in markdown.splitlines() if x.startswith("| 1 | Shifted ["))
    total = row["tables"]["pose_ap"]["Total"]
    low, high = row["intervals"]["pose_ap"]["Total"]
    assert line.endswith(f"| {total:.1f} [{low:.1f}, {high:.1f}] |")
    assert "(intervals: 95% confidence intervals, bootstrap over images" in markdown
