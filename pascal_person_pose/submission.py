"""Benchmark submissions (docs/submission.md): read, validate, write.

A submission is a directory or a ``.zip`` holding::

    pose.json            COCO results list: image_id, category_id 1, keypoints [x, y, s]*14
                         (s = that joint's score; a missing joint is s = 0, x = y = 0),
                         score (the whole pose's score); many poses per image are normal
    parts/<voc_id>.png   one part map per image of the split: 8-bit ("L" or palette "P"),
                         the image's size, values 0-6 (the palette index is the id)
    meta.json            optional: method, authors, paper, backbone, training_data, url

Either task may be left out. A zip may wrap everything in one top folder. Hidden entries
and ``__MACOSX/`` are ignored; any other entry is reported, so a misnamed ``poses.json``
is caught instead of silently turning the submission into a parts-only one. Names are
case-sensitive and normalised before they are compared (``./pose.json`` is ``pose.json``,
and both at once are a duplicate); anything named ``pose.json`` that is not a readable
regular file is a problem, never a missing pose task.

Submissions come from strangers: :class:`~.limits.SubmissionLimits` bounds what is read
(per file, in total, the compression ratio, the number of files), checked on declared
sizes before anything is inflated, so the memory of reading one stays a small multiple of
its largest member.

Validation never stops at the first problem: it names every one (file, record, field),
keeping the first ``limit`` and counting the rest, and a submission with any problem is
never scored. Checks that need only the submission itself (types, NaN/inf, negative
scores, joint count) also guard :func:`write_submission`; checks against the split add
unknown or missing images, part map size/mode/values, and coordinates *far* outside the
image: a present joint may lie outside the image (people are truncated at the border,
and methods extrapolate), but not beyond it by more than the image's own size, i.e.
``-W <= x <= 2W`` and ``-H <= y <= 2H``; anything further is a bug in the producer
(e.g. coordinates in another image's frame or a wrong scale).

Each part PNG is decoded exactly once, by :func:`iter_part_maps`, which both validation
and scoring use, so scoring checks the pixels it scores in the same pass.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import struct
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from pascal_person_pose import atomic, safe_json
from pascal_person_pose import progress as progress_bar
from pascal_person_pose.errors import InputError, os_error
from pascal_person_pose.limits import RATIO_FLOOR, SubmissionLimits
from pascal_person_pose.schema import JOINT_NAMES, NUM_JOINTS, NUM_PARTS, voc_palette

POSE_FILE = "pose.json"
META_FILE = "meta.json"
PARTS_DIR = "parts"
POSE_FIELDS = ("image_id", "category_id", "keypoints", "score")
META_FIELDS = ("method", "authors", "paper", "backbone", "training_data", "url")
PART_MODES = ("L", "P")
PROBLEM_LIMIT = 20

_LISTING_BYTES_PER_FILE = 1024  # zip central directory bytes allowed per allowed file
_PART_NAME = re.compile(r"^(\d{4}_\d{6})\.png$")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_OTHER_FORMATS = ((b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"), (b"BM", "BMP"),
                  (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"RIFF", "RIFF (WebP)"))
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # a fixed timestamp keeps written zips reproducible


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a submission, located like an :class:`InputError`."""

    file: str
    message: str
    record: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        return str(self.error())

    def error(self) -> InputError:
        return InputError(self.file, self.message, record=self.record, field=self.field)


class Problems(list):
    """Problems in the order found: the first ``limit`` are kept, ``omitted`` counts the rest."""

    def __init__(self, limit: int = PROBLEM_LIMIT):
        super().__init__()
        self.limit = limit
        self.omitted = 0

    def add(self, file: str, message: str, record: str | None = None,
            field: str | None = None) -> None:
        if len(self) < self.limit:
            self.append(Problem(file, message, record, field))
        else:
            self.omitted += 1

    def extend_problems(self, other: Sequence[Problem]) -> None:
        for p in other:
            self.add(p.file, p.message, p.record, p.field)
        self.omitted += getattr(other, "omitted", 0)

    @property
    def total(self) -> int:
        return len(self) + self.omitted

    def lines(self) -> list[str]:
        """One line per kept problem, then how many more there are."""
        out = [str(p) for p in self]
        if self.omitted:
            out.append(f"... and {self.omitted} more problem{'s' * (self.omitted > 1)}")
        return out


class InvalidSubmission(InputError):
    """Raised instead of scoring a submission with problems; carries all of them."""

    def __init__(self, problems: Problems):
        self.problems = problems
        first = problems[0]
        more = problems.total - 1
        suffix = f" (and {more} more: run `ppp validate`)" if more else ""
        super().__init__(first.file, first.message + suffix, first.record, first.field)


