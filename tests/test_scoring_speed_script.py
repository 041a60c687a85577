"""The score-speed benchmark keeps working (a tiny case; the real run is 1817 images)."""

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from pascal_person_pose.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_score_speed_benchmark_runs_on_a_tiny_case(tmp_path):
    run = subprocess.run([sys.executable, str(REPO / "benchmark" / "perf" / "score_speed.py"),
                          "--images", "12", "--workdir", str(tmp_path), "--repeat", "1",
                          "--baseline-rev", "HEAD", "--memory", "6"],
                         capture_output=True, text=True, timeout=900, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert "built {'images': 12," in run.stdout
    for line in ("ppp score, this tree (all metrics)", "ppp score at HEAD (all metrics)",
                 "pycocotools COCOeval keypoints", "faster-coco-eval keypoints",
                 "memory: ppp score on     6 images", "load average"):
        assert line in run.stdout
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "dataset"),
                                       str(tmp_path / "submission")])
    assert result.exit_code == 0 and result.output.startswith("OK: ")
