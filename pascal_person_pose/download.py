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

import hashlib
import http.client
import json
import os
import re
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Iterable

from pascal_person_pose import __version__, atomic
from pascal_person_pose import progress as progress_bar
from pascal_person_pose.errors import InputError

MANIFEST_PATH = resources.files("pascal_person_pose.sources") / "manifest.json"
STATE_FILE = ".checksums.json"
ARCHIVE_DIR = "archives"
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
    """The sources of the manifest, by name (the default is the package's ``manifest.json``)."""
    path = Path(path) if path is not None else MANIFEST_PATH
    try:
        entries = json.loads(path.read_text())["sources"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(path, f"not a readable source manifest ({e})") from None
    sources = {}
    for name, entry in entries.items():
        try:
            sources[name] = Source(
                name=name,
                **{k: v for k, v in entry.items() if k not in ("mirrors", "members")},
                mirrors=tuple(entry.get("mirrors") or ()),
                members=None if entry.get("members") is None else tuple(entry["members"]),
            )
        except TypeError as e:
            raise InputError(path, str(e), record=name) from None
        if not sources[name].manual and not (sources[name].urls and sources[name].filename
                                             and sources[name].format in ("tar", "zip")):
            raise InputError(path, "needs url, filename and format tar|zip (or manual: true)",
                             record=name)
    return sources


def download(raw: str | os.PathLike, only: Iterable[str] | None = None,
             mirror: str | None = None, manifest: str | os.PathLike | None = None,
             retries: int = 3, timeout: float = 60.0, progress: bool = True) -> DownloadReport:
    """Fetch, check and extract the manifest's sources (or those named in ``only``) into ``raw``.

    ``mirror`` is a directory holding the archives under their manifest file names, or a
    base URL tried before the manifest's own URLs.
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
    raw.mkdir(parents=True, exist_ok=True)
    report = DownloadReport()
    for name in names:
        source = sources[name]
        if source.manual:
            report.results.append(_manual_source(raw, source))
        else:
            report.results.append(_archive_source(raw, source, mirror_dir, mirror_url,
                                                  retries, timeout, progress))
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
                    mirror_url: str | None, retries: int, timeout: float,
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
            _fetch_any(urls, archive, source.size, retries, timeout, progress)
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
    path = raw / STATE_FILE
    if not path.exists():
        return {"archives": {}, "sources": {}}
    try:
        state = json.loads(path.read_text())
        return {"archives": dict(state["archives"]), "sources": dict(state["sources"])}
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(path, f"unreadable download state ({e}); delete it to start over") \
            from None


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
    if not expected and recorded:
        expected = {"sha256": recorded["sha256"]}
        origin = f"the sha256 recorded in {STATE_FILE} on first use"
    wrong = [f"{k} {observed[k]}, expected {v}" for k, v in expected.items() if observed[k] != v]
    if wrong:
        raise InputError(archive, f"corrupt archive: {'; '.join(wrong)} (from {origin})")
    return {"sha256": observed["sha256"], "size": observed["size"]}


def _fetch_any(urls: Iterable[str], dest: Path, size: int | None, retries: int,
               timeout: float, progress: bool) -> None:
    reasons = []
    for url in urls:
        try:
            fetch(url, dest, size=size, retries=retries, timeout=timeout, progress=progress)
            return
        except FetchError as e:
            reasons.append(f"{url}: {e}")
    raise FetchError("; ".join(reasons))


def fetch(url: str, dest: str | os.PathLike, size: int | None = None, retries: int = 3,
          timeout: float = 60.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming from what is already there.

    A cut transfer is resumed with a Range request (up to ``retries`` times per call); a
    server that ignores Range (answers 200) starts the file over. ``dest`` appears only
    once complete.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error = "no attempt"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
        have = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": _USER_AGENT}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                        timeout=timeout) as response:
                total, mode = _resume_plan(response, have)
                if mode is None:
                    part.unlink(missing_ok=True)
                    last_error = "the server answered with a range that was not asked for"
                    continue
                with open(part, mode) as f, progress_bar.bar(
                        desc=dest.name, total=total, initial=have if mode == "ab" else 0,
                        unit="B", unit_scale=True, enabled=progress) as bar:
                    while chunk := response.read(_CHUNK):
                        f.write(chunk)
                        bar.update(len(chunk))
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
        os.replace(part, dest)
        return dest
    raise FetchError(last_error)


def _resume_plan(response, have: int) -> tuple[int | None, str | None]:
    """(total size or None, file mode): append on the 206 we asked for, start over on a
    200, and None (drop the .part, ask again) for a range we did not ask for."""
    length = response.headers.get("Content-Length")
    length = int(length) if length is not None else None
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

