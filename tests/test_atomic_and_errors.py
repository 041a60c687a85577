"""Atomic writes never leave a half-written file; InputError names file, record and field."""

import json
import os

import pytest
from PIL import Image

from pascal_person_pose import atomic
from pascal_person_pose.errors import InputError


def test_input_error_names_file_record_and_field():
    e = InputError("a/b.json", "must be a list", record="annotation 7", field="keypoints")
    assert str(e) == "a/b.json, record annotation 7, field keypoints: must be a list"
    assert str(InputError(None, "plain")) == "plain"
    assert str(InputError("x.mat", "truncated")) == "x.mat: truncated"


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.json"
    atomic.write_json(target, {"revision": 1})
    with pytest.raises(RuntimeError):
        with atomic.atomic_open(target, "w") as f:
            f.write('{"revision": ')
            raise RuntimeError("crash in the middle")
    assert json.loads(target.read_text()) == {"revision": 1}
    assert os.listdir(tmp_path) == ["out.json"]  # no temporary left behind


def test_atomic_writers_create_parents(tmp_path):
    atomic.write_text(tmp_path / "a" / "t.txt", "hi")
    atomic.write_bytes(tmp_path / "b" / "t.bin", b"\x00\x01")
    atomic.save_image(tmp_path / "c" / "i.png", Image.new("L", (3, 2), 7))
    assert (tmp_path / "a" / "t.txt").read_text() == "hi"
    assert (tmp_path / "b" / "t.bin").read_bytes() == b"\x00\x01"
    assert Image.open(tmp_path / "c" / "i.png").getpixel((2, 1)) == 7


def test_input_error_survives_pickling_across_processes():
    import pickle
    e = pickle.loads(pickle.dumps(InputError("f.mat", "bad", record="objects(2)", field="mask")))
    assert (e.file, e.record, e.field, e.message) == ("f.mat", "objects(2)", "mask", "bad")


def test_atomic_write_gives_normal_permissions_and_keeps_existing_ones(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "new.txt", "x")
        assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o644
        (tmp_path / "old.txt").write_text("a")
        os.chmod(tmp_path / "old.txt", 0o640)
        atomic.write_text(tmp_path / "old.txt", "b")
        assert (tmp_path / "old.txt").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(umask)