DEFAULT_LIMITS = SubmissionLimits()


@dataclass
class Submission:
    """A submission as read from disk: parsed JSON, part map entries, reading problems.

    ``poses`` is the parsed ``pose.json`` (``pose_parsed`` says whether it could be read
    and parsed at all; when not, ``problems`` says why); ``parts`` maps each VOC id to its
    entry (a file of a folder, or a member of the zip, which stays open for reading them:
    close the submission, or use it as a context manager, when done).
    """

    path: Path
    poses: object = None
    has_pose: bool = False
    pose_parsed: bool = False
    parts: dict[str, Path | zipfile.ZipInfo] = field(default_factory=dict)
    has_parts: bool = False
    meta: dict | None = None
    problems: list[Problem] = field(default_factory=list)
    limits: SubmissionLimits = DEFAULT_LIMITS
    archive: zipfile.ZipFile | None = field(default=None, repr=False)

    def __enter__(self) -> Submission:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()

    def part_bytes(self, voc_id: str) -> bytes:
        """The PNG bytes of one part map; InputError (naming it) when they cannot be read."""
        return _read_member(self, f"{PARTS_DIR}/{voc_id}.png", self.parts[voc_id])

    def summary(self) -> str:
        """One line of counts, e.g. for ``ppp validate``."""
        items = []
        if self.has_pose and isinstance(self.poses, list):
            images = {r.get("image_id") for r in self.poses if isinstance(r, dict)}
            items.append(f"{len(self.poses)} poses on {len(images)} images")
        if self.has_parts:
            items.append(f"{len(self.parts)} part maps")
        if self.meta and self.meta.get("method"):
            items.append(f"method {self.meta['method']!r}")
        return ", ".join(items)


@dataclass(frozen=True)
class PoseArrays:
    """The records of ``pose.json`` as arrays, in file order."""

    image_ids: np.ndarray  # (N,) int64
    keypoints: np.ndarray  # (N, 14, 3) float64: x, y, joint score, exactly as submitted
    scores: np.ndarray  # (N,) float64

    def by_image(self) -> dict[int, np.ndarray]:
        """Record indices per image id, each in file order (the order metrics rely on)."""
        order = np.argsort(self.image_ids, kind="stable")
        ids, starts = np.unique(self.image_ids[order], return_index=True)
        return {int(i): idx for i, idx in zip(ids, np.split(order, starts[1:]))}


@dataclass(frozen=True)
class _Member:
    """One entry of a submission, its name normalised, before it is admitted."""

    name: str  # relative to the submission root, "/"-separated, no "." or empty parts
    source: Path | zipfile.ZipInfo | None  # None: a folder
    size: int = 0  # uncompressed bytes (as declared, for a zip member)
    compressed: int | None = None  # bytes in the zip
    problem: str | None = None  # why it cannot be read as a file
    origin: str | None = None  # the zip member it comes from, as written there


# --------------------------------------------------------------------------------- read


def read_submission(path: str | os.PathLike,
                    limits: SubmissionLimits = DEFAULT_LIMITS) -> Submission:
    """Read a submission directory or zip; entry-level problems go to ``.problems``.

    Member names are normalised (``./pose.json``, ``parts//x.png`` and backslashes name the
    same file as their plain form, so they count as duplicates); anything named like a
    submission file that is not a regular file (a folder, a broken or zipped symbolic
    link, a FIFO) is a problem, never skipped. Raises :class:`InputError` only when
    ``path`` is not a submission at all (missing, neither a directory nor a readable zip,
    or a zip with more entries than ``limits.files``).
    """
    path = Path(path)
    sub = Submission(path, limits=limits)
    if path.is_dir():
        members = _directory_members(path, limits, sub.problems)
    elif path.is_file():
        sub.archive = _open_zip(path, limits)
        members = _zip_members(sub.archive, path, sub.problems)
    else:
        raise InputError(path, "no such submission (a directory or a .zip)")
    for member in _admit(members, limits, path.name, sub.problems):
        _add_entry(sub, member)
    if not sub.has_pose and not sub.has_parts:
        sub.problems.append(Problem(
            path.name, f"empty submission: neither {POSE_FILE} nor {PARTS_DIR}/<voc_id>.png"))
    return sub


