"""`ppp label import` of hostile or broken files: one line naming the file, exit 2, nothing
written; an entity bomb, an external entity or a FIFO never hangs or floods the reader."""

import json
import os
import threading

import pytest
from click.testing import CliRunner

from canonical_fixture import write_canonical_dataset
from pascal_person_pose.cli import main
from pascal_person_pose.label.interchange_labelstudio import export_labelstudio

_BOMB = ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e0 "lol">'
         + "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10))
         + ']><annotations><image name="&e9;"/></annotations>')
_EXTERNAL = ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY secret SYSTEM "/etc/passwd">]>'
             '<annotations><image name="&secret;"/></annotations>')


@pytest.fixture
def root(tmp_path):
    write_canonical_dataset(tmp_path / "ds")
    return tmp_path / "ds"


def labelstudio_text(root, tmp_path, change):
    """Our Label Studio export of val as text, changed by ``change(text)``."""
    out = tmp_path / "export.json"
    export_labelstudio(root, "val", out)
    return change(out.read_text())


def first_x(text, replacement):
    """The text with the first keypoint's x replaced by ``replacement`` (raw JSON)."""
    tasks = json.loads(text)
    region = next(r for r in tasks[0]["annotations"][0]["result"]
                  if r["type"] == "keypointlabels")
    region["value"]["x"] = "@X@"
    return json.dumps(tasks).replace('"@X@"', replacement)


@pytest.mark.parametrize("name, content, message", [
    ("deep.json", lambda r, t: "[" * 100_000 + "]" * 100_000, "nested 100000 levels deep"),
    ("digits.json", lambda r, t: labelstudio_text(r, t, lambda s: first_x(s, "7" * 5000)),
     "integer with 5000 digits"),
    ("nan.json", lambda r, t: labelstudio_text(r, t, lambda s: first_x(s, "NaN")),
     "NaN is not a JSON number"),
    ("twice.json", lambda r, t: '{"images": [], "images": [], "annotations": []}',
     "appears twice"),
    ("bomb.xml", lambda r, t: _BOMB, "not well-formed XML"),
    ("external.xml", lambda r, t: _EXTERNAL, "not well-formed XML"),
    ("binary.json", lambda r, t: "\udcff", "not UTF-8"),
])
def test_a_hostile_file_is_one_line_and_exit_2(root, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content(root, tmp_path).encode("utf-8", "surrogateescape"))
    annotations = root / "annotations" / "person_pose_val.json"
    before = annotations.read_bytes()
    result = CliRunner().invoke(main, ["label", "import", str(root), "--split", "val",
                                       str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and message in result.output
    assert str(path) in result.output and "Traceback" not in result.output
    assert annotations.read_bytes() == before


def test_a_fifo_is_refused_without_blocking(root, tmp_path):
    fifo = tmp_path / "edits.xml"
    os.mkfifo(fifo)
    outcome = {}

    def run():
        outcome["result"] = CliRunner().invoke(main, ["label", "import", str(root), "--split",
                                                      "val", str(fifo)])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    if thread.is_alive():  # unblock the reader before failing
        with open(fifo, "w"):
            pass
        pytest.fail("importing a FIFO blocked")
    result = outcome["result"]
    assert result.exit_code == 2 and "not a regular file" in result.output
