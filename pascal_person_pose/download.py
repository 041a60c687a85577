"""Fetch the upstream sources into a raw tree (``ppp download RAW``), driven by the manifest
``pascal_person_pose/sources/manifest.json`` (package data, specified in docs/formats.md).

Upstream hosts are old university pages that go down and cut transfers, so every step is
restartable: an archive is fetched into ``RAW/archives/<filename>.part`` and resumed with
an HTTP Range request from the size already there; a finished archive is checked (the
manifest's md5/sha256, or, for archives whose authors never published one, the sha256
recorded in ``RAW/.checksums.json`` on first use) before anything is extracted; a source
counts as done only once its extraction finished (``RAW/.checksums.json`` says so), so an
interrupted run extracts again. A corrupt archive is moved aside (``<filename>.corrupt``)
and never extracted.

Archives are extracted only after every member has been checked: an absolute path, a
``..`` component, a link leaving the target or a special file refuses the whole archive
(zip files are extracted by :mod:`zipfile`, which writes a link that stays inside the tree
as a small file holding its target).

Where a file cannot be fetched (a host is down, or the pose annotations, which the paper's
authors hand out themselves), the report says exactly which file to put where; a file
placed there by hand is checked and extracted by the next run like a downloaded one.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import http.client
import lzma
import os
import re
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Iterable

from pascal_person_pose import __version__, atomic, safe_json
from pascal_person_pose import progress as progress_bar
from pascal_person_pose.errors import InputError
from pascal_person_pose.limits import DownloadLimits

MANIFEST_PATH = resources.files("pascal_person_pose.sources") / "manifest.json"
STATE_FILE = ".checksums.json"
ARCHIVE_DIR = "archives"
_SOURCE_STATES = ("extracting", "done")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TAR_BLOCK = 512
_COMPRESSED_TAR = ((b"\x1f\x8b", gzip.open), (b"BZh", bz2.open),
                   (b"\xfd7zXZ\x00", lzma.open))
_CHUNK = 1 << 20
_USER_AGENT = f"pascal-person-pose/{__version__} (+ppp download)"


@dataclass(frozen=True)
class Source:
    """One manifest entry: where a source comes from and where it goes in the raw tree."""

    name: str
    title: str
    provides: str  # relative to RAW: the path this source fills (layout.RawLayout)
    homepage: str | None = None
    url: str | None = None
    mirrors: tuple[str, ...] = ()
    filename: str | None = None
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    format: str | None = None  # "tar" (any compression) or "zip"
    extract_to: str = "."
    members: tuple[str, ...] | None = None  # member path prefixes to extract; None = all
    manual: bool = False
    instructions: str | None = None

    @property
    def urls(self) -> tuple[str, ...]:
        return ((self.url,) if self.url else ()) + self.mirrors


@dataclass(frozen=True)
class SourceResult:
    """What happened to one source: ``present``, ``downloaded`` or ``manual`` (user action)."""

    name: str
    status: str
    message: str


@dataclass
class DownloadReport:
    results: list[SourceResult] = field(default_factory=list)

    @property
    def manual(self) -> list[SourceResult]:
        return [r for r in self.results if r.status == "manual"]


class FetchError(Exception):
    """No URL of a source could be fetched (network trouble, not bad input)."""


def load_manifest(path: str | os.PathLike | None = None) -> dict[str, Source]:
    """The sources of the manifest, by name (the default is the package's ``manifest.json``).

    Every field is type-checked, so a hand-edited manifest fails here in one line."""
    if path is None:
        path, data = MANIFEST_PATH, MANIFEST_PATH.read_bytes()
    else:
        path = Path(path)
        data = safe_json.read_bytes(path)
    doc = safe_json.loads(data, path)
    entries = doc.get("sources") if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        raise InputError(path, "not a source manifest: expected {\"sources\": {name: entry}}")
    sources = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            raise InputError(path, "must be an object", record=name)
        for key, value in entry.items():
            expected = _MANIFEST_TYPES.get(key)
            if expected is None:
                raise InputError(path, f"unknown field; known: {', '.join(_MANIFEST_TYPES)}",
                                 record=name, field=key)
            if not _has_type(value, expected):
                raise InputError(path, f"must be {expected}", record=name, field=key)
        sources[name] = Source(
            name=name, **{k: v for k, v in entry.items() if k not in ("mirrors", "members")},
            mirrors=tuple(entry.get("mirrors") or ()),
            members=None if entry.get("members") is None else tuple(entry["members"]))
        if not sources[name].manual and not (sources[name].urls and sources[name].filename
                                             and sources[name].format in ("tar", "zip")):
            raise InputError(path, "needs url, filename and format tar|zip (or manual: true)",
                             record=name)
    return sources


_MANIFEST_TYPES = {"title": "a string", "provides": "a string", "homepage": "a string",
                   "url": "a string", "mirrors": "a list of strings", "filename": "a string",
                   "size": "a non-negative integer", "md5": "a string", "sha256": "a string",
                   "format": "a string", "extract_to": "a string",
                   "members": "a list of strings", "manual": "true or false",
                   "instructions": "a string"}


def _has_type(value, expected: str) -> bool:
    if value is None and expected not in ("true or false",):
        return True
    return {"a string": lambda: isinstance(value, str),
            "a list of strings": lambda: isinstance(value, list)
            and all(isinstance(v, str) for v in value),
            "a non-negative integer": lambda: type(value) is int and value >= 0,
            "true or false": lambda: isinstance(value, bool)}[expected]()


def download(raw: str | os.PathLike, only: Iterable[str] | None = None,
             mirror: str | None = None, manifest: str | os.PathLike | None = None,
             retries: int = 3, limits: DownloadLimits = DownloadLimits(),
             progress: bool = True) -> DownloadReport:
    """Fetch, check and extract the manifest's sources (or those named in ``only``) into ``raw``.

    ``mirror`` is a directory holding the archives under their manifest file names, or a
    base URL tried before the manifest's own URLs. ``limits`` bound the time spent on each
    archive (:class:`~.limits.DownloadLimits`).
    """
    raw = Path(raw)
    sources = load_manifest(manifest)
    names = list(sources) if only is None else list(only)
    unknown = [n for n in names if n not in sources]
    if unknown:
        raise InputError(manifest or MANIFEST_PATH,
                         f"unknown source {', '.join(unknown)}; known: {', '.join(sources)}")
    mirror_dir = None
    mirror_url = None
    if mirror is not None:
        if re.match(r"^https?://", mirror):
            mirror_url = mirror.rstrip("/")
        elif Path(mirror).is_dir():
            mirror_dir = Path(mirror)
        else:
            raise InputError(mirror, "mirror is neither an http(s) URL nor a directory")
    atomic.make_dirs(raw)
    report = DownloadReport()
    for name in names:
        source = sources[name]
        if source.manual:
            report.results.append(_manual_source(raw, source))
        else:
            report.results.append(_archive_source(raw, source, mirror_dir, mirror_url,
                                                  retries, limits, progress))
    return report


def _manual_source(raw: Path, source: Source) -> SourceResult:
    target = (raw / source.provides).absolute()
    count = sum(1 for _ in target.glob("*.mat")) if target.is_dir() else 0
    if count:
        return SourceResult(source.name, "present", f"{count} files in {target}")
    return SourceResult(source.name, "manual", (
        f"{source.title}: {source.instructions} Homepage: {source.homepage}. "
        f"Put the files in {target}/ (e.g. {target}/2008_000652.mat). Without them "
        "`ppp prepare` still builds the part segmentation dataset, with every image marked "
        "pose_annotated: false."))


def _archive_source(raw: Path, source: Source, mirror_dir: Path | None,
                    mirror_url: str | None, retries: int, limits: DownloadLimits,
                    progress: bool) -> SourceResult:
    state = _read_state(raw)
    provided = raw / source.provides
    extracted = state["sources"].get(source.name)
    if extracted == "done" and provided.exists():
        return SourceResult(source.name, "present", f"already extracted: {provided}")
    if extracted is None and provided.exists() and any(provided.iterdir()):
        return SourceResult(source.name, "present",
                            f"found {provided} (not fetched by ppp; delete it to fetch again)")
    archive = raw / ARCHIVE_DIR / source.filename
    if mirror_dir is not None and (mirror_dir / source.filename).is_file():
        archive = mirror_dir / source.filename
    elif not archive.is_file():
        urls = ((f"{mirror_url}/{source.filename}",) if mirror_url else ()) + source.urls
        try:
            _fetch_any(urls, archive, source, retries, limits, progress)
        except FetchError as e:
            return SourceResult(source.name, "manual", (
                f"{source.title}: could not fetch {source.filename} ({e}). Download it by "
                f"hand from {' or '.join(source.urls)} and save it as {archive.absolute()}, "
                f"then run `ppp download {raw} --only {source.name}` again."))
    try:
        observed = _verify(archive, source, state)
        state["sources"][source.name] = "extracting"
        _write_state(raw, state)
        count = safe_extract(archive, raw / source.extract_to, source.members, source.format)
    except InputError as e:
        if archive.parent != raw / ARCHIVE_DIR:  # a mirror's file is the user's: leave it
            raise
        aside = archive.with_name(archive.name + ".corrupt")
        os.replace(archive, aside)
        raise InputError(archive, f"{e.message}; moved aside to {aside}, run again to "
                                  "fetch it anew", record=e.record) from None
    if not provided.exists():
        raise InputError(archive, f"extracted {count} members but {provided} is missing: "
                                  "not the expected archive")
    state["archives"][source.filename] = observed
    state["sources"][source.name] = "done"
    _write_state(raw, state)
    return SourceResult(source.name, "downloaded", f"{count} files from {archive} -> {provided}")


def _read_state(raw: Path) -> dict:
    """The download state, every field checked (it is a file people edit by hand)."""
    path = raw / STATE_FILE
    if not os.path.lexists(path):
        return {"archives": {}, "sources": {}}
    state = safe_json.load(path)
    hint = "; delete it to start over"
    if not isinstance(state, dict) or set(state) != {"archives", "sources"} \
            or not all(isinstance(state[k], dict) for k in state):
        raise InputError(path, 'must be {"archives": {...}, "sources": {...}}' + hint)
    for name, record in state["archives"].items():
        if not (isinstance(record, dict) and isinstance(record.get("sha256"), str)
                and _SHA256.match(record["sha256"]) and type(record.get("size")) is int
                and record["size"] >= 0):
            raise InputError(path, '{"sha256": 64 hex digits, "size": bytes} expected' + hint,
                             record=f"archives/{name}")
    for name, value in state["sources"].items():
        if value not in _SOURCE_STATES:
            raise InputError(path, f"must be one of {', '.join(_SOURCE_STATES)}" + hint,
                             record=f"sources/{name}")
    return state


def _write_state(raw: Path, state: dict) -> None:
    atomic.write_json(raw / STATE_FILE, state, indent=2)


def _verify(archive: Path, source: Source, state: dict) -> dict:
    """Check ``archive`` against the manifest, else against the sha256 recorded on first use;
    return what was observed (recorded by the caller once the archive extracted cleanly)."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(archive, "rb") as f:
        while chunk := f.read(_CHUNK):
            md5.update(chunk)
            sha256.update(chunk)
    observed = {"md5": md5.hexdigest(), "sha256": sha256.hexdigest(),
                "size": archive.stat().st_size}
    expected = {k: v for k, v in (("md5", source.md5), ("sha256", source.sha256),
                                  ("size", source.size)) if v is not None}
    origin = "the manifest"
    recorded = state["archives"].get(source.filename)
    if source.md5 is None and source.sha256 is None:
        if recorded:
            expected["sha256"] = recorded["sha256"]
            origin = f"the sha256 recorded in {STATE_FILE} on first use"
        else:  # nothing to compare with: the archive must at least prove itself whole
            prove_complete(archive, source.format)
    wrong = [f"{k} {observed[k]}, expected {v}" for k, v in expected.items() if observed[k] != v]
    if wrong:
        raise InputError(archive, f"corrupt archive: {'; '.join(wrong)} (from {origin})")
    return {"sha256": observed["sha256"], "size": observed["size"]}


def prove_complete(archive: str | os.PathLike, fmt: str | None) -> None:
    """Raise InputError unless ``archive`` is whole by its own structure: a zip's central
    directory (at its very end) and every member inside the file; a tar's full listing,
    the end-of-archive block after the last member, and (gzip, bzip2, xz) the compressed
    stream read to its end, which checks the trailer's CRC and length."""
    archive = Path(archive)
    try:
        if (fmt or ("zip" if archive.suffix.lower() == ".zip" else "tar")) == "zip":
            with zipfile.ZipFile(archive) as zf:
                size = archive.stat().st_size
                for info in zf.infolist():
                    if info.header_offset + info.compress_size > size:
                        raise EOFError(f"member {info.filename!r} runs past the end")
            return
        with open(archive, "rb") as f:
            magic = f.read(6)
        opener = next((o for m, o in _COMPRESSED_TAR if magic.startswith(m)), open)
        with opener(archive, "rb") as stream, tarfile.open(fileobj=stream, mode="r:") as tf:
            tf.getmembers()
            stream.seek(tf.offset)
            if stream.read(_TAR_BLOCK) != bytes(_TAR_BLOCK):
                raise EOFError("no end-of-archive block after the last member")
            while stream.read(_CHUNK):  # to the end: the compressed stream checks its trailer
                pass
    except InputError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, lzma.LZMAError,
            zlib.error, ValueError) as e:
        raise InputError(archive, f"incomplete or corrupt archive ({e})") from None