def _open_zip(path: Path, limits: SubmissionLimits) -> zipfile.ZipFile:
    """The open zip, after checking from its end record that its listing is of sane size
    (:class:`zipfile.ZipFile` builds an object per entry before anyone can look)."""
    try:
        with open(path, "rb") as f:
            end = zipfile._EndRecData(f)  # noqa: SLF001 - the stdlib's own end-record parser
        if end is None:
            raise zipfile.BadZipFile("no end of central directory record")
        entries, listing = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
        if entries > limits.files or listing > limits.files * _LISTING_BYTES_PER_FILE:
            raise InputError(path, f"lists {entries} entries in {listing} bytes, more than the "
                                   f"limit of {limits.files} files (--max-files)")
        return zipfile.ZipFile(path)
    except InputError:
        raise
    except OSError as e:
        raise os_error(e, path, "cannot read") from None
    except Exception as e:  # noqa: BLE001 - any failure to parse is a broken input file
        raise InputError(path, f"not a readable zip file ({type(e).__name__}: {e}); a "
                               "submission is a directory or a .zip") from None


def _zip_members(zf: zipfile.ZipFile, path: Path, problems: list[Problem]) -> list[_Member]:
    """Every member with its normalised name; names escaping the root are reported."""
    members = []
    for info in zf.infolist():
        name = _normalise(info.filename)
        if name is None:
            problems.append(Problem(path.name, "path escapes the submission root",
                                    record=f"member {info.filename!r}"))
            continue
        if not name or _ignored(PurePosixPath(name)):
            continue
        if info.is_dir():
            members.append(_Member(name, None, origin=f"member {info.filename!r}"))
            continue
        problem = None
        if stat.S_ISLNK(info.external_attr >> 16):
            problem = "is a symbolic link; a submission holds plain files"
        elif info.flag_bits & 0x1:
            problem = "is encrypted"
        elif info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            problem = (f"is compressed with zip method {info.compress_type}; use deflate "
                       "or none (stored)")
        members.append(_Member(name, info, info.file_size, info.compress_size, problem,
                               origin=f"member {info.filename!r}"))
    tops = {m.name.split("/", 1)[0] for m in members if m.source is not None}
    files = [m for m in members if m.source is not None]
    if len(tops) == 1 and files and all("/" in m.name for m in files) and tops != {PARTS_DIR}:
        strip = tops.pop() + "/"  # `zip -r sub.zip sub/` wraps everything in one folder
        members = [replace(m, name=m.name[len(strip):]) for m in members
                   if m.name.startswith(strip)]
    return members


def _normalise(name: str) -> str | None:
    """The member name as a plain relative path ("" for the root), None if it escapes."""
    unified = name.replace("\\", "/")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        return None
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    return None if ".." in parts else "/".join(parts)


def _directory_members(root: Path, limits: SubmissionLimits,
                       problems: list[Problem]) -> list[_Member]:
    """Every file under ``root`` (symbolic links followed, loops cut) and every folder."""
    members: list[_Member] = []
    here = root.stat()
    visited = {(here.st_dev, here.st_ino)}

    def unreadable(error: OSError) -> None:
        problems.append(Problem(_relative(root, error.filename), os_error(error).message))

    for top, dirs, files in os.walk(root, onerror=unreadable, followlinks=True):
        kept = []
        for name in sorted(dirs):
            path = Path(top, name)
            try:
                st = path.stat()
            except OSError as e:
                unreadable(e)
                continue
            if (st.st_dev, st.st_ino) in visited:
                problems.append(Problem(_relative(root, path), "symbolic link to a folder "
                                                               "already read (a loop)"))
                continue
            visited.add((st.st_dev, st.st_ino))
            kept.append(name)
            members.append(_Member(_relative(root, path), None))
        dirs[:] = kept
        for name in sorted(files):
            members.append(_file_member(root, Path(top, name)))
        if len(members) > limits.files:
            problems.append(Problem(root.name, f"holds more than {limits.files} files and "
                                               "folders, the limit (--max-files)"))
            break
    return members


def _file_member(root: Path, path: Path) -> _Member:
    name = _relative(root, path)
    try:
        st = path.stat()
    except FileNotFoundError:
        problem = "is a broken symbolic link" if path.is_symlink() else "vanished"
        return _Member(name, path, problem=problem)
    except OSError as e:
        return _Member(name, path, problem=os_error(e, doing="cannot read").message)
    if not stat.S_ISREG(st.st_mode):
        return _Member(name, path, problem="is not a regular file (a FIFO, device or socket)")
    return _Member(name, path, st.st_size)


def _relative(root: Path, path: str | os.PathLike) -> str:
    return Path(path).relative_to(root).as_posix()


