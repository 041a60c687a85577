"""Submissions: reading directories and zips, validation of every malformed case, writing."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pascal_person_pose.cli import main
from pascal_person_pose.errors import InputError
from pascal_person_pose.submission import (InvalidSubmission, Problems, check_poses,
                                           encode_part_map, read_submission,
                                           validate_submission, write_submission)


@pytest.fixture(scope="module")
def data(canonical, oracle):
    return {"root": canonical["root"], "written": canonical, "dataset": oracle["dataset"],
            "perfect": oracle["perfect_dir"], "poses": oracle["poses"], "parts": oracle["parts"]}


def _copy(data, tmp_path) -> Path:
    out = tmp_path / "sub"
    shutil.copytree(data["perfect"], out)
    return out


def _edit_poses(edit):
    def apply(sub: Path, data) -> None:
        records = json.loads((sub / "pose.json").read_text())
        result = edit(records, data)
        (sub / "pose.json").write_text(json.dumps(result if isinstance(result, list) else records))
    return apply


def _set_keypoint(index: int, value):
    def edit(records, data):
        records[0]["keypoints"][index] = value
    return _edit_poses(edit)


def _set_field(name: str, value):
    def edit(records, data):
        records[0][name] = value
    return _edit_poses(edit)


def _drop_field(name: str):
    def edit(records, data):
        del records[0][name]
    return _edit_poses(edit)


def _write_text(name: str, text: str | bytes):
    def apply(sub: Path, data) -> None:
        target = sub / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text if isinstance(text, bytes) else text.encode())
    return apply


def _part_image(image_fn):
    """Replace the part map of 2009_000012 (96x72) with ``image_fn(labels)``'s PNG bytes."""
    def apply(sub: Path, data) -> None:
        labels = data["parts"]["2009_000012"]
        (sub / "parts" / "2009_000012.png").write_bytes(image_fn(labels))
    return apply


def _png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def _remove(name: str):
    def apply(sub: Path, data) -> None:
        (sub / name).unlink()
    return apply


def _zip(members: list[tuple[str, bytes]]):
    """Replace the submission by a zip of the perfect one plus ``members`` (raw names)."""
    def apply(sub: Path, data) -> Path:
        out = sub.with_suffix(".zip")
        with zipfile.ZipFile(out, "w") as zf:
            for path in sorted(p for p in sub.rglob("*") if p.is_file()):
                zf.write(path, path.relative_to(sub).as_posix())
            for name, payload in members:
                with pytest.warns(UserWarning) if name in zf.namelist() else _no_warning():
                    zf.writestr(name, payload)
        return out
    return apply


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _empty(sub: Path, data) -> None:
    shutil.rmtree(sub)
    sub.mkdir()


def _bad_values(labels):
    bad = labels.copy()
    bad[5:7, 5:9] = 7
    return _png(Image.fromarray(bad, mode="L"))


