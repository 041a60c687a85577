"""Leaderboards: the published rows as data; reproducible outputs with one board per ground
truth; plots shown and linked; stable colours; intervals; errors."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pascal_person_pose.cli import main
from test_cli_conventions import _stderr_on_terminal
from pascal_person_pose.leaderboard import boards, plot_figure, write_leaderboard
from pascal_person_pose.results import (TABLES, add_result, load_results, method_colour,
                                        result_from_score)

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


def test_published_rows_state_their_ground_truth_and_colour():
    colours = set()
    for row in _published().values():
        assert row["ground_truth"] == {"name": "PASCAL-Person-Part", "split": "val",
                                       "images": 1817, "fingerprint": None}
        colours.add(row["colour"])
    assert len(colours) == len(_published())


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("leaderboard")
    result = CliRunner().invoke(main, ["leaderboard", str(RESULTS), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    return [Path(line.removeprefix("wrote ")) for line in result.output.splitlines()]


PUBLISHED_PLOTS = {f"{stem}-pascal-person-part-val.png"
                   for stem in ("pose_ap", "adk", "parts_iou", "parts_by_size")}


def test_leaderboard_is_byte_identical_across_runs(generated, tmp_path):
    second = write_leaderboard(RESULTS, tmp_path)
    assert [p.name for p in generated] == [p.name for p in second]
    assert {"leaderboard.md", "leaderboard.html", "leaderboard.csv", *PUBLISHED_PLOTS} == \
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
    assert '<meta name="viewport"' in page
    for external in ("<script src", "<link", "http://", "https://", "@import"):
        assert external not in page


def test_every_plot_is_shown_in_the_html_and_linked_from_the_markdown(with_scored_rows):
    results, out, written = with_scored_rows
    plots = [p.name for p in written if p.suffix == ".png"]
    assert len(plots) == 8  # four tables on each of two ground truths
    page = (out / "leaderboard.html").read_text()
    markdown = (out / "leaderboard.md").read_text()
    for name in plots:
        assert f'<img src="{name}"' in page, name
        assert re.search(rf"!\[Plot of [^\]]+\]\({re.escape(name)}\)", markdown), name


def test_plot_legends_are_readable():
    for board in boards(load_results(RESULTS)):
        for spec in TABLES:
            if spec.key in board.ranked:
                figure = plot_figure(spec, board.ranked[spec.key], board.label)
                texts = figure.axes[0].get_legend().get_texts()
                assert len(texts) == len(board.ranked[spec.key])
                assert min(t.get_fontsize() for t in texts) >= 9


# ---------------------------------------------------------------- scored rows and boards


def _scores(total: float, fingerprint: str = "sha256:" + "ab" * 32, intervals=None) -> dict:
    """A score as `ppp score` writes it (pose and parts tasks)."""
    per_class = {"background": 95.0, "head": 80.0, "torso": 60.0, "upper_arm": 50.0,
                 "lower_arm": None, "upper_leg": 45.0, "lower_leg": 40.0}
    scores = {"pose_ap": {"table": dict.fromkeys(TABLES[0].columns, total)},
              "adk": {"table": dict.fromkeys(TABLES[1].columns, 30.0)},
              "parts": {"per_class": per_class, "miou": 61.67},
              "parts_by_size": {"XS": 50.0, "S": 55.0, "M": 60.0, "L": 65.0,
                                "counts": {"XS": 1, "S": 2, "M": 3, "L": 4},
                                "thresholds": [0.005, 0.02, 0.08]},
              "params": {"split": "val", "ground_truth": fingerprint, "images": 20}}
    if intervals:
        scores["intervals"] = intervals
        scores["bootstrap"] = {"resamples": 1000, "seed": 7, "level": 0.95,
                               "method": "percentile"}
    return scores


@pytest.fixture(scope="module")
def with_scored_rows(tmp_path_factory) -> tuple[Path, Path, list[Path]]:
    """The published rows and two scored rows on another ground truth, and their board."""
    results = tmp_path_factory.mktemp("scored") / "results"
    shutil.copytree(RESULTS, results)
    add_result(results, result_from_score(_scores(100.0), "Tiny Net (ours)",
                                          meta={"method": "T"}))
    add_result(results, result_from_score(_scores(45.0), "Another Net"))
    out = results.parent / "out"
    return results, out, write_leaderboard(results, out)


def _section(markdown: str, heading: str, table: str) -> list[str]:
    """The table rows of ``table`` under the ground-truth heading ``heading``."""
    board = markdown.split(f"## {heading}\n")[1].split("\n## ")[0]
    rows = board.split(f"### {table}")[1].split("\n\n")[1]
    return rows.splitlines()[2:]


def test_a_synthetic_score_is_never_ranked_among_the_papers_rows(with_scored_rows):
    """What was seen: a 20-image synthetic score added with --add-to ranked #1 above the
    papers' rows. Now each ground truth has its own tables."""
    results, out, _ = with_scored_rows
    row = json.loads((results / "tiny-net-ours.json").read_text())
    assert row["ground_truth"] == {"split": "val", "fingerprint": "sha256:" + "ab" * 32,
                                   "images": 20}
    assert row["source"] == "scored" and row["tables"]["parts"]["L-arms"] is None
    markdown = (out / "leaderboard.md").read_text()
    published = _section(markdown, "PASCAL-Person-Part val, published (1817 images)",
                         "Table 1")
    assert published[0].startswith("| 1 | Xia et al. (final) [")
    assert not any("Tiny Net" in line or "**scored**" in line for line in published)
    scored = _section(markdown, "val split, ground truth sha256:abababababab (20 images)",
                      "Table 1")
    assert scored[0].startswith("| 1 | Tiny Net (ours) [") and "| **scored** | 100.0 |" in \
        scored[0]
    assert scored[1].startswith("| 2 | Another Net [") and len(scored) == 2
    parts = _section(markdown, "val split, ground truth sha256:abababababab (20 images)",
                     "Table 3")
    assert "| 80.00 | 60.00 | 50.00 |  | 45.00 |" in parts[0]  # undefined IoU: empty
    page = (out / "leaderboard.html").read_text()
    assert page.index("PASCAL-Person-Part val, published") < page.index("Tiny Net (ours)")
    assert '<tr class="scored">' in page and '<tr class="published">' in page
    lines = list(csv.reader(io.StringIO((out / "leaderboard.csv").read_text())))
    assert lines[0][:7] == ["method", "source", "citation", "ground_truth", "split",
                            "fingerprint", "pose_ap:Head"]
    tiny = next(line for line in lines if line[0] == "Tiny Net (ours)")
    assert tiny[1:6] == ["scored", "", "val split, ground truth sha256:abababababab (20 "
                         "images)", "val", "sha256:" + "ab" * 32]
    assert not any(h.endswith(":low") for h in lines[0])  # no row carries intervals