def _admit(members: list[_Member], limits: SubmissionLimits, container: str,
           problems: list[Problem]) -> Iterator[_Member]:
    """The members to read: ignored ones left out, folders named like a file, duplicates
    and oversized members reported; the sizes are the declared ones, nothing is read."""
    seen: dict[str, str] = {}
    total = 0
    for m in members:
        if not m.name or _ignored(PurePosixPath(m.name)):
            continue
        if m.source is None:  # a folder: fine unless something expects a file there
            if m.name in (POSE_FILE, META_FILE) or m.name.startswith(f"{PARTS_DIR}/"):
                problems.append(Problem(m.name, "is a folder, not a file"))
                seen[m.name] = m.origin or m.name
            continue
        if m.name in seen:
            problems.append(Problem(container, f"duplicate entry: names the same file as "
                                               f"{seen[m.name]}", record=m.origin or m.name))
            continue
        seen[m.name] = m.origin or m.name
        limit = limits.for_member(m.name)
        option = "--max-pose-size" if m.name == POSE_FILE else "--max-member-size"
        if m.problem is None and m.size > limit:
            m = replace(m, problem=f"is {m.size} bytes uncompressed, more than the limit of "
                                   f"{limit} ({option})")
        elif (m.problem is None and m.compressed is not None and m.size > RATIO_FLOOR
              and m.size > limits.ratio * max(m.compressed, 1)):
            m = replace(m, problem=f"inflates {m.compressed} bytes to {m.size}, a ratio "
                                   f"above the limit of {limits.ratio:g} (--max-ratio)")
        elif m.problem is None:
            total += m.size
            if total > limits.total_bytes:
                problems.append(Problem(m.name, f"the files add up to more than the limit of "
                                                f"{limits.total_bytes} bytes "
                                                "(--max-total-size); not read from here on"))
                return
        yield m


def _ignored(pure: PurePosixPath) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in pure.parts)


def _add_entry(sub: Submission, member: _Member) -> None:
    name = member.name
    if name == POSE_FILE:
        sub.has_pose = True
    elif name.startswith(f"{PARTS_DIR}/"):
        sub.has_parts = True
    if member.problem is not None:
        sub.problems.append(Problem(name, member.problem))
    elif name == POSE_FILE:
        sub.poses, sub.pose_parsed = _parse_json(sub, member, allow_nan=True)
    elif name == META_FILE:
        meta, parsed = _parse_json(sub, member)
        sub.meta = meta if parsed and _check_meta(meta, sub.problems) else None
    elif name.startswith(f"{PARTS_DIR}/"):
        match = _PART_NAME.match(name[len(PARTS_DIR) + 1:])
        if match is None:
            sub.problems.append(Problem(name, "part maps are named parts/<voc_id>.png, "
                                              "e.g. parts/2008_000652.png"))
        else:
            sub.parts[match.group(1)] = member.source
    else:
        sub.problems.append(Problem(name, f"unexpected entry: a submission holds {POSE_FILE}, "
                                          f"{PARTS_DIR}/<voc_id>.png and {META_FILE}"))


def _read_member(sub: Submission, name: str, source: Path | zipfile.ZipInfo) -> bytes:
    """The bytes of an admitted member (never more than its limit)."""
    if isinstance(source, Path):
        try:
            return safe_json.read_bytes(source, sub.limits.for_member(name))
        except InputError as e:
            raise InputError(name, e.message) from None
    try:
        with sub.archive.open(source) as f:
            return f.read()  # zipfile stops at the declared size, checked on admission
    except Exception as e:  # noqa: BLE001 - zlib, CRC, truncation: a broken member
        raise InputError(name, f"corrupt zip member ({type(e).__name__}: {e})") from None


def _parse_json(sub: Submission, member: _Member, allow_nan: bool = False) -> tuple[object, bool]:
    """(value, True), or (None, False) with the problem added."""
    try:
        return safe_json.loads(_read_member(sub, member.name, member.source), member.name,
                               allow_nan=allow_nan), True
    except InputError as e:
        sub.problems.append(Problem(member.name, e.message, e.record, e.field))
        return None, False


def _check_meta(meta, problems: list[Problem]) -> bool:
    if meta is None:
        return False
    if not isinstance(meta, dict):
        problems.append(Problem(META_FILE, f"must be a JSON object, not {_type(meta)}"))
        return False
    ok = True
    for key, value in meta.items():
        if key not in META_FIELDS:
            problems.append(Problem(META_FILE, f"unknown field; known: {', '.join(META_FIELDS)}",
                                    record="meta", field=key))
            ok = False
        elif not (isinstance(value, str) or key == "authors" and isinstance(value, list)
                  and all(isinstance(a, str) for a in value)):
            expected = "a string or a list of strings" if key == "authors" else "a string"
            problems.append(Problem(META_FILE, f"must be {expected}, not {_type(value)}",
                                    record="meta", field=key))
            ok = False
    return ok