def _fetch_any(urls: Iterable[str], dest: Path, source: Source, retries: int,
               limits: DownloadLimits, progress: bool) -> None:
    reasons = []
    deadline = time.monotonic() + limits.timeout
    for url in urls:
        try:
            fetch(url, dest, size=source.size, retries=retries, limits=limits,
                  progress=progress, fmt=source.format, deadline=deadline)
            return
        except FetchError as e:
            reasons.append(f"{url}: {e}")
    raise FetchError("; ".join(reasons))


class _TooSlow(Exception):
    """The transfer missed the minimum rate or the deadline: give up on this URL."""


def fetch(url: str, dest: str | os.PathLike, size: int | None = None, retries: int = 3,
          limits: DownloadLimits = DownloadLimits(), progress: bool = True,
          fmt: str | None = None, deadline: float | None = None) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming from what is already there.

    A cut transfer is resumed with a Range request (up to ``retries`` times per call); a
    server that ignores Range (answers 200) starts the file over. ``dest`` appears only
    once complete: its size is the one the server (Content-Length, Content-Range) or the
    manifest (``size``) gave, or, when neither did, the archive itself proves it whole
    (:func:`prove_complete` for ``fmt``). A transfer slower than ``limits.min_rate`` over
    ``limits.window`` seconds, or running past ``deadline`` (``time.monotonic()``; default
    ``limits.timeout`` from now), is given up without retrying this URL.
    """
    dest = Path(dest)
    atomic.make_dirs(dest.parent)
    part = dest.with_name(dest.name + ".part")
    deadline = time.monotonic() + limits.timeout if deadline is None else deadline
    last_error = "no attempt"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(0.5 * 2 ** (attempt - 1), 8.0, max(deadline - time.monotonic(), 0)))
        have = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": _USER_AGENT}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            waiting = min(limits.window, deadline - time.monotonic())
            if waiting <= 0:
                raise _TooSlow(f"no time left of the overall limit of {limits.timeout:g} s")
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                        timeout=waiting) as response:
                total, mode = _resume_plan(response, have)
                if mode is None:
                    part.unlink(missing_ok=True)
                    last_error = "the server answered with a range that was not asked for"
                    continue
                with open(part, mode) as f, progress_bar.bar(
                        desc=dest.name, total=total, initial=have if mode == "ab" else 0,
                        unit="B", unit_scale=True, enabled=progress) as bar:
                    _receive(response, f, bar, limits, deadline,
                             size - (have if mode == "ab" else 0) if size else None)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have and _complete_after_416(e, have, size):
                os.replace(part, dest)
                return dest
            last_error = f"HTTP {e.code} {e.reason}"
            if e.code == 416:
                part.unlink()
            elif e.code < 500:
                break
            continue
        except _TooSlow as e:
            last_error = str(e)
            break
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            # refused, timed out, reset
            last_error = str(getattr(e, "reason", e))
            continue
        got = part.stat().st_size
        if total is not None and got < total:
            last_error = f"transfer cut at {got} of {total} bytes"
            continue
        if size is not None and got != size:
            part.unlink()
            last_error = f"got {got} bytes, the manifest says {size}"
            continue
        if total is None and size is None:  # nothing said how long it is: ask the archive
            try:
                prove_complete(part, fmt)
            except InputError as e:
                last_error = f"transfer ended early, without a length: {e.message}"
                continue
        os.replace(part, dest)
        return dest
    raise FetchError(last_error)


def _receive(response, f, bar, limits: DownloadLimits, deadline: float,
             expected: int | None) -> None:
    """Copy the body to ``f`` as it arrives, checking the rate, the deadline and the size."""
    window_start, window_bytes, written = time.monotonic(), 0, 0
    while chunk := response.read1(_CHUNK):  # what has arrived: a trickle is seen as one
        f.write(chunk)
        bar.update(len(chunk))
        written += len(chunk)
        window_bytes += len(chunk)
        now = time.monotonic()
        if expected is not None and written > expected:
            raise _TooSlow(f"the server sends more than the manifest's {expected} bytes")
        if now > deadline:
            raise _TooSlow(f"the overall limit of {limits.timeout:g} s ran out")
        if now - window_start >= limits.window:
            if window_bytes < limits.min_rate * (now - window_start):
                raise _TooSlow(f"{window_bytes} bytes in {now - window_start:.0f} s, below "
                               f"the minimum rate of {limits.min_rate:g} bytes/s (--min-rate)")
            window_start, window_bytes = now, 0


def _resume_plan(response, have: int) -> tuple[int | None, str | None]:
    """(total size or None, file mode): append on the 206 we asked for, start over on a
    200, and None (drop the .part, ask again) for a range we did not ask for."""
    length = response.length  # http.client's parse: None when absent or malformed
    if response.status != 206:
        return length, "wb"
    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
    if not (have and match and int(match.group(1)) == have):
        return None, None
    total = match.group(2)
    return (int(total) if total != "*" else
            (have + length if length is not None else None)), "ab"


def _complete_after_416(error: urllib.error.HTTPError, have: int, size: int | None) -> bool:
    """A 416 for ``bytes=have-`` means the .part is whole when the server's size equals it."""
    match = re.match(r"bytes \*/(\d+)", error.headers.get("Content-Range", "") or "")
    total = int(match.group(1)) if match else size
    return total == have


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike,
                 members: Iterable[str] | None = None, fmt: str | None = None) -> int:
    """Extract ``archive`` into ``target`` after checking every member; return the number
    of members extracted.

    Only members under one of the ``members`` path prefixes are extracted (all when None),
    but every member is checked: one bad member refuses the whole archive (InputError naming
    the archive and the member) before anything is written.
    """
    archive, target = Path(archive), Path(target)
    fmt = fmt or ("zip" if archive.suffix.lower() == ".zip" else "tar")
    prefixes = None if members is None else tuple(members)
    target.mkdir(parents=True, exist_ok=True)
    try:
        if fmt == "zip":
            with zipfile.ZipFile(archive) as zf:
                chosen = [i for i in zf.infolist() if _check_zip_member(archive, zf, i)
                          and _selected(i.filename, prefixes)]
                zf.extractall(target, members=chosen)
        else:
            with tarfile.open(archive, "r:*") as tf:
                chosen = [m for m in tf.getmembers() if _check_tar_member(archive, m)
                          and _selected(m.name, prefixes)]
                tf.extractall(target, members=chosen, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise InputError(archive, f"cannot extract: {e}") from None
    return len(chosen)


def _selected(name: str, prefixes: tuple[str, ...] | None) -> bool:
    name = _normalise(name)
    return prefixes is None or any(
        name.startswith(p) or name == p.rstrip("/") for p in prefixes)


def _normalise(name: str) -> str:
    return name[2:] if name.startswith("./") else name


def _check_path(archive: Path, name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or re.match(r"^[A-Za-z]:", name):
        raise InputError(archive, "absolute member path refused", record=name)
    if ".." in path.parts:
        raise InputError(archive, "member path with '..' refused", record=name)
    return path


def _check_link(archive: Path, name: str, link: str, base: PurePosixPath) -> None:
    """Refuse a link whose target, resolved from ``base`` inside the tree, leaves the tree."""
    if PurePosixPath(link).is_absolute() or re.match(r"^[A-Za-z]:", link):
        raise InputError(archive, f"link to absolute path {link!r} refused", record=name)
    depth = 0
    for part in (base / link).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            raise InputError(archive, f"link {link!r} leaves the extraction folder",
                             record=name)


def _check_tar_member(archive: Path, member: tarfile.TarInfo) -> bool:
    path = _check_path(archive, member.name)
    if member.issym():
        _check_link(archive, member.name, member.linkname, path.parent)
    elif member.islnk():
        _check_link(archive, member.name, member.linkname, PurePosixPath())
    elif not (member.isfile() or member.isdir()):
        raise InputError(archive, "special file (device, fifo) refused", record=member.name)
    return True


def _check_zip_member(archive: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    path = _check_path(archive, info.filename)
    if stat.S_ISLNK(info.external_attr >> 16):
        _check_link(archive, info.filename, zf.read(info).decode("utf-8", "replace"),
                    path.parent)
    return True

