"""The study of the paper's claims (benchmark/paper_claims.py): verdicts and report.

The study itself trains for tens of minutes; here its report is built from comparisons
shaped exactly as `ppp compare --json` writes them, with known differences.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmark" / "paper_claims.py"
_spec = importlib.util.spec_from_file_location("paper_claims", SCRIPT)
paper_claims = importlib.util.module_from_spec(_spec)
sys.modules["paper_claims"] = paper_claims  # dataclasses look their module up
_spec.loader.exec_module(paper_claims)


@pytest.mark.parametrize("interval, direction, expected", [
    ([0.5, 2.0], +1, "holds"), ([-2.0, -0.5], +1, "reversed"), ([-0.5, 2.0], +1, "not shown"),
    ([-2.0, -0.5], -1, "holds"), ([0.5, 2.0], -1, "reversed"), ([0.0, 2.0], +1, "not shown"),
    (None, +1, "undefined")])
def test_a_claim_holds_only_when_its_interval_excludes_zero_in_the_papers_direction(
        interval, direction, expected):
    assert paper_claims.verdict(interval, direction) == expected


def _comparison(differences: dict[tuple[str, ...], float | None]) -> dict:
    rows = []
    for claim in paper_claims.claims():
        d = differences.get(claim.path, 0.1)
        rows.append({"path": list(claim.path), "a": None if d is None else 50.0 + d,
                     "b": None if d is None else 50.0, "difference": d,
                     "interval": None if d is None else [d - 1.0, d + 1.0],
                     "p_value": None if d is None else 0.01})
    return {"rows": rows}


def test_the_report_states_each_claim_and_the_size_with_the_largest_gain():
    comparisons = {
        "wo-seg": _comparison({("pose_ap", "table", "Total"): 3.0,
                               ("adk", "table", "Ave."): -5.0}),
        "wo-pose": _comparison({("parts", "miou"): 4.0, ("parts_by_size", "XS"): 2.0,
                                ("parts_by_size", "S"): 6.0, ("parts_by_size", "L"): None}),
        "full-image": _comparison({("pose_ap", "table", "Total"): -3.0}),
    }
    timings = {"final": {"seconds": 100.0, "ms_per_image": {"fcn": 40.0, "fcrf": 200.0}},
               "full-image": {"seconds": 300.0, "ms_per_image": {"fcn": 90.0, "fcrf": 900.0}}}
    setup = {"train_images": 600, "val_images": 300, "seed": 0, "resamples": 1000,
             "train_args": ""}
    text, data = paper_claims.report(comparisons, timings, setup)
    verdicts = {(c["ablation"], tuple(c["path"])): c["verdict"] for c in data["claims"]}
    assert verdicts["wo-seg", ("pose_ap", "table", "Total")] == "holds"
    assert verdicts["wo-seg", ("adk", "table", "Ave.")] == "holds"  # lower is better
    assert verdicts["wo-pose", ("parts", "miou")] == "holds"
    assert verdicts["wo-pose", ("parts_by_size", "L")] == "undefined"
    assert verdicts["full-image", ("pose_ap", "table", "Total")] == "reversed"
    assert verdicts["wo-seg", ("pose_ap", "table", "Head")] == "not shown"
    assert data["largest_size_gain"] == "S"
    assert "| pose mAP Total | 53.00 | 50.00 | +3.00 | [+2.00, +4.00] | 0.010 | holds |" in text
    assert "| mIOU L | - | - | - | - | - | undefined |" in text
    assert "Largest mIOU gain from the pose input by size: S (+6.00; the paper: XS)." in text
    assert "FCRF time, full image / boxes: 4.50x." in text
    tables = [line for line in text.splitlines() if line.startswith("## ")]
    assert tables == ["## Table 1: pose mAP, w/ vs w/o segment features",
                      "## Table 2: ADK, w/ vs w/o segment features (lower is better)",
                      "## Table 3: part IoU, w/ vs w/o pose input",
                      "## Table 4: part mIOU by person size, w/ vs w/o pose input",
                      "## Boxes vs full image: accuracy", "## Boxes vs full image: time"]


def test_a_failing_step_stops_the_study_with_one_line(tmp_path):
    """A dataset that cannot be synthesised (a file where the folder goes) ends the run
    with one line naming the step and the log."""
    out = tmp_path / "study"
    out.mkdir()
    (out / "raw").write_text("not a folder")
    run = subprocess.run([sys.executable, str(SCRIPT), str(out)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "log.txt" in lines[0], \
        run.stderr