def _type(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null", int: "an integer", float: "a number"}.get(type(value),
                                                                         type(value).__name__)


# ----------------------------------------------------------------------------- validate


def validate_submission(submission: Submission, dataset=None, *, check_pixels: bool = True,
                        limit: int = PROBLEM_LIMIT, progress: bool = True) -> Problems:
    """Every problem of ``submission``, against ``dataset`` (a ``Dataset`` split) if given.

    Without a dataset only the checks that need no ground truth run. ``check_pixels=False``
    leaves out decoding the part maps (scoring decodes them once, through
    :func:`iter_part_maps`, and checks them there).
    """
    problems = Problems(limit)
    problems.extend_problems(submission.problems)
    images = None if dataset is None else _image_sizes(dataset)
    if submission.has_pose and submission.pose_parsed:
        check_poses(submission.poses, images, problems)
    if submission.has_parts and dataset is not None:
        _check_part_names(submission, dataset, problems)
        if check_pixels:
            total = sum(im["voc_id"] in submission.parts for im in dataset.images)
            maps = iter_part_maps(submission, dataset)
            for _, _, found in progress_bar.bar(maps, desc="validate", total=total, unit="img",
                                                enabled=progress):
                problems.extend_problems(found)
    return problems


def _image_sizes(dataset) -> dict[int, tuple[int, int]]:
    return {int(im["id"]): (int(im["width"]), int(im["height"])) for im in dataset.images}


def check_poses(records, images: Mapping[int, tuple[int, int]] | None,
                problems: Problems) -> None:
    """Add the problems of parsed ``pose.json`` content to ``problems``.

    ``images`` maps image ids to (width, height); None skips the checks against a split.
    Types are checked record by record (JSON gives Python objects); the numeric checks on
    the well-typed records are vectorised.
    """
    if not isinstance(records, list):
        problems.add(POSE_FILE, f"must be a JSON list of pose records, not {_type(records)}")
        return
    if not records:
        problems.add(POSE_FILE, "holds no poses; leave pose.json out to submit part maps only")
        return
    typed = [i for i, r in enumerate(records) if _check_record_types(i, r, images, problems)]
    _check_pose_values(np.asarray(typed, dtype=np.intp), [records[i] for i in typed], images,
                       problems)


def _check_record_types(i: int, record, images, problems: Problems) -> bool:
    rec = str(i)
    if not isinstance(record, dict):
        problems.add(POSE_FILE, f"must be an object, not {_type(record)}", record=rec)
        return False
    ok = True
    for name in POSE_FIELDS:
        if name not in record:
            problems.add(POSE_FILE, "missing", record=rec, field=name)
            ok = False
    image = record.get("image_id")
    if "image_id" in record:
        if type(image) is not int or not 0 < image < 2 ** 63:
            problems.add(POSE_FILE, "must be a positive integer image id, not "
                                    f"{_type(image) if type(image) is not int else image}",
                         record=rec, field="image_id")
            ok = False
        elif images is not None and image not in images:
            problems.add(POSE_FILE, f"unknown image id {image} (not in the split)",
                         record=rec, field="image_id")
            ok = False
    if "category_id" in record and not (type(record["category_id"]) is int
                                        and record["category_id"] == 1):
        problems.add(POSE_FILE, f"must be 1 (person), not {record['category_id']!r}",
                     record=rec, field="category_id")
        ok = False
    if "score" in record and _not_a_number(record["score"]):
        problems.add(POSE_FILE, f"must be a number, not {_not_a_number(record['score'])}",
                     record=rec, field="score")
        ok = False
    keypoints = record.get("keypoints")
    if "keypoints" in record:
        if not isinstance(keypoints, list):
            problems.add(POSE_FILE, f"must be a list of {3 * NUM_JOINTS} numbers, "
                                    f"not {_type(keypoints)}", record=rec, field="keypoints")
            ok = False
        elif len(keypoints) != 3 * NUM_JOINTS:
            problems.add(POSE_FILE, f"has {len(keypoints)} values; {NUM_JOINTS} joints "
                                    f"x [x, y, score] = {3 * NUM_JOINTS}",
                         record=rec, field="keypoints")
            ok = False
        else:
            bad = next((k for k, v in enumerate(keypoints) if _not_a_number(v)), None)
            if bad is not None:
                problems.add(POSE_FILE, f"must be a number, not {_not_a_number(keypoints[bad])}",
                             record=rec, field=_keypoint_field(bad))
                ok = False
    return ok


