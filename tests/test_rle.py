"""The RLE check accepts every RLE pycocotools writes and refuses what it would misread."""

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from pascal_person_pose.rle import first_bad_rle


def _random_rles(n: int, seed: int = 0) -> list[tuple[str, int, int]]:
    rng = np.random.default_rng(seed)
    rles = []
    for _ in range(n):
        h, w = (int(v) for v in rng.integers(1, 300, 2))
        mask = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(0, 5))):
            y, x = rng.integers(0, h), rng.integers(0, w)
            mask[y:y + rng.integers(1, 200), x:x + rng.integers(1, 200)] = 1
        if rng.random() < 0.3:  # salt and pepper: many short runs, long strings
            mask = (rng.random((h, w)) < 0.5).astype(np.uint8)
        rles.append((mask_utils.encode(np.asfortranarray(mask))["counts"].decode(), h, w))
    return rles


def test_every_rle_pycocotools_writes_is_accepted():
    assert first_bad_rle(_random_rles(200)) is None
    assert first_bad_rle([("", 0, 4), ([3, 1], 2, 2)]) is None


@pytest.mark.parametrize("index", [0, 77, 199])
def test_a_wrong_size_is_found_in_its_own_record(index):
    rles = _random_rles(200)
    counts, h, w = rles[index]
    rles[index] = (counts, h + 1, w)
    assert first_bad_rle(rles) == (index, f"the runs cover {h * w} pixels, the mask has "
                                          f"{(h + 1) * w}")


@pytest.mark.parametrize("counts, reason", [
    ("0?" + "?" * 50, "the runs cover"), ("PPYo", "end in the middle"),
    ("0" + "Q" * 10 + "0", "too long"), ("0 1", "outside '0'-'o'"),
    ("\u00e90", "ASCII"), ([1, -1], "non-negative"), ({}, "a string"),
    ("01O", "negative"),  # "O": the last group of -17
])
def test_what_pycocotools_would_misread_is_refused(counts, reason):
    found = first_bad_rle(_random_rles(3) + [(counts, 4, 4)])
    assert found is not None and found[0] == 3 and reason in found[1], found
