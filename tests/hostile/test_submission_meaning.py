"""Submissions mean what they say: names normalised before duplicate checks, anything
named pose.json that is not a list of records is an error, and whatever `ppp validate`
passes, `ppp score` scores."""

from __future__ import annotations

import json
import os
import shutil
import stat
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canonical_fixture import write_canonical_dataset
from conftest import assert_one_error_line, run_ppp
from pascal_person_pose.cli import main
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.scoring import score
from pascal_person_pose.submission import (InvalidSubmission, oracle_submission,
                                           read_submission, validate_submission,
                                           write_submission)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("canonical")
    write_canonical_dataset(root)
    dataset = Dataset(root, "val")
    poses, parts = oracle_submission(dataset)
    perfect = write_submission(tmp_path_factory.mktemp("subs") / "perfect", poses, parts)
    return {"root": root, "dataset": dataset, "perfect": perfect, "poses": poses}


def _validate(data, path: Path):
    result = CliRunner().invoke(main, ["validate", str(data["root"]), str(path)])
    lines = result.stderr.strip().splitlines()
    return result.exit_code, lines


def _zip_of(data, tmp_path, extra: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    out = tmp_path / "sub.zip"
    with zipfile.ZipFile(out, "w") as zf:
        for path in sorted(p for p in data["perfect"].rglob("*") if p.is_file()):
            zf.write(path, path.relative_to(data["perfect"]).as_posix())
        for info, payload in extra:
            zf.writestr(info, payload)
    return out


def _oracle_pose_json(data) -> bytes:
    return json.dumps(data["poses"]).encode()


@pytest.mark.parametrize("alias", ["./pose.json", ".//pose.json", "././pose.json"])
def test_a_second_pose_json_written_differently_is_a_duplicate(data, tmp_path, alias):
    # the second copy used to win silently: an oracle's poses scored 4.9 mAP this way
    wrong = json.dumps([dict(p, keypoints=[0.0] * 42, score=1.0) for p in data["poses"]])
    code, lines = _validate(data, _zip_of(data, tmp_path, [(alias, wrong.encode())]))
    assert code == 2 and len(lines) == 1, lines
    assert (f"sub.zip, record member {alias!r}: duplicate entry: names the same file as "
            "member 'pose.json'") in lines[0]


def test_backslashes_and_doubled_slashes_name_the_same_part_map(data, tmp_path):
    path = _zip_of(data, tmp_path, [("parts\\2009_000012.png", b"x"),
                                    ("parts//2010_000001.png", b"y")])
    code, lines = _validate(data, path)
    assert code == 2 and len(lines) == 2
    assert all("duplicate entry" in line for line in lines)


def test_a_null_pose_json_fails_validate_and_score_alike(data, tmp_path):
    # it used to pass `ppp validate` ("OK: 3 part maps") and crash `ppp score`
    sub = tmp_path / "sub"
    shutil.copytree(data["perfect"], sub)
    (sub / "pose.json").write_bytes(b"null")
    expected = "pose.json: must be a JSON list of pose records, not null"
    assert_one_error_line(run_ppp("validate", data["root"], sub), expected)
    assert_one_error_line(run_ppp("score", data["root"], sub), expected)


def _as_folder(path: Path) -> None:
    path.mkdir()


def _as_dangling_link(path: Path) -> None:
    path.symlink_to(path.parent / "predictions" / "pose.json")


def _as_fifo(path: Path) -> None:
    os.mkfifo(path)  # reading it would block forever


@pytest.mark.parametrize("make, expected", [
    (_as_folder, "pose.json: is a folder, not a file"),
    (_as_dangling_link, "pose.json: is a broken symbolic link"),
    (_as_fifo, "pose.json: is not a regular file"),
], ids=["folder", "dangling-link", "fifo"])
def test_anything_named_pose_json_that_is_not_a_file_is_an_error(data, tmp_path, make,
                                                                   expected):
    sub = tmp_path / "sub"
    shutil.copytree(data["perfect"], sub)
    (sub / "pose.json").unlink()
    make(sub / "pose.json")
    assert_one_error_line(run_ppp("validate", data["root"], sub, timeout=60), expected)


def test_a_linked_pose_json_and_a_linked_parts_folder_are_followed(data, tmp_path):
    elsewhere = tmp_path / "predictions"
    shutil.copytree(data["perfect"], elsewhere)
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "pose.json").symlink_to(elsewhere / "pose.json")
    (sub / "parts").symlink_to(elsewhere / "parts")
    (sub / "parts" / "loop").symlink_to(sub)  # a loop is reported, not followed forever
    code, lines = _validate(data, sub)
    assert code == 2 and lines == ["error: parts/loop: symbolic link to a folder already "
                                   "read (a loop)"]
    (sub / "parts" / "loop").unlink()
    assert _validate(data, sub) == (0, [])