# (case id, mutation, substrings the single error line must contain)
MALFORMED = [
    ("unknown-image-id", _set_field("image_id", 2099000001),
     ["pose.json", "record 0", "field image_id", "unknown image id 2099000001"]),
    ("image-id-string", _set_field("image_id", "2009_000012"),
     ["pose.json", "record 0", "field image_id", "integer"]),
    ("image-id-bool", _set_field("image_id", True),
     ["pose.json", "record 0", "field image_id", "boolean"]),
    ("missing-image-id", _drop_field("image_id"), ["pose.json", "record 0", "field image_id",
                                                   "missing"]),
    ("missing-keypoints", _drop_field("keypoints"), ["pose.json", "record 0", "field keypoints",
                                                     "missing"]),
    ("missing-score", _drop_field("score"), ["pose.json", "record 0", "field score", "missing"]),
    ("missing-category", _drop_field("category_id"),
     ["pose.json", "record 0", "field category_id", "missing"]),
    ("category-2", _set_field("category_id", 2), ["pose.json", "record 0", "field category_id",
                                                  "must be 1"]),
    ("keypoints-41", _edit_poses(lambda r, d: r[0]["keypoints"].pop()),
     ["pose.json", "record 0", "field keypoints", "has 41 values", "42"]),
    ("keypoints-object", _set_field("keypoints", {"x": 1}),
     ["pose.json", "record 0", "field keypoints", "not an object"]),
    ("keypoint-string", _set_keypoint(3, "10.5"),
     ["pose.json", "record 0", "field keypoints[3] (neck x)", "not a string"]),
    ("keypoint-null", _set_keypoint(4, None),
     ["pose.json", "record 0", "field keypoints[4] (neck y)", "not null"]),
    ("keypoint-nan", _set_keypoint(0, float("nan")),
     ["pose.json", "record 0", "field keypoints[0] (forehead x)", "nan", "finite"]),
    ("keypoint-inf", _set_keypoint(1, float("inf")),
     ["pose.json", "record 0", "field keypoints[1] (forehead y)", "inf", "finite"]),
    ("joint-score-negative", _set_keypoint(5, -0.5),
     ["pose.json", "record 0", "field keypoints[5] (neck s)", "-0.5", "negative"]),
    ("missing-joint-with-coordinates", _set_keypoint(8, 0),
     ["pose.json", "record 0", "field keypoints[6] (r_shoulder x)", "score 0", "0, 0"]),
    ("coordinate-far-outside", _set_keypoint(6, 500.0),
     ["pose.json", "record 0", "field keypoints[6] (r_shoulder x)", "96x72", "2W"]),
    ("pose-score-nan", _set_field("score", float("nan")),
     ["pose.json", "record 0", "field score", "finite"]),
    ("pose-score-negative", _set_field("score", -1.0),
     ["pose.json", "record 0", "field score", ">= 0"]),
    ("pose-score-string", _set_field("score", "high"),
     ["pose.json", "record 0", "field score", "number"]),
    ("record-not-object", _edit_poses(lambda r, d: [[1, 2, 3]] + r[1:]),
     ["pose.json", "record 0", "must be an object", "a list"]),
    ("pose-json-invalid", _write_text("pose.json", '[{"image_id": 1,\n  oops}]'),
     ["pose.json", "not valid JSON at line 2, column"]),
    ("pose-json-object", _write_text("pose.json", '{"image_id": 2009000012}'),
     ["pose.json", "must be a JSON list", "an object"]),
    ("pose-json-empty", _write_text("pose.json", "[]"), ["pose.json", "holds no poses"]),
    ("pose-json-not-utf8", _write_text("pose.json", b"[\xff\xfe]"), ["pose.json", "UTF-8"]),
    ("png-wrong-size", _part_image(lambda l: _png(Image.fromarray(l[:, :-1], mode="L"))),
     ["parts/2009_000012.png", "record image 2009_000012", "field size", "95x72", "96x72"]),
    ("png-rgb", _part_image(lambda l: _png(Image.fromarray(l, mode="L").convert("RGB"))),
     ["parts/2009_000012.png", "record image 2009_000012", "field mode", "RGB"]),
    ("png-16-bit", _part_image(lambda l: _png(Image.fromarray(l.astype(np.uint16) * 300))),
     ["parts/2009_000012.png", "record image 2009_000012", "field mode", "I;16"]),
    ("png-values-above-6", _part_image(_bad_values),
     ["parts/2009_000012.png", "record image 2009_000012", "field values", "8 pixels",
      "max 7"]),
    ("png-garbage", _part_image(lambda l: b"\x89PNG\r\n\x1a\n" + b"\x00" * 40),
     ["parts/2009_000012.png", "record image 2009_000012", "field data", "decodable"]),
    ("png-truncated", _part_image(lambda l: encode_part_map(l, "x")[:-30]),
     ["parts/2009_000012.png", "record image 2009_000012", "field data", "decodable"]),
    ("png-is-jpeg", _part_image(lambda l: _png(Image.fromarray(l, mode="L"), "JPEG")),
     ["parts/2009_000012.png", "record image 2009_000012", "field format", "JPEG"]),
    ("png-missing", _remove("parts/2010_000001.png"),
     ["parts/2010_000001.png", "record image 2010_000001", "missing", "val split"]),
    ("png-unknown-image", _write_text("parts/2011_000009.png", b"x"),
     ["parts/2011_000009.png", "record image 2011_000009", "unknown image"]),
    ("png-misnamed", _write_text("parts/person1.png", b"x"),
     ["parts/person1.png", "parts/<voc_id>.png"]),
    ("unexpected-file", _write_text("poses.json", "[]"), ["poses.json", "unexpected entry"]),
    ("empty-submission", _empty, ["sub", "empty submission"]),
    ("zip-slip", _zip([("../evil.txt", b"x")]),
     ["sub.zip", "record member '../evil.txt'", "escapes the submission root"]),
    ("zip-absolute", _zip([("/etc/cron.d/evil", b"x")]),
     ["sub.zip", "record member '/etc/cron.d/evil'", "escapes"]),
    ("zip-duplicate-png", _zip([("parts/2009_000012.png", b"again")]),
     ["sub.zip", "record member 'parts/2009_000012.png'", "duplicate"]),
    ("meta-unknown-field", _write_text("meta.json", '{"method": "M", "gpu": "A100"}'),
     ["meta.json", "record meta", "field gpu", "unknown field"]),
    ("meta-not-object", _write_text("meta.json", '["M"]'), ["meta.json", "JSON object"]),
    ("meta-authors-type", _write_text("meta.json", '{"authors": 5}'),
     ["meta.json", "record meta", "field authors", "list of strings"]),
    ("meta-invalid-json", _write_text("meta.json", "{method: M}"),
     ["meta.json", "not valid JSON at line 1, column 2"]),
]


