"""The safe JSON reader: hostile text becomes one InputError naming the file and position."""

from __future__ import annotations

import json
import os

import pytest

from pascal_person_pose import safe_json
from pascal_person_pose.errors import InputError


@pytest.mark.parametrize("text, expected", [
    ("[" * 100_000 + "]" * 100_000, "nested 100000 levels deep"),
    ('{"id": ' + "7" * 5000 + "}", "integer with 5000 digits is out of range"),
    ('{"id": -' + "7" * 5000 + "}", "integer with 5000 digits is out of range"),
    ('[1, 2, 9223372036854775808]', "integer 9223372036854775808 is out of range"),
    ('[1.0, NaN]', "line 1, column 7: NaN is not a JSON number"),
    ('[\n  -Infinity]', "line 2, column 3: -Infinity is not a JSON number"),
    ('{"score": 1, "score": 2}', "key 'score' appears twice"),
    ('[{"a": 1}, {"b": [1, 2}]', "not valid JSON at line 1, column 23"),
    (b'["caf\xe9"]', "not UTF-8 text"),
    ("", "not valid JSON at line 1, column 1"),
])
def test_hostile_json_is_one_input_error_naming_the_file(text, expected):
    with pytest.raises(InputError) as caught:
        safe_json.loads(text, "sub/pose.json")
    message = str(caught.value)
    assert message.startswith("sub/pose.json: ") and expected in message
    assert "\n" not in message


def test_the_limits_keep_what_our_formats_hold():
    deep = "[" * safe_json.MAX_DEPTH + "]" * safe_json.MAX_DEPTH
    assert safe_json.nesting_depth(deep.encode()) == safe_json.MAX_DEPTH
    safe_json.loads(deep, "x")
    value = {"ids": [-2 ** 63, 2 ** 63 - 1, 0], "x": 1e308, "tiny": 5e-324,
             "text": "brackets [[[{{ inside \" strings \\ do not count" + "[" * 100}
    assert safe_json.loads(json.dumps(value), "x") == value


def test_nan_is_allowed_only_where_the_caller_validates_numbers_itself():
    values = safe_json.loads("[NaN, Infinity, -Infinity]", "x", allow_nan=True)
    assert [str(v) for v in values] == ["nan", "inf", "-inf"]


def test_files_too_large_unreadable_or_special_are_refused_before_reading(tmp_path):
    big = tmp_path / "big.json"
    big.write_text("[" + "0," * 1000 + "0]")
    assert len(safe_json.load(big, max_bytes=4096)) == 1001
    with pytest.raises(InputError, match=r"big.json: is 2003 bytes, more than the limit of 100"):
        safe_json.load(big, max_bytes=100)
    with pytest.raises(InputError, match=r"missing.json: cannot read: not found"):
        safe_json.load(tmp_path / "missing.json")
    with pytest.raises(InputError, match=r"is a folder"):
        safe_json.load(tmp_path)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    with pytest.raises(InputError, match=r"fifo.json: is not a regular file"):
        safe_json.load(fifo)


DEEP = "[" * 100_000 + "]" * 100_000


def _canonical(tmp_path):
    from canonical_fixture import write_canonical_dataset
    from pascal_person_pose.dataset import Dataset

    write_canonical_dataset(tmp_path)
    (tmp_path / "annotations" / "person_pose_val.json").write_text(DEEP)
    Dataset(tmp_path, "val")


def _manifest(tmp_path):
    from pascal_person_pose.download import load_manifest

    (tmp_path / "m.json").write_text(DEEP)
    load_manifest(tmp_path / "m.json")


def _hand_labels(tmp_path):
    from pascal_person_pose.label.accuracy import read_labels

    (tmp_path / "labels.json").write_text(DEEP)
    read_labels(tmp_path / "labels.json")


def _submission(tmp_path):
    from pascal_person_pose.submission import read_submission

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "pose.json").write_text(DEEP)
    problems = read_submission(tmp_path / "sub").problems
    raise InputError(problems[0].file, problems[0].message)


@pytest.mark.parametrize("reader", [_canonical, _manifest, _hand_labels, _submission])
def test_every_reader_of_user_json_refuses_deep_nesting_in_one_line(tmp_path, reader):
    with pytest.raises(InputError, match=r"nested 100000 levels deep"):
        reader(tmp_path)