def _not_a_number(value) -> str | None:
    """Why a JSON value is not a number we can score, or None when it is one."""
    if type(value) is float:
        return None
    if type(value) is int:
        return None if abs(value) < 2 ** 63 else "an integer out of range"
    return _type(value)


def _keypoint_field(k: int) -> str:
    return f"keypoints[{k}] ({JOINT_NAMES[k // 3]} {'xys'[k % 3]})"


def pose_arrays(records: Sequence[dict]) -> PoseArrays:
    """Arrays of valid pose records in float64, the precision of JSON numbers, so scores that
    differ in any digit a submitter wrote rank by that difference."""
    n = len(records)
    return PoseArrays(
        np.fromiter((r["image_id"] for r in records), dtype=np.int64, count=n),
        np.array([r["keypoints"] for r in records], dtype=np.float64).reshape(n, NUM_JOINTS, 3),
        np.fromiter((r["score"] for r in records), dtype=np.float64, count=n))


def _check_pose_values(index: np.ndarray, records: list[dict], images,
                       problems: Problems) -> None:
    """Value checks of well-typed records, vectorised over all of them."""
    arrays = pose_arrays(records)
    kp, scores = arrays.keypoints, arrays.scores
    values = kp.reshape(len(kp), 3 * NUM_JOINTS)
    for r, k in zip(*np.nonzero(~np.isfinite(values))):  # scoring works in float64
        problems.add(POSE_FILE, f"is {values[r, k]:g}; values must be finite",
                     record=str(index[r]), field=_keypoint_field(k))
    x, y, s = np.moveaxis(kp, -1, 0)
    finite = np.isfinite(kp).all(-1)
    checks = [(finite & (s < 0), 2,
               lambda r, j: f"joint score {s[r, j]:g} is negative; scores are >= 0"),
              (finite & (s == 0) & ((x != 0) | (y != 0)), 0,
               lambda r, j: f"joint has score 0 (missing) but x, y = ({x[r, j]:g}, "
                            f"{y[r, j]:g}); a missing joint is at 0, 0")]
    if images is not None:
        wh = np.array([images[i] for i in arrays.image_ids.tolist()],
                      dtype=np.float64).reshape(-1, 2)
        w, h = wh[:, :1], wh[:, 1:]
        far = finite & (s > 0) & ((x < -w) | (x > 2 * w) | (y < -h) | (y > 2 * h))
        checks.append((far, 0, lambda r, j: f"x, y = ({x[r, j]:g}, {y[r, j]:g}) lies beyond "
                                            f"the {w[r, 0]:g}x{h[r, 0]:g} image by more than "
                                            "its size (allowed: -W <= x <= 2W, -H <= y <= 2H)"))
    for mask, offset, message in checks:
        for r, j in zip(*np.nonzero(mask)):
            problems.add(POSE_FILE, message(r, j), record=str(index[r]),
                         field=_keypoint_field(3 * j + offset))
    for r in np.nonzero(~np.isfinite(scores) | (scores < 0))[0]:
        problems.add(POSE_FILE, f"is {scores[r]:g}; a pose score is finite and >= 0",
                     record=str(index[r]), field="score")


def _check_part_names(submission: Submission, dataset, problems: Problems) -> None:
    split = {im["voc_id"] for im in dataset.images}
    for voc in submission.parts:
        if voc not in split:
            problems.add(f"{PARTS_DIR}/{voc}.png", f"unknown image (not in the {dataset.split} "
                                                  "split)", record=f"image {voc}")
    for voc in sorted(split - submission.parts.keys()):
        problems.add(f"{PARTS_DIR}/{voc}.png", f"missing: every image of the {dataset.split} "
                                              "split needs a part map", record=f"image {voc}")


def iter_part_maps(submission: Submission, dataset) -> Iterator[tuple[int, np.ndarray | None,
                                                                      Problems]]:
    """Decode each part map of the split once, in dataset order, checking it on the way.

    Yields (index of the image in ``dataset.images``, uint8 HxW labels or None, problems)
    for the images that have a part map (:func:`validate_submission` reports missing ones).
    """
    for index, im in enumerate(dataset.images):
        if im["voc_id"] in submission.parts:
            yield index, *read_part_map(submission, im)