def test_rows_on_two_scored_ground_truths_get_two_boards(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    add_result(results, result_from_score(_scores(50.0, "sha256:" + "11" * 32), "On A"))
    add_result(results, result_from_score(_scores(90.0, "sha256:" + "22" * 32), "On B"))
    add_result(results, result_from_score(_scores(40.0, "sha256:" + "11" * 32), "Also on A"))
    found = boards(load_results(results))
    assert [[r["method"] for r in b.ranked["pose_ap"]] for b in found] == [
        ["On A", "Also on A"], ["On B"]]
    assert [b.slug for b in found] == ["val-111111111111", "val-222222222222"]


# ------------------------------------------------------------------------------ colours


def _bar_colours(results: list[dict]) -> dict[str, tuple]:
    """Each method's bar colour in the plots as drawn."""
    colours = {}
    for board in boards(results):
        for spec in TABLES:
            if spec.key in board.ranked:
                axes = plot_figure(spec, board.ranked[spec.key], board.label).axes[0]
                for bars, doc in zip(axes.containers, board.ranked[spec.key]):
                    colours.setdefault(doc["method"], set()).add(bars[0].get_facecolor())
    return {m: c.pop() for m, c in colours.items() if len(c) == 1}


def test_adding_a_row_recolours_no_other_row(tmp_path):
    """What was seen: colours followed alphabetical position, so a new row recoloured
    others. A row named to sort first, and rows without a recorded colour, change nothing."""
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results)
    doc = json.loads((results / "hazn.json").read_text())
    del doc["colour"]  # a hand-written row: its colour comes from its name
    (results / "hazn.json").write_text(json.dumps(doc))
    before = _bar_colours(load_results(results))
    assert len(before) == 12
    add_result(results, result_from_score(_scores(45.0), "AAA first in the alphabet"))
    after = _bar_colours(load_results(results))
    assert {m: after[m] for m in before} == before
    new = json.loads((results / "aaa-first-in-the-alphabet.json").read_text())["colour"]
    assert new not in {method_colour(r) for r in load_results(results)
                       if r["method"] != "AAA first in the alphabet"}