@pytest.mark.parametrize("mutate, expected", [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_submission_is_one_line_exit_2(data, tmp_path, mutate, expected):
    sub = _copy(data, tmp_path)
    path = mutate(sub, data) or sub
    result = CliRunner().invoke(main, ["validate", str(data["root"]), str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    for text in expected:
        assert text in lines[0], (text, lines[0])


def test_malformed_cases_are_many_and_distinct():
    assert len({m[0] for m in MALFORMED}) == len(MALFORMED) >= 30


def test_perfect_submission_validates_as_dir_and_zip(data, tmp_path):
    zipped = write_submission(tmp_path / "perfect.zip", data["poses"], data["parts"])
    for path in (data["perfect"], zipped):
        result = CliRunner().invoke(main, ["validate", str(data["root"]), str(path)])
        assert result.exit_code == 0, result.stderr
        assert result.output.startswith("OK: ")
        assert f"{len(data['poses'])} poses on 1 images, 3 part maps" in result.output


def test_zip_and_directory_read_the_same(data, tmp_path):
    zipped = write_submission(tmp_path / "s.zip", data["poses"], data["parts"], {"method": "M"})
    a, b = read_submission(data["perfect"]), read_submission(zipped)
    assert a.poses == b.poses and sorted(a.parts) == sorted(b.parts)
    assert all(a.part_bytes(v) == b.part_bytes(v) for v in a.parts)
    assert b.meta == {"method": "M"}


def test_zip_wrapped_in_a_folder_and_mac_junk_are_accepted(data, tmp_path):
    out = tmp_path / "wrapped.zip"
    with zipfile.ZipFile(out, "w") as zf:
        for path in sorted(p for p in data["perfect"].rglob("*") if p.is_file()):
            zf.write(path, "my_method/" + path.relative_to(data["perfect"]).as_posix())
        zf.writestr("__MACOSX/my_method/._pose.json", b"junk")
        zf.writestr("my_method/.DS_Store", b"junk")
    sub = read_submission(out)
    assert validate_submission(sub, data["dataset"]) == []
    assert sub.has_pose and len(sub.parts) == 3


def test_many_problems_are_capped_with_a_count(data, tmp_path):
    sub = _copy(data, tmp_path)
    records = [dict(data["poses"][0], score=-1.0) for _ in range(30)]
    (sub / "pose.json").write_text(json.dumps(records))
    result = CliRunner().invoke(main, ["validate", str(data["root"]), str(sub)])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2
    assert len(lines) == 21 and lines[-1] == "error: ... and 10 more problems"
    assert [f"record {k}," in line for k, line in enumerate(lines[:20])] == [True] * 20


def test_every_problem_is_reported_not_just_the_first(data, tmp_path):
    sub = _copy(data, tmp_path)
    records = json.loads((sub / "pose.json").read_text())
    records[0]["keypoints"][2] = -1.0
    records[1]["category_id"] = 3
    (sub / "pose.json").write_text(json.dumps(records))
    (sub / "parts" / "2010_000001.png").unlink()
    problems = validate_submission(read_submission(sub), data["dataset"])
    assert [(p.file, p.record, p.field) for p in problems] == [
        ("pose.json", "1", "category_id"), ("pose.json", "0", "keypoints[2] (forehead s)"),
        ("parts/2010_000001.png", "image 2010_000001", None)]


def test_joints_outside_the_image_within_its_size_are_accepted(data, tmp_path):
    records = [dict(data["poses"][0])]
    keypoints = list(records[0]["keypoints"])
    keypoints[0:2] = [-96.0, 2 * 72.0]  # forehead at the edge of what is allowed (96x72)
    records[0]["keypoints"] = keypoints
    problems = Problems()
    check_poses(records, {2009000012: (96, 72)}, problems)
    assert problems == []
    keypoints[0] = -96.5
    check_poses(records, {2009000012: (96, 72)}, problems)
    assert len(problems) == 1 and "beyond" in problems[0].message


def test_a_task_may_be_absent(data, tmp_path):
    poses_only = write_submission(tmp_path / "p", data["poses"], None)
    parts_only = write_submission(tmp_path / "q.zip", None, data["parts"])
    for path, pose, parts in ((poses_only, True, False), (parts_only, False, True)):
        sub = read_submission(path)
        assert (sub.has_pose, sub.has_parts) == (pose, parts)
        assert validate_submission(sub, data["dataset"]) == []


def test_write_submission_refuses_bad_records_and_writes_nothing(data, tmp_path):
    bad = [dict(data["poses"][0], keypoints=data["poses"][0]["keypoints"][:-3])]
    with pytest.raises(InvalidSubmission, match="record 0, field keypoints: has 39 values"):
        write_submission(tmp_path / "out", bad, None)
    with pytest.raises(InputError, match="parts/2009_000012.png.*0-6"):
        write_submission(tmp_path / "out", None, {"2009_000012": np.full((4, 4), 9, np.uint8)})
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_write_submission_accepts_numpy_numbers_and_replaces_a_submission(data, tmp_path):
    record = data["poses"][0]
    numpy_record = {"image_id": np.int64(record["image_id"]), "score": np.float32(0.5),
                    "keypoints": np.asarray(record["keypoints"], dtype=np.float32)}
    out = tmp_path / "out"
    write_submission(out, [numpy_record], data["parts"])
    write_submission(out, [numpy_record], None)  # replaces, parts included
    assert sorted(p.name for p in out.iterdir()) == ["pose.json"]
    assert json.loads((out / "pose.json").read_text())[0]["score"] == 0.5
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(InputError, match="not a submission directory"):
        write_submission(tmp_path / "notes", [numpy_record], None)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"


def test_written_zip_is_reproducible_and_parts_are_palette_ids(data, tmp_path):
    a = write_submission(tmp_path / "a.zip", data["poses"], data["parts"], {"method": "M"})
    b = write_submission(tmp_path / "b.zip", data["poses"], data["parts"], {"method": "M"})
    assert a.read_bytes() == b.read_bytes()
    with zipfile.ZipFile(a) as zf:
        image = Image.open(io.BytesIO(zf.read("parts/2009_000012.png")))
    assert image.mode == "P"
    np.testing.assert_array_equal(np.asarray(image), data["parts"]["2009_000012"])


def test_pose_json_is_a_coco_results_file(data):
    """pycocotools loads pose.json against our GT as keypoint results, unchanged."""
    from pycocotools.coco import COCO

    with io.StringIO() as quiet, __import__("contextlib").redirect_stdout(quiet):
        gt = COCO(str(data["written"]["annotation_files"]["val"]))
        results = gt.loadRes(str(data["perfect"] / "pose.json"))
    assert len(results.getAnnIds()) == len(data["poses"])
    ann = results.loadAnns(results.getAnnIds())[0]
    assert ann["category_id"] == 1 and len(ann["keypoints"]) == 42 and ann["area"] > 0


def test_read_submission_of_no_submission_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such submission"):
        read_submission(tmp_path / "missing")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    result = CliRunner().invoke(main, ["validate", str(tmp_path), str(tmp_path / "broken.zip")])
    assert result.exit_code == 2 and "not a readable zip" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_nms_removes_duplicates_and_copies_parts(data, tmp_path):
    sub = _copy(data, tmp_path)
    records = json.loads((sub / "pose.json").read_text())
    shifted = [dict(r, score=0.5, keypoints=[v + 1 if k % 3 < 2 and r["keypoints"][k - k % 3 + 2]
                                              else v for k, v in enumerate(r["keypoints"])])
               for r in records]
    (sub / "pose.json").write_text(json.dumps(shifted + records))
    out = tmp_path / "nms.zip"
    result = CliRunner().invoke(main, ["nms", str(sub), str(out)])
    assert result.exit_code == 0, result.stderr
    assert f"kept {len(records)} of {2 * len(records)} poses" in result.output
    kept = read_submission(out)
    assert kept.poses == records  # the higher-scored originals, in kept order
    assert all(kept.part_bytes(v) == read_submission(sub).part_bytes(v) for v in kept.parts)
    assert kept.meta == read_submission(sub).meta


def test_nms_refuses_invalid_or_pose_less_submissions(data, tmp_path):
    parts_only = write_submission(tmp_path / "parts_only", None, data["parts"])
    result = CliRunner().invoke(main, ["nms", str(parts_only), str(tmp_path / "o")])
    assert result.exit_code == 2 and "has no pose.json" in result.stderr
    sub = _copy(data, tmp_path)
    _set_keypoint(2, float("nan"))(sub, data)
    result = CliRunner().invoke(main, ["nms", str(sub), str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: pose.json, record 0, field keypoints[2] "
                                     "(forehead s): is nan; values must be finite")
    assert not (tmp_path / "o").exists()