def read_part_map(submission: Submission, image: Mapping) -> tuple[np.ndarray | None, Problems]:
    """The checked labels of one image's part map (``image``: a dataset image entry)."""
    problems = Problems()
    voc = image["voc_id"]
    name = f"{PARTS_DIR}/{voc}.png"
    try:
        data = submission.part_bytes(voc)
    except InputError as e:
        problems.add(name, e.message, record=f"image {voc}", field="data")
        return None, problems
    labels = decode_part_map(data, name, (int(image["width"]), int(image["height"])), problems)
    return labels, problems


def decode_part_map(data: bytes, name: str, size: tuple[int, int],
                    problems: Problems) -> np.ndarray | None:
    """The labels of one part PNG, or None with the problems added.

    The format and the size are read from the first bytes before any decoder runs, so a
    small PNG declaring a huge image (a decompression bomb) is refused without being
    inflated, and no decoder gets to print warnings about it. Decoding is Pillow's, which
    reports every broken file as an exception (OpenCV's would also print to stderr).
    """
    record = f"image {name.rsplit('/', 1)[-1][:-4]}"
    if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        kind = next((k for magic, k in _OTHER_FORMATS if data.startswith(magic)), None)
        problems.add(name, f"is {kind}, not PNG" if kind else "not a decodable PNG (no PNG "
                                                              "header)",
                     record=record, field="format" if kind else "data")
        return None
    declared = struct.unpack(">II", data[16:24]) if len(data) >= 24 else None
    if declared != size:
        shown = "x".join(map(str, declared)) if declared else "a truncated header"
        problems.add(name, f"is {shown}, the image is {size[0]}x{size[1]}", record=record,
                     field="size")
        return None
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
            if im.mode not in PART_MODES:
                problems.add(name, f"mode {im.mode}; part maps are 8-bit grayscale (L) or "
                                   "palette (P) images", record=record, field="mode")
                return None
            labels = np.asarray(im)
    except UnidentifiedImageError:
        problems.add(name, "not a decodable PNG (unrecognised data)", record=record, field="data")
        return None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        problems.add(name, f"not a decodable PNG ({e})", record=record, field="data")
        return None
    top = int(labels.max())
    if top >= NUM_PARTS:
        count = int(np.count_nonzero(labels >= NUM_PARTS))
        problems.add(name, f"{count} pixels have values above {NUM_PARTS - 1} (max {top}); "
                           f"part ids are 0-{NUM_PARTS - 1}", record=record, field="values")
        return None
    return labels


# ------------------------------------------------------------------------------- oracle