# ---------------------------------------------------------------------------- intervals


def test_intervals_show_in_every_table_format_and_as_error_bars(tmp_path):
    intervals = {"pose_ap": {"table": {**dict.fromkeys(TABLES[0].columns, [43.25, 46.5]),
                                       "Hip": None}},
                 "parts": {"per_class": {"head": [78.0, 82.125]}, "miou": [60.0, 63.0]}}
    doc = result_from_score(_scores(45.0, intervals=intervals), "With Intervals")
    assert doc["intervals"] == {
        "pose_ap": {**dict.fromkeys(TABLES[0].columns, [43.25, 46.5]), "Hip": None},
        "parts": {"Head": [78.0, 82.125], "Ave.": [60.0, 63.0]}}
    results = tmp_path / "results"
    results.mkdir()
    add_result(results, doc)
    add_result(results, result_from_score(_scores(40.0), "Without"))
    write_leaderboard(results, tmp_path / "out")
    out = tmp_path / "out"
    markdown = (out / "leaderboard.md").read_text()
    assert "| 45.0 [43.2, 46.5] |" in markdown and "| 45.0 | 45.0 [43.2, 46.5] |" in markdown
    assert "| 80.00 [78.00, 82.12] |" in markdown and "| 61.67 [60.00, 63.00] |" in markdown
    assert "95% confidence intervals, bootstrap over images (percentile, 1000 resamples, " \
           "seed 7)" in markdown
    without = next(line for line in markdown.splitlines() if line.startswith("| 2 | Without"))
    assert "[" not in without.split("|", 3)[3]
    page = (out / "leaderboard.html").read_text()
    assert '45.0 <span class="ci">[43.2, 46.5]</span>' in page
    table = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    row = next(r for r in table if r["method"] == "With Intervals")
    assert (row["pose_ap:Total"], row["pose_ap:Total:low"], row["pose_ap:Total:high"]) == \
        ("45.0", "43.25", "46.5")
    assert row["pose_ap:Hip:low"] == "" and row["adk:Ave.:low"] == ""
    other = next(r for r in table if r["method"] == "Without")
    assert other["pose_ap:Total:low"] == "" and other["pose_ap:Total"] == "40.0"

    board = boards(load_results(results))[0]
    axes = plot_figure(TABLES[0], board.ranked["pose_ap"], board.label).axes[0]
    caps = [c for c in axes.containers if type(c).__name__ == "ErrorbarContainer"]
    assert len(caps) == 1  # only the row with intervals
    segments = caps[0].lines[2][0].get_segments()
    spans = [(round(s[0][1], 3), round(s[1][1], 3)) for s in segments]
    assert spans == [(43.25, 46.5)] * 8  # every column but Hip, which has no interval


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("content, expected", [
    ("{", "not valid JSON"),
    ('{"method": "M", "citation": "", "source": "guessed", "ground_truth": {}, "tables": {}}',
     "field source"),
    ('{"method": "M", "citation": "", "source": "scored"}', "field ground_truth: missing"),
    ('{"method": "M", "citation": "", "source": "scored", "ground_truth": {"split": "val", '
     '"fingerprint": null}, "tables": {}}', "field ground_truth.fingerprint: is null, which "
     "only published rows may be"),
    ('{"method": "M", "citation": "", "source": "scored", "ground_truth": {"split": "val", '
     '"fingerprint": "md5:00"}, "tables": {}}', "field ground_truth.fingerprint: must be "
     "sha256:"),
    ('{"method": "M", "citation": "", "source": "published", "ground_truth": {"split": '
     '"val", "fingerprint": null}, "tables": {}}', "field ground_truth.name"),
    ('{"method": "M", "citation": "", "source": "scored", "ground_truth": {"split": "val", '
     '"fingerprint": "sha256:' + "0" * 64 + '", "date": 1}, "tables": {}}',
     "field ground_truth.date: unknown field"),
    ('{"method": "M", "citation": "", "source": "published", "ground_truth": {"split": '
     '"val", "fingerprint": null, "name": "P"}}', "field tables: missing"),
    ('{"method": "M", "citation": "", "source": "published", "ground_truth": {"split": '
     '"val", "fingerprint": null, "name": "P"}, "tables": {"pose_ap": {"Head": 1}}}',
     "field tables.pose_ap: must have exactly the columns"),
    ('{"method": "M", "citation": "", "source": "published", "ground_truth": {"split": '
     '"val", "fingerprint": null, "name": "P"}, "tables": {"pck": {}}}',
     "field tables.pck: unknown table"),
    ('{"method": "M", "citation": "", "source": "published", "ground_truth": {"split": '
     '"val", "fingerprint": null, "name": "P"}, "tables": {"parts_by_size": '
     '{"XS": "high", "S": 1, "M": 1, "L": 1}}}', "field tables.parts_by_size.XS"),
    ('{"method": "M", "citation": "", "source": "published", "ground_truth": {"split": '
     '"val", "fingerprint": null, "name": "P"}, "tables": {"parts_by_size": '
     '{"XS": 1, "S": 1, "M": 1, "L": 1}}, "date": "today"}', "field date: unknown field"),
    ('{"method": "M", "citation": "", "source": "published", "ground_truth": {"split": '
     '"val", "fingerprint": null, "name": "P"}, "tables": {"parts_by_size": '
     '{"XS": 1, "S": 1, "M": 1, "L": 1}}, "colour": "red"}', "field colour: must be"),
    ('{"method": "M", "citation": "", "source": "published", "ground_truth": {"split": '
     '"val", "fingerprint": null, "name": "P"}, "tables": {"parts_by_size": '
     '{"XS": 1, "S": 1, "M": 1, "L": 1}}, "intervals": {"parts_by_size": {"XS": [2, 1]}}}',
     "field intervals.parts_by_size.XS: must be [low, high] with low <= high"),
    ('{"method": "M", "citation": "", "source": "published", "ground_truth": {"split": '
     '"val", "fingerprint": null, "name": "P"}, "tables": {"parts_by_size": '
     '{"XS": 1, "S": 1, "M": 1, "L": 1}}, "intervals": {"pose_ap": {}}}',
     "field intervals.pose_ap: covers a table the row does not have"),
    ('{"method": "M\\nN", "citation": "", "source": "published", "ground_truth": {}, '
     '"tables": {}}', "record M\\nN, field method: contains a control character"),
    ('[' * 100000 + ']' * 100000, "not valid JSON"),
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


def test_cli_leaderboard_refuses_methods_that_only_differ_in_case_or_punctuation(tmp_path):
    duplicate = tmp_path / "dup"
    shutil.copytree(RESULTS, duplicate)
    shutil.copy(duplicate / "hazn.json", duplicate / "hazn-again.json")
    result = CliRunner().invoke(main, ["leaderboard", str(duplicate), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "method also in hazn" in result.stderr
    doc = json.loads((duplicate / "hazn.json").read_text())
    (duplicate / "hazn-again.json").write_text(json.dumps({**doc, "method": "hazn!"}))
    result = CliRunner().invoke(main, ["leaderboard", str(duplicate), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "method too close to 'hazn!'" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_leaderboard_shows_progress_on_a_terminal_only(tmp_path):
    """What was seen: `ppp leaderboard` ran silently for many seconds."""
    shown = _stderr_on_terminal(["leaderboard", str(RESULTS), "--out", "a"], tmp_path)
    assert re.search(r"plots: 100%\|.*\| 4/4", shown), shown
    assert _stderr_on_terminal(["leaderboard", str(RESULTS), "--out", "b", "--quiet"],
                               tmp_path) == ""
