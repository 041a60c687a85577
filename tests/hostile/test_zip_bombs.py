"""Zip bombs and PNG bombs: refused from declared sizes, with a memory ceiling measured in
a child process against validating a legitimate submission."""

from __future__ import annotations

import pytest

from bombs import png_declaring, write_zip
from canonical_fixture import write_canonical_dataset
from conftest import assert_one_error_line, ppp_peak_rss
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.submission import (encode_part_map, oracle_submission,
                                           write_submission)

# Reading a bomb may cost a little more than reading a small legitimate submission (the
# zip listing, an error message), never anything near the inflated size (256 MiB+).
SLACK = 48 << 20


@pytest.fixture(scope="module")
def val(tmp_path_factory):
    root = tmp_path_factory.mktemp("canonical")
    write_canonical_dataset(root)
    poses, parts = oracle_submission(Dataset(root, "val"))
    legit = write_submission(tmp_path_factory.mktemp("subs") / "legit.zip", poses, parts)
    result, peak = ppp_peak_rss("validate", root, legit)
    assert result.returncode == 0, result.stderr
    return {"root": root, "parts": parts, "baseline": peak}


def test_a_1_gib_pose_json_in_a_1_mib_zip(val, tmp_path):
    bomb = write_zip(tmp_path / "bomb.zip", [("pose.json", 1024)])
    assert bomb.stat().st_size < 1.1 * 2 ** 20
    result, peak = ppp_peak_rss("validate", val["root"], bomb)
    assert_one_error_line(result, "pose.json: is 1073741824 bytes uncompressed",
                          "--max-pose-size")
    assert peak < val["baseline"] + SLACK, (peak >> 20, val["baseline"] >> 20)


def test_ten_256_mib_part_maps_in_a_2_5_mib_zip(val, tmp_path):
    members = [(f"parts/{voc}.png", 256) for voc in sorted(val["parts"])]
    members += [(f"parts/2011_00000{k}.png", 256) for k in range(10 - len(members))]
    bomb = write_zip(tmp_path / "bomb.zip", members)
    assert bomb.stat().st_size < 2.7 * 2 ** 20
    result, peak = ppp_peak_rss("score", val["root"], bomb)
    assert result.returncode == 2 and "--max-member-size" in result.stderr, result.stderr
    assert peak < val["baseline"] + SLACK, (peak >> 20, val["baseline"] >> 20)


def test_a_member_within_the_size_limit_but_inflating_too_much(val, tmp_path):
    bomb = write_zip(tmp_path / "bomb.zip", [("pose.json", 64)])
    result, peak = ppp_peak_rss("validate", val["root"], bomb)
    assert_one_error_line(result, "pose.json: inflates", "to 67108864", "--max-ratio")
    assert peak < val["baseline"] + SLACK


def test_a_png_declaring_a_huge_image_is_refused_from_its_header(val, tmp_path):
    # 100M pixels: above Pillow's warning threshold, below its error threshold
    parts = {voc: encode_part_map(labels, voc) for voc, labels in val["parts"].items()}
    parts["2009_000012"] = png_declaring(10_000, 10_000, idat_mib=100)
    bomb = write_zip(tmp_path / "bomb.zip", [(f"parts/{v}.png", b) for v, b in parts.items()])
    result, peak = ppp_peak_rss("validate", val["root"], bomb)
    assert_one_error_line(result, "parts/2009_000012.png", "field size",
                          "is 10000x10000, the image is 96x72")
    assert peak < val["baseline"] + SLACK


def test_limits_are_options(val, tmp_path):
    zipped = write_zip(tmp_path / "small.zip", [("pose.json", b"[]" + b" " * 5000)])
    result, _ = ppp_peak_rss("validate", val["root"], zipped, "--max-pose-size", "4K")
    assert_one_error_line(result, "pose.json: is 5002 bytes uncompressed, more than the "
                                  "limit of 4096 (--max-pose-size)")
    result, _ = ppp_peak_rss("validate", val["root"], zipped, "--max-files", "0")
    assert result.returncode == 2 and "--max-files" in result.stderr
    many = write_zip(tmp_path / "many.zip", [(f"x{k}", b"") for k in range(12)])
    result, _ = ppp_peak_rss("validate", val["root"], many, "--max-files", "10")
    assert_one_error_line(result, "many.zip: lists 12 entries", "limit of 10 files")
    result, _ = ppp_peak_rss("validate", val["root"], zipped, "--max-pose-size", "lots")
    assert result.returncode == 2 and "not a size such as 500K" in result.stderr