def oracle_submission(dataset) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The ground truth as a submission: the check that a pipeline scores a perfect 100.

    Every GT pose with a labelled joint becomes a pose whose labelled joints have score 1;
    part maps are the GT maps with ignore pixels set to background (any value scores the
    same there). Reads every part map of the split.
    """
    poses = []
    for im in dataset.images:
        for keypoints in dataset.keypoints(im["id"]):
            labelled = keypoints[:, 2] > 0
            if labelled.any():
                pose = np.where(labelled[:, None], keypoints, 0)
                pose[:, 2] = labelled
                poses.append({"image_id": int(im["id"]), "category_id": 1,
                              "keypoints": pose.ravel().tolist(), "score": 1.0})
    parts = {}
    for sample in dataset:
        labels = sample.part_map.copy()
        labels[labels >= NUM_PARTS] = 0
        parts[sample.voc_id] = labels
    return poses, parts


# ---------------------------------------------------------------------------------- nms


def nms_submission(path: str | os.PathLike, out: str | os.PathLike,
                   limits: SubmissionLimits = DEFAULT_LIMITS,
                   **thresholds: float) -> tuple[int, int]:
    """Apply the paper's pose NMS per image to a submission's poses; write a new submission.

    Part maps and meta.json are copied byte for byte. Within an image the kept poses are
    written in the order NMS kept them (descending pose score); images keep the order of
    their first pose in the input. ``thresholds`` are ``pose_nms``'s (head, upper, lower,
    whole). Returns (poses kept, poses in).
    """
    from pascal_person_pose.metrics.pose_nms import pose_nms

    with read_submission(path, limits) as sub:
        problems = Problems()
        problems.extend_problems(sub.problems)
        if not sub.has_pose:
            problems.add(Path(path).name, f"has no {POSE_FILE}: nothing to suppress")
        elif sub.pose_parsed:
            check_poses(sub.poses, None, problems)
        if problems:
            raise InvalidSubmission(problems)
        arrays = pose_arrays(sub.poses)
        groups = arrays.by_image()
        first = {int(i): n for n, i in reversed(list(enumerate(arrays.image_ids.tolist())))}
        kept = [int(k) for image in sorted(groups, key=first.__getitem__)
                for k in groups[image][pose_nms(arrays.keypoints[groups[image]],
                                                arrays.scores[groups[image]], **thresholds)]]
        part_pngs = {voc: sub.part_bytes(voc) for voc in sub.parts} if sub.has_parts else None
        write_submission_files(out, [sub.poses[k] for k in kept], part_pngs, sub.meta)
    return len(kept), len(sub.poses)


# -------------------------------------------------------------------------------- write


def write_submission(out: str | os.PathLike, poses: Sequence[dict] | None,
                     part_maps: Mapping[str, np.ndarray] | None, meta: dict | None = None) -> Path:
    """Write a submission atomically: a directory, or a zip when ``out`` ends in ``.zip``.

    ``poses`` are pose.json records (``category_id`` defaults to 1), ``part_maps`` uint8
    label maps by VOC id. Records are checked (types, joint count, finite, non-negative
    scores) and refused with an :class:`InputError` before anything is written.
    """
    records = None if poses is None else [{"image_id": int(p["image_id"]),
                                           "category_id": int(p.get("category_id", 1)),
                                           "keypoints": [float(v) for v in p["keypoints"]],
                                           "score": float(p["score"])} for p in poses]
    problems = Problems()
    if records is not None:
        check_poses(records, None, problems)
    if meta is not None:
        _check_meta(meta, problems)
    if problems:
        raise InvalidSubmission(problems)
    pngs = None if part_maps is None else {voc: encode_part_map(labels, voc)
                                           for voc, labels in part_maps.items()}
    return write_submission_files(out, records, pngs, meta)


def encode_part_map(labels: np.ndarray, voc_id: str) -> bytes:
    """PNG bytes of a label map: a palette image (viewable in colour; the index is the id)."""
    labels = np.asarray(labels)
    top = int(labels.max()) if labels.size else 0
    if labels.ndim != 2 or labels.dtype != np.uint8 or top >= NUM_PARTS:
        raise InputError(f"{PARTS_DIR}/{voc_id}.png", f"part maps are uint8 HxW ids "
                         f"0-{NUM_PARTS - 1}, got {labels.dtype} {labels.shape} max {top}",
                         record=f"image {voc_id}")
    im = Image.fromarray(labels, mode="P")
    im.putpalette(voc_palette())
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_submission_files(out: str | os.PathLike, poses: list[dict] | None,
                           part_pngs: Mapping[str, bytes] | None, meta: dict | None) -> Path:
    """Write already-encoded content (``ppp nms`` copies part PNGs untouched through here)."""
    out = Path(out)
    files: list[tuple[str, bytes]] = []
    if poses is not None:
        files.append((POSE_FILE, json.dumps(poses, separators=(",", ":")).encode()))
    if meta is not None:
        files.append((META_FILE, json.dumps(meta, indent=2, sort_keys=True).encode()))
    for voc in sorted(part_pngs or {}):
        files.append((f"{PARTS_DIR}/{voc}.png", part_pngs[voc]))
    if not files:
        raise InputError(out, "nothing to write: neither poses nor part maps")
    if out.suffix.lower() == ".zip":
        with atomic.atomic_open(out, "wb") as f, zipfile.ZipFile(f, "w") as zf:
            for name, data in files:
                info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
                info.compress_type = (zipfile.ZIP_STORED if name.endswith(".png")
                                      else zipfile.ZIP_DEFLATED)
                zf.writestr(info, data)
        return out
    _write_directory(out, files)
    return out


def _write_directory(out: Path, files: list[tuple[str, bytes]]) -> None:
    """Fill a temporary sibling folder, then swap it in, so ``out`` is never half-written."""
    if out.exists() and (not out.is_dir() or not _looks_like_submission(out)):
        raise InputError(out, "exists and is not a submission directory; refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        tmp.chmod(0o755)  # mkdtemp's 0700 would make the submission private
        (tmp / PARTS_DIR).mkdir()
        for name, data in files:
            (tmp / name).write_bytes(data)
        if not any((tmp / PARTS_DIR).iterdir()):
            (tmp / PARTS_DIR).rmdir()
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
            os.replace(out, old)  # onto an empty directory: allowed by POSIX rename
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _looks_like_submission(path: Path) -> bool:
    return all(p.name in (POSE_FILE, META_FILE, PARTS_DIR) or p.name.startswith(".")
               for p in path.iterdir())
