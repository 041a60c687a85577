"""One line for every bad input: hand-edited canonical fields, RLEs pycocotools would
crash on, unreadable files, odd .mat values, third-party decoder chatter."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import scipy.io
from PIL import Image

from canonical_fixture import write_canonical_dataset
from conftest import assert_one_error_line, run_ppp
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.errors import InputError
from pascal_person_pose.sources import pascal_part
from pascal_person_pose.submission import oracle_submission, write_submission


@pytest.fixture(scope="module")
def canonical(tmp_path_factory):
    root = tmp_path_factory.mktemp("canonical")
    write_canonical_dataset(root)
    return root


@pytest.fixture
def fresh(canonical, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(canonical, root, symlinks=True)
    return root


def _edit_first_annotation(root, edit) -> None:
    path = root / "annotations" / "person_pose_val.json"
    coco = json.loads(path.read_text())
    edit(coco["annotations"][0], coco)
    path.write_text(json.dumps(coco))


def _set_segmentation(key, value):
    return lambda ann, coco: ann["segmentation"].__setitem__(key, value)


@pytest.mark.parametrize("edit, field, expected", [
    (_set_segmentation("size", 72), "segmentation", "an RLE {size: [height, width]"),
    (_set_segmentation("size", [72.0, 96.0]), "segmentation", "an RLE {size"),
    (_set_segmentation("counts", "PPYo"), "segmentation.counts", "invalid RLE: counts end"),
    (_set_segmentation("counts", "0" + "?" * 100), "segmentation.counts",
     "invalid RLE: the runs cover"),  # more pixels than the mask: pycocotools writes past it
    (_set_segmentation("counts", "ab\u00e9"), "segmentation.counts", "must be ASCII"),
    (_set_segmentation("counts", [6912, -1]), "segmentation.counts", "non-negative"),
    (_set_segmentation("counts", {"runs": 1}), "segmentation.counts", "a string"),
    (lambda ann, coco: ann.__setitem__("bbox", [0, 0, float("nan"), 1]), "bbox", "finite"),
    (lambda ann, coco: coco["images"][0].__setitem__("voc_id", "2009_00001\u00b2"), "voc_id",
     "a VOC id"),
    (lambda ann, coco: coco["images"][0].__setitem__("width", 2 ** 40), "width",
     "positive integer up to"),
], ids=["size-int", "size-floats", "counts-open-end", "counts-overflow", "counts-unicode",
        "counts-negative-run", "counts-object", "bbox-nan", "voc-id-superscript",
        "width-huge"])
def test_hand_edited_canonical_fields_are_refused_on_load(fresh, edit, field, expected):
    _edit_first_annotation(fresh, edit)
    with pytest.raises(InputError) as caught:
        Dataset(fresh, "val")
    assert caught.value.field == field and expected in str(caught.value), str(caught.value)


def test_an_overflowing_rle_never_reaches_pycocotools_through_the_cli(fresh, tmp_path):
    _edit_first_annotation(fresh, _set_segmentation("counts", "0" + "?" * 400))
    result = run_ppp("show", fresh, "2009_000012", "--out", tmp_path / "view.png")
    assert_one_error_line(result, "field segmentation.counts", "invalid RLE")


def test_an_unreadable_annotation_file_as_an_ordinary_user(fresh):
    (fresh / "annotations" / "person_pose_val.json").chmod(0)
    result = run_ppp("info", fresh, "--split", "val", permissions=True)
    assert_one_error_line(result, "person_pose_val.json: cannot read: permission denied")


def test_an_unreadable_raw_file_as_an_ordinary_user(tmp_path):
    result = run_ppp("synth", "--out", tmp_path / "raw", "--images", "2", "--width", "64",
                     "--height", "48")
    assert result.returncode == 0, result.stderr
    mat = sorted((tmp_path / "raw").rglob("*.mat"))[0]
    mat.chmod(0)
    result = run_ppp("prepare", tmp_path / "raw", tmp_path / "out", "--workers", "1",
                     permissions=True)
    assert_one_error_line(result, mat.name, "Permission denied")


@pytest.mark.parametrize("value", [np.nan, np.inf, 15.5])
def test_a_mat_whose_class_ind_is_not_a_whole_number(tmp_path, value):
    mask = np.ones((4, 5), np.uint8)
    objects = np.empty((1, 1), dtype=[("class", object), ("class_ind", object),
                                      ("mask", object), ("parts", object)])
    objects[0, 0] = ("person", np.array([[value]]), mask, np.zeros((0, 0)))
    anno = np.empty((1, 1), dtype=[("imname", object), ("objects", object)])
    anno[0, 0] = ("2008_000001", objects)
    path = tmp_path / "2008_000001.mat"
    scipy.io.savemat(path, {"anno": anno})
    with pytest.raises(InputError) as caught:
        pascal_part.read_persons(path)
    assert caught.value.field == "class_ind" and "whole VOC class index" in str(caught.value)


def test_a_truncated_part_map_gives_our_line_and_nothing_from_the_decoders(canonical,
                                                                           tmp_path):
    poses, parts = oracle_submission(Dataset(canonical, "val"))
    sub = write_submission(tmp_path / "sub", None, parts)
    buffer = io.BytesIO()  # 8-bit grayscale: the kind OpenCV used to decode (and warn about)
    Image.fromarray(parts["2009_000012"], "L").save(buffer, format="PNG")
    (sub / "parts" / "2009_000012.png").write_bytes(buffer.getvalue()[:-40])
    result = run_ppp("validate", canonical, sub)
    assert_one_error_line(result, "parts/2009_000012.png", "field data", "not a decodable PNG")


@pytest.mark.parametrize("args, expected", [
    (["--bad"], "error: ppp: No such option '--bad'. (see ppp --help)"),
    (["label", "--bad"], "error: ppp label: No such option '--bad'. (see ppp label --help)"),
    (["score"], "error: ppp score: Missing argument 'ROOT'. (see ppp score --help)"),
    (["download", "--min-rate", "fast", "raw"], "'fast' is not a size such as 500K"),
])
def test_wrong_options_are_one_line(args, expected):
    assert_one_error_line(run_ppp(*args), expected)


def test_a_group_without_a_command_still_shows_its_help():
    # the one-line form must not swallow click's help for `ppp label` (a usage error too)
    result = run_ppp("label")
    assert "Usage: ppp label" in result.stdout + result.stderr
    assert "Commands:" in result.stdout + result.stderr and "error:" not in result.stderr
