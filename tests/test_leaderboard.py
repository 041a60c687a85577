"""Leaderboards: the published rows as data, reproducible outputs, scored rows, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pascal_person_pose.cli import main
from pascal_person_pose.errors import InputError
from pascal_person_pose.leaderboard import (PLOT_FILES, TABLES, add_result, load_results,
                                            result_from_score, slug, write_leaderboard)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmark" / "results"
LEADERBOARD = REPO / "benchmark" / "leaderboard"


def _published() -> dict[str, dict]:
    return {r["method"]: r for r in load_results(RESULTS) if r["source"] == "published"}


def test_every_published_row_of_tables_1_to_4_is_entered():
    published = _published()
    table_rows = {spec.key: sorted(m for m, r in published.items() if spec.key in r["tables"])
                  for spec in TABLES}
    assert len(table_rows["pose_ap"]) == len(table_rows["adk"]) == 6
    assert len(table_rows["parts"]) == 6 and len(table_rows["parts_by_size"]) == 4
    for row in published.values():
        assert "Xia, P. Wang, X. Chen, A. L. Yuille" in row["citation"]
        assert "CVPR 2017, Table" in row["citation"]


def test_published_numbers_spot_checks():
    published = _published()
    assert published["Xia et al. (final)"]["tables"]["pose_ap"] == {
        "Head": 58.0, "Shoulder": 52.1, "Elbow": 43.1, "Wrist": 37.2, "Hip": 22.1,
        "Knee": 30.8, "Ankle": 31.1, "U-Body": 47.6, "Total": 39.2}
    assert published["Deeper-Cut"]["tables"]["adk"]["Ankle"] == 67.8
    assert published["HAZN"]["tables"]["parts"]["Ave."] == 57.54
    assert published["Xia et al. (ResNet-101, final)"]["tables"]["parts_by_size"] == {
        "XS": 53.4, "S": 60.9, "M": 63.0, "L": 62.8}
    assert "Insafutdinov" in published["Deeper-Cut"]["citation"]


def test_published_summary_columns_agree_with_their_parts():
    """The paper's U-Body, Total and Ave. columns are means of the other columns: entered
    numbers that disagree beyond rounding were misread."""
    for method, row in _published().items():
        tables = row["tables"]
        if "pose_ap" in tables:
            t = tables["pose_ap"]
            joints = [t[c] for c in ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee",
                                     "Ankle")]
            assert sum(joints[:4]) / 4 == pytest.approx(t["U-Body"], abs=0.1), method
            assert sum(joints) / 7 == pytest.approx(t["Total"], abs=0.1), method
        if "adk" in tables:
            values = list(tables["adk"].values())
            assert sum(values[:8]) / 8 == pytest.approx(values[8], abs=0.1), method
        if "parts" in tables:
            values = list(tables["parts"].values())
            assert sum(values[:7]) / 7 == pytest.approx(values[7], abs=0.01), method


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> list[Path]:
    return write_leaderboard(RESULTS, tmp_path_factory.mktemp("leaderboard"))


def test_leaderboard_is_byte_identical_across_runs(generated, tmp_path):
    second = write_leaderboard(RESULTS, tmp_path)
    assert [p.name for p in generated] == [p.name for p in second]
    assert {"leaderboard.md", "leaderboard.html", "leaderboard.csv", *PLOT_FILES.values()} == \
        {p.name for p in generated}
    for a, b in zip(generated, second):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_committed_leaderboard_is_up_to_date(generated):
    """The tables must match the results; plots are compared by name only, since their
    pixels depend on the installed matplotlib and FreeType."""
    assert {p.name for p in LEADERBOARD.iterdir()} == {p.name for p in generated}
    for path in (p for p in generated if p.suffix != ".png"):
        committed = LEADERBOARD / path.name
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} is stale: run `ppp leaderboard benchmark/results --out "
            "benchmark/leaderboard`")


def test_html_is_self_contained_and_sortable(generated):
    page = next(p for p in generated if p.name == "leaderboard.html").read_text()
    assert "<script>" in page and "addEventListener" in page
    for external in ("<script src", "<link", "http://", "https://", "@import"):
        assert external not in page


def _scored_results(tmp_path) -> Path:
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results)
    scores = {"pose_ap": {"table": dict.fromkeys(TABLES[0].columns, 45.0)},
              "adk": {"table": dict.fromkeys(TABLES[1].columns, 30.0)},
              "parts": {"per_class": {"background": 95.0, "head": 80.0, "torso": 60.0,
                                      "upper_arm": 50.0, "lower_arm": None, "upper_leg": 45.0,
                                      "lower_leg": 40.0}, "miou": 61.67},
              "params": {"split": "val"}}
    add_result(results, result_from_score(scores, "Tiny Net (ours)", meta={"method": "T"}))
    return results


def test_scored_rows_are_marked_and_ranked(tmp_path):
    results = _scored_results(tmp_path)
    row = json.loads((results / "tiny-net-ours.json").read_text())
    assert row["source"] == "scored" and row["tables"]["parts"]["L-arms"] is None
    assert "parts_by_size" not in row["tables"]
    write_leaderboard(results, tmp_path / "out")
    markdown = (tmp_path / "out" / "leaderboard.md").read_text()
    pose_table = markdown.split("## Table 1")[1].split("## Table 2")[0]
    assert pose_table.splitlines()[4].startswith("| 1 | Tiny Net (ours) [")
    assert "| **scored** | 45.0 |" in pose_table and "*published*" in pose_table
    adk_table = markdown.split("## Table 2")[1].split("## Table 3")[0]
    assert adk_table.splitlines()[4].startswith("| 1 | Tiny Net")  # lower ADK is better
    parts_table = markdown.split("## Table 3")[1].split("## Table 4")[0]
    assert "| 80.00 | 60.00 | 50.00 |  | 45.00 |" in parts_table  # undefined IoU: empty
    page = (tmp_path / "out" / "leaderboard.html").read_text()
    assert '<tr class="scored">' in page and '<tr class="published">' in page
    csv = (tmp_path / "out" / "leaderboard.csv").read_text().splitlines()
    assert csv[0].startswith("method,source,citation,pose_ap:Head,")
    assert any(line.startswith("Tiny Net (ours),scored,") for line in csv)


def test_a_published_row_is_never_overwritten(tmp_path):
    results = _scored_results(tmp_path)
    doc = result_from_score({"pose_ap": {"table": dict.fromkeys(TABLES[0].columns, 1.0)}},
                            "Deeper-Cut")
    with pytest.raises(InputError, match="holds published numbers"):
        add_result(results, doc)


def test_slug():
    assert slug("Xia et al. (ResNet-101, final)") == "xia-et-al-resnet-101-final"
    with pytest.raises(InputError):
        slug("+++")


@pytest.mark.parametrize("content, expected", [
    ("{", "not valid JSON"),
    ('{"method": "M", "citation": "", "source": "guessed", "tables": {}}', "field source"),
    ('{"method": "M", "citation": "", "source": "scored"}', "field tables: missing"),
    ('{"method": "M", "citation": "", "source": "scored", "tables": {"pose_ap": {"Head": 1}}}',
     "field tables.pose_ap: must have exactly the columns"),
    ('{"method": "M", "citation": "", "source": "scored", "tables": {"pck": {}}}',
     "field tables.pck: unknown table"),
    ('{"method": "M", "citation": "", "source": "scored", "tables": {"parts_by_size": '
     '{"XS": "high", "S": 1, "M": 1, "L": 1}}}', "field tables.parts_by_size.XS"),
    ('{"method": "M", "citation": "", "source": "scored", "tables": {"parts_by_size": '
     '{"XS": 1, "S": 1, "M": 1, "L": 1}}, "date": "today"}', "field date: unknown field"),
])
def test_cli_leaderboard_bad_results_file_is_one_line(tmp_path, content, expected):
    results = tmp_path / "results"
    results.mkdir()
    (results / "m.json").write_text(content)
    result = CliRunner().invoke(main, ["leaderboard", str(results), "--out",
                                       str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(results / "m.json") in lines[0] and expected in lines[0]
    assert not (tmp_path / "out").exists()


def test_cli_leaderboard_writes_every_file(tmp_path):
    result = CliRunner().invoke(main, ["leaderboard", str(RESULTS), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.stderr
    assert result.output.count("wrote ") == 3 + len(PLOT_FILES)
    duplicate = tmp_path / "dup"
    shutil.copytree(RESULTS, duplicate)
    shutil.copy(duplicate / "hazn.json", duplicate / "hazn-again.json")
    result = CliRunner().invoke(main, ["leaderboard", str(duplicate), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "method also in hazn" in result.stderr
