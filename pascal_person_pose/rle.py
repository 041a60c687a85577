"""COCO run-length encodings checked before pycocotools sees them.

pycocotools trusts an RLE completely: a ``counts`` string whose runs add up to more than
``height * width`` makes its decoder write past the end of the mask (a segfault, or worse),
and a string ending in a continuation character makes it read past the string. A
canonical JSON edited by hand, or written by another tool, is therefore checked here, the
way pycocotools reads it, and refused with the reason.

A compressed ``counts`` string (pycocotools' ``rleToString``) writes each run as 5-bit
groups, low first, as the characters ``chr(48 + group)``; bit 0x20 means "more groups
follow" and bit 0x10 of the last group is the sign. Runs from the fourth on are stored as
the difference to the run two before. All strings of a split are decoded in one numpy pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_MAX_GROUPS = 7  # 35 bits: more than any run of a 2^32-pixel mask needs
_UINT32 = 1 << 32
_BATCH_CHARS = 1 << 18  # about 10 MB of temporaries per batch


def first_bad_rle(rles: Sequence[tuple[object, int, int]]) -> tuple[int, str] | None:
    """(index, reason) of the first of ``rles`` ((counts, height, width) each) that is not
    a valid RLE of its mask, or None when all are."""
    problems = []
    texts = [(i, c) for i, (c, _, _) in enumerate(rles) if isinstance(c, str)]
    for i, (counts, height, width) in enumerate(rles):
        if isinstance(counts, list):
            if not all(type(c) is int and 0 <= c < _UINT32 for c in counts):
                problems.append((i, "counts must be non-negative integers"))
            elif sum(counts) != height * width:
                problems.append((i, _coverage(sum(counts), height, width)))
        elif not isinstance(counts, str):
            problems.append((i, "counts must be a string (compressed RLE) or a list of runs"))
    if texts:
        found = _first_bad_text([c for _, c in texts],
                                [rles[i][1] * rles[i][2] for i, _ in texts])
        if found is not None:
            problems.append((texts[found[0]][0], found[1]))
    return min(problems) if problems else None


def _coverage(total: int, height: int, width: int) -> str:
    return f"the runs cover {total} pixels, the mask has {height}x{width} = {height * width}"


def _first_bad_text(texts: list[str], areas: list[int]) -> tuple[int, str] | None:
    """(position in ``texts``, reason) of the first string that is not an RLE of ``areas``,
    decoding batches of strings of about ``_BATCH_CHARS`` characters (bounded memory)."""
    start = 0
    while start < len(texts):
        stop, chars = start, 0
        while stop < len(texts) and (chars == 0 or chars + len(texts[stop]) <= _BATCH_CHARS):
            chars += len(texts[stop])
            stop += 1
        found = _first_bad_batch(texts[start:stop], areas[start:stop])
        if found is not None:
            return start + found[0], found[1]
        start = stop
    return None


def _first_bad_batch(texts: list[str], areas: list[int]) -> tuple[int, str] | None:
    joined = "".join(texts)
    if not joined.isascii():
        return next(k for k, t in enumerate(texts) if not t.isascii()), "counts must be ASCII"
    lengths = np.array([len(t) for t in texts], np.int64)
    string_end = np.cumsum(lengths)  # one past each string's last character
    codes = np.frombuffer(joined.encode("ascii"), np.uint8).astype(np.int16) - 48

    def owner(char_index) -> np.ndarray:
        return np.searchsorted(string_end, char_index, side="right")

    bad = np.flatnonzero((codes < 0) | (codes > 63))
    if bad.size:
        return int(owner(bad[0])), "counts hold characters outside '0'-'o'"
    last = string_end[lengths > 0] - 1
    open_end = np.flatnonzero(codes[last] & 0x20)
    if open_end.size:
        return int(owner(last[open_end[0]])), "counts end in the middle of a number"
    ends = np.flatnonzero((codes & 0x20) == 0)
    if ends.size == 0:  # only empty strings
        return _check_totals(np.zeros(len(texts)), areas)
    starts = np.concatenate(([0], ends[:-1] + 1))
    groups = ends - starts + 1
    if groups.max() > _MAX_GROUPS:
        return int(owner(starts[np.argmax(groups > _MAX_GROUPS)])), \
            "counts hold a number too long for a run length"
    shift = 5 * (np.arange(codes.size) - np.repeat(starts, groups))
    values = np.add.reduceat((codes & 0x1F).astype(np.int64) << shift, starts)
    del shift
    values -= np.where(codes[ends] & 0x10, 1 << (5 * groups), 0)  # sign of the last group
    string = owner(starts)
    first = np.searchsorted(string, np.arange(len(texts)))
    index = np.arange(values.size) - first[string]  # the run's index in its string
    runs = values.copy()
    # runs 1, 3, 5, ... and 2, 4, 6, ... of a string are running sums of the stored values
    for chain in ((index % 2 == 1), (index % 2 == 0) & (index >= 2)):
        total = np.cumsum(np.where(chain, values, 0))
        before = np.where(first > 0, total[np.maximum(first - 1, 0)], 0)
        runs[chain] = (total - before[string])[chain]
    wrong = np.flatnonzero((runs < 0) | (runs >= _UINT32))
    if wrong.size:
        return int(string[wrong[0]]), "counts decode to a negative or oversized run"
    return _check_totals(np.bincount(string, weights=runs, minlength=len(texts)), areas)


def _check_totals(totals: np.ndarray, areas: list[int]) -> tuple[int, str] | None:
    mismatch = np.flatnonzero(totals != np.asarray(areas, np.float64))
    if mismatch.size == 0:
        return None
    k = int(mismatch[0])
    return k, f"the runs cover {int(totals[k])} pixels, the mask has {areas[k]}"