@pytest.mark.parametrize("info, expected", [
    (zipfile.ZipInfo("pose.json/"), "pose.json: is a folder, not a file"),
    ("parts/2009_000012.png/", "parts/2009_000012.png: is a folder, not a file"),
], ids=["pose-folder", "part-folder"])
def test_zipped_folders_named_like_files_are_errors(data, tmp_path, info, expected):
    sub = tmp_path / "parts-only"
    shutil.copytree(data["perfect"], sub)
    (sub / "pose.json").unlink()
    data = dict(data, perfect=sub)
    code, lines = _validate(data, _zip_of(data, tmp_path, [(info, b"")]))
    assert code == 2 and any(expected in line for line in lines), lines


def test_a_zipped_symbolic_link_is_an_error(data, tmp_path):
    sub = tmp_path / "parts-only"
    shutil.copytree(data["perfect"], sub)
    (sub / "pose.json").unlink()
    link = zipfile.ZipInfo("pose.json")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    code, lines = _validate(dict(data, perfect=sub),
                            _zip_of(dict(data, perfect=sub), tmp_path, [(link, b"/etc/passwd")]))
    assert code == 2 and lines == ["error: pose.json: is a symbolic link; a submission holds "
                                   "plain files"]


def test_bzip2_members_are_refused_before_inflating(data, tmp_path):
    info = zipfile.ZipInfo("meta.json")
    info.compress_type = zipfile.ZIP_BZIP2  # inflates unbounded per read in zipfile
    code, lines = _validate(data, _zip_of(data, tmp_path, [(info, b"{}")]))
    assert code == 2 and lines == ["error: meta.json: is compressed with zip method 12; use "
                                   "deflate or none (stored)"]


def test_a_member_larger_than_declared_fails_its_check(data, tmp_path):
    path = _zip_of(data, tmp_path, [("meta.json", b'{"method": "' + b"M" * 4000 + b'"}')])
    raw = bytearray(path.read_bytes())
    directory = raw.rindex(b"PK\x01\x02")  # the last central entry is meta.json
    raw[directory + 24:directory + 28] = (100).to_bytes(4, "little")  # declared: 100 bytes
    path.write_bytes(bytes(raw))
    code, lines = _validate(data, path)
    assert code == 2 and len(lines) == 1 and "meta.json: corrupt zip member" in lines[0]


@pytest.mark.parametrize("name, shown", [("parts/evil\nname.png", "parts/evil\\nname.png"),
                                         ("\x1b[2Jpose.json", "\\x1b[2Jpose.json")])
def test_member_names_are_escaped_into_one_line(data, tmp_path, name, shown):
    code, lines = _validate(data, _zip_of(data, tmp_path, [(name, b"[]")]))
    assert code == 2 and len(lines) == 1 and shown in lines[0], lines


def test_an_unreadable_pose_json_is_one_line(data, tmp_path):
    sub = tmp_path / "sub"
    shutil.copytree(data["perfect"], sub)
    (sub / "pose.json").chmod(0)
    assert_one_error_line(run_ppp("validate", data["root"], sub, permissions=True),
                          "pose.json: cannot read: permission denied")


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70)
                     | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=8)
_KEYS = st.sampled_from(["image_id", "category_id", "keypoints", "score"])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 5), _KEYS, _JSON | st.lists(
    st.floats() | st.integers(-2 ** 64, 2 ** 64) | st.booleans(), min_size=42, max_size=42)),
    max_size=3), replace=st.booleans(), whole=_JSON)
def test_whatever_validate_passes_score_scores(data, edits, replace, whole):
    """Any parsed pose.json: edited records, or any JSON value at all (null too) instead."""
    records = json.loads(json.dumps(data["poses"]))
    for index, key, value in edits:
        records[index % len(records)][key] = value
    sub = read_submission(data["perfect"])
    sub.poses = whole if replace else records
    problems = validate_submission(sub, data["dataset"])
    if problems:
        return
    try:
        score(data["root"], sub)
    except InvalidSubmission:
        pytest.fail("scoring found a problem validation missed")
