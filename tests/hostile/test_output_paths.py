"""Outputs that are not plain files: devices, FIFOs, stdout, symbolic links, folders."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading

import pytest

from conftest import REPO, as_nobody, assert_one_error_line, run_ppp
from pascal_person_pose import atomic
from pascal_person_pose.errors import InputError


def _write_child(target: str, **kwargs) -> subprocess.CompletedProcess:
    """``atomic.write_json(target, ...)`` after a print, in a child with the given stdout."""
    code = ("import sys; from pascal_person_pose import atomic; print('table'); "
            f"atomic.write_json({target!r}, {{'miou': 50.0}}); print('done')")
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                          **kwargs)


def test_a_fifo_is_written_to_not_replaced(tmp_path):
    fifo = tmp_path / "scores.fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    atomic.write_json(fifo, {"miou": 50.0})
    reader.join(timeout=30)
    assert json.loads(received[0]) == {"miou": 50.0}
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.listdir(tmp_path) == ["scores.fifo"]


def test_a_character_device_is_written_to_not_replaced(tmp_path):
    null = tmp_path / "null"
    try:  # a private copy of /dev/null: never risk the real one
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device needs root")
    atomic.write_json(null, {"miou": 50.0})
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    assert os.listdir(tmp_path) == ["null"]


@pytest.mark.parametrize("target", ["-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"])
def test_stdout_is_written_in_order_without_truncating_the_redirected_file(tmp_path, target):
    out = tmp_path / "out.txt"
    out.write_text("earlier\n")
    inode = out.stat().st_ino
    with open(out, "a") as f:  # `>> out.txt`: the shell appends
        result = _write_child(target, stdout=f, stderr=subprocess.PIPE, text=True)
    assert result.returncode == 0, result.stderr
    assert out.read_text() == 'earlier\ntable\n{"miou": 50.0}done\n'
    assert out.stat().st_ino == inode


def test_dev_stdout_as_an_unprivileged_user():
    outcome, written = as_nobody(atomic.write_json, "/dev/stdout", [1])
    assert (outcome, written) == (None, b"[1]")


def test_a_symlink_is_followed_and_its_target_replaced(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "42.json").write_text("old")
    os.chmod(runs / "42.json", 0o640)
    latest = tmp_path / "latest.json"
    latest.symlink_to("runs/42.json")
    atomic.write_json(latest, {"miou": 50.0})
    assert os.readlink(latest) == "runs/42.json"
    assert json.loads((runs / "42.json").read_text()) == {"miou": 50.0}
    assert (runs / "42.json").stat().st_mode & 0o777 == 0o640
    assert sorted(os.listdir(runs)) == ["42.json"]
    dangling = tmp_path / "next.json"
    dangling.symlink_to("runs/43.json")
    atomic.write_text(dangling, "new")
    assert dangling.is_symlink() and (runs / "43.json").read_text() == "new"


def test_a_folder_or_a_file_in_the_way_is_one_line(tmp_path):
    with pytest.raises(InputError, match=r"is a folder; give a file name"):
        atomic.write_json(tmp_path, {})
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"file: exists and is not a folder"):
        atomic.write_json(tmp_path / "file" / "out.json", {})
    with pytest.raises(InputError, match=r"unknown image type '.gif'"):
        atomic.save_image(tmp_path / "view.gif", None)


def test_json_is_written_strictly(tmp_path):
    (tmp_path / "scores.json").write_text("{}")
    with pytest.raises(ValueError):
        atomic.write_json(tmp_path / "scores.json", {"x": float("nan")})
    assert (tmp_path / "scores.json").read_text() == "{}"


def test_cli_output_into_a_read_only_folder_is_one_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    result = run_ppp("synth", "--out", tmp_path / "raw", "--images", "2", "--width", "64",
                     "--height", "48")
    assert result.returncode == 0, result.stderr
    result = run_ppp("prepare", tmp_path / "raw", locked / "out", "--quiet", permissions=True)
    assert_one_error_line(result, "locked", "permission denied")


def test_cli_json_to_stdout_with_a_dash(tmp_path):
    from canonical_fixture import write_canonical_dataset

    write_canonical_dataset(tmp_path / "ds")
    result = run_ppp("info", tmp_path / "ds", "--split", "val", "--json", "-")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout[result.stdout.index("{"):])["val"]["images"] == 3
    assert not (tmp_path / "-").exists() and not (REPO / "-").exists()
