"""Workers of a killed parent exit on their own (`ppp prepare --workers 2`, SIGKILLed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO, run_ppp


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_pool_workers_exit_after_their_parent_is_killed(tmp_path):
    result = run_ppp("synth", "--out", tmp_path / "raw", "--images", "24", "--width", "200",
                     "--height", "150")
    assert result.returncode == 0, result.stderr
    code = "from pascal_person_pose.cli import main; main()"
    parent = subprocess.Popen([sys.executable, "-c", code, "prepare", str(tmp_path / "raw"),
                               str(tmp_path / "out"), "--workers", "2", "--quiet"],
                              env={**os.environ, "PYTHONPATH": str(REPO)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()

    def pool_started() -> bool:
        workers.update(_children(parent.pid))
        return len(workers) >= 2

    def alive() -> set[int]:
        return {w for w in workers if _running(w)}

    try:
        assert _wait_for(pool_started, 120), "the pool never started"
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    try:
        assert _wait_for(lambda: not alive(), 60), f"workers {alive()} outlived their parent"
    finally:
        for w in alive():  # never leave them behind, whatever happened
            os.kill(w, signal.SIGKILL)
