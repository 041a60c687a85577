"""scripts/demo.sh's control flow, with stand-ins for ppp, ppp-baseline and python that
record their calls: which steps run with which options, and that a failed prediction ends
the demo with its log and exit 1 instead of a leaderboard built without it.
The real commands are tested where they live; the demo itself runs in `make demo`."""

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "demo.sh"

# One stand-in for all three commands: logs its name and arguments, fails a predict whose
# arguments contain $FAIL_ON, answers the one python -c the demo runs (a val image id) and
# writes the leaderboard page the demo prints from.
STAND_IN = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$CALLS"
case "$(basename "$0") $*" in
  python\\ -c*) echo 2008_000001 ;;
  ppp\\ leaderboard*) mkdir -p "$4"
    printf '## val split, ground truth x\\n### Table 1\\n| a row |\\n### Table 4\\n' > "$4/leaderboard.md" ;;
  *predict*"$FAIL_ON"*) echo "Error: damaged.pt: not a readable checkpoint" >&2; exit 2 ;;
esac
"""


def run_demo(tmp_path, jobs, fail_on="no option matches this"):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("ppp", "ppp-baseline", "python"):
        (bin_dir / name).write_text(STAND_IN)
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / "calls.txt"
    env = {**os.environ, "CALLS": str(calls), "FAIL_ON": fail_on, "DEMO_JOBS": str(jobs)}
    result = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out"), str(bin_dir)],
                            env=env, capture_output=True, text=True, timeout=120)
    return result, calls.read_text().splitlines()


def test_the_demo_trains_with_a_parallel_detector_and_predicts_every_variant(tmp_path):
    result, calls = run_demo(tmp_path, jobs=2)
    assert result.returncode == 0, result.stderr
    train = [c for c in calls if c.startswith("ppp-baseline train")]
    assert len(train) == 1 and "--parallel-detector" in train[0]
    predictions = [c for c in calls if c.startswith(("ppp-baseline predict",
                                                     "ppp-baseline trivial"))]
    assert len(predictions) == 5
    for flag in ("--full-image", "--no-segment-features", "--no-pose-refinement"):
        assert sum(flag in c for c in predictions) == 1
    assert sum(c.startswith("ppp score") for c in calls) == 5
    assert calls[-1].startswith("ppp leaderboard")
    for name in ("final", "wo-seg", "wo-pose", "full-image", "trivial"):
        assert f"-- {name}" in result.stdout  # each prediction's log, in order


def test_one_job_trains_in_one_process(tmp_path):
    result, calls = run_demo(tmp_path, jobs=1)
    assert result.returncode == 0, result.stderr
    assert not any("--parallel-detector" in c for c in calls)


def test_a_failed_prediction_ends_the_demo_with_its_log(tmp_path):
    result, calls = run_demo(tmp_path, jobs=2, fail_on="--no-segment-features")
    assert result.returncode == 1
    assert "Error: damaged.pt: not a readable checkpoint" in result.stdout  # its log
    assert "a prediction failed" in result.stderr
    assert not any(c.startswith("ppp leaderboard") for c in calls)
    # The others still ran and were scored; the failed one was not.
    assert sum(c.startswith("ppp score") for c in calls) == 4
