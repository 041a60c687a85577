"""Writing outputs safely: a reader (or a crash) never sees a half-written file, and a path
that is not a plain file is never replaced by one.

Where the output goes decides how it is written:

- a regular file, or a name that does not exist yet: written to a temporary file in the
  same folder, flushed to disk, then renamed over the destination (atomic on POSIX). An
  existing file keeps its permission bits (and, where allowed, its owner and group); a
  new one gets the usual 0666 less the umask. A hard link is broken: the other names
  keep the old content;
- a symbolic link: followed; the file it finally points to is replaced as above and the
  link stays a link (a ``latest.json`` link keeps pointing where it pointed, at new content);
- ``-``, ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N``, ``/proc/self/fd/N``: written to
  that already-open descriptor (a pipe, a terminal, or the file the shell redirected to,
  at its current position: nothing is truncated behind the shell's back);
- any other device, FIFO or socket (``/dev/null``, a named pipe): opened and written in
  place, never replaced; a reader of the FIFO sees the bytes as they come;
- a folder, or a path whose folder cannot be created or written: refused with one
  :class:`InputError` line, before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import sys
import tempfile
from pathlib import Path
from typing import IO, Iterator

from pascal_person_pose.errors import InputError, os_error

STDOUT = "-"
_OWN_FD = re.compile(r"^/(?:dev/fd|proc/self/fd|proc/(\d+)/fd)/(\d+)$")
_STD_STREAMS = {"/dev/stdout": 1, "/dev/stderr": 2}


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """A file object for writing ``path`` (``mode`` "wb" or "w"), following the rules above.

    For a regular file the new content replaces ``path`` only when the block ends without
    an exception.
    """
    fd = _descriptor(path)
    if fd is not None:
        with _write_descriptor(fd, mode) as f:
            yield f
        return
    target = _target(path)
    if target is None:
        with _open_in_place(path, mode) as f:
            yield f
        return
    make_dirs(target.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as e:
        raise os_error(e, target, "cannot write") from None
    try:
        _copy_ownership(fd, target)
        with os.fdopen(fd, mode, **_text_args(mode)) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def make_dirs(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` and its parents; one line when a file is in the way."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(path, "exists and is not a folder") from None
    except OSError as e:
        raise os_error(e, path, "cannot create the folder") from None
    return path


def _descriptor(path: str | os.PathLike) -> int | None:
    """The number of an open descriptor of this process that ``path`` names, if any."""
    name = os.fspath(path)
    if name == STDOUT:
        return 1
    name = os.path.abspath(name)
    if name in _STD_STREAMS:
        return _STD_STREAMS[name]
    match = _OWN_FD.match(name)
    if match is None or match.group(1) not in (None, str(os.getpid())):
        return None
    return int(match.group(2))


def _target(path: str | os.PathLike) -> Path | None:
    """The regular file to replace (symbolic links followed), or None to write in place."""
    real = Path(os.path.realpath(path))
    try:
        mode = real.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):  # make_dirs names what is in the way
        return real
    except OSError as e:
        raise os_error(e, path, "cannot write") from None
    if stat.S_ISDIR(mode):
        raise InputError(path, "is a folder; give a file name")
    return real if stat.S_ISREG(mode) else None


@contextlib.contextmanager
def _write_descriptor(fd: int, mode: str) -> Iterator[IO]:
    """Write to a descriptor we already hold; flush Python's own buffers around it so that
    the bytes land in order with ``print`` output."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        f = os.fdopen(fd, mode, closefd=False, **_text_args(mode))
    except OSError as e:
        raise os_error(e, f"/dev/fd/{fd}", "cannot write") from None
    with f:
        yield f


@contextlib.contextmanager
def _open_in_place(path: str | os.PathLike, mode: str) -> Iterator[IO]:
    """A device or FIFO: written as it is (no temporary file, no rename, no fsync)."""
    try:
        f = open(path, mode, **_text_args(mode))
    except OSError as e:
        raise os_error(e, path, "cannot write") from None
    with f:
        yield f


def _text_args(mode: str) -> dict:
    return {} if "b" in mode else {"encoding": "utf-8"}


def _copy_ownership(fd: int, target: Path) -> None:
    """Give the temporary file the mode (and owner, where allowed) that ``target`` has; a
    new file gets 0666 less the umask (mkstemp's 0600 would hide it from other users)."""
    try:
        st = target.stat()
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        return
    os.fchmod(fd, st.st_mode & 0o777)
    if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
        with contextlib.suppress(PermissionError):
            os.fchown(fd, st.st_uid, st.st_gid)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj, indent: int | None = None) -> None:
    """Strict JSON (no NaN or Infinity, which the readers of :mod:`.safe_json` refuse).

    Encoded in one piece: ``json.dumps`` without indent runs the C encoder, ``json.dump``
    never does (ten times slower on an annotation file, which every labeler save rewrites).
    """
    text = json.dumps(obj, indent=indent, allow_nan=False)
    with atomic_open(path, "w") as f:
        f.write(text if indent is None else text + "\n")


IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}  # suffix -> PIL format


def save_image(path: str | os.PathLike, image, **save_args) -> None:
    """Save a PIL image atomically; the format comes from ``path``'s suffix."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_FORMATS:
        raise InputError(path, f"unknown image type {path.suffix!r}; use .png or .jpg")
    with atomic_open(path, "wb") as f:
        image.save(f, format=IMAGE_FORMATS[path.suffix.lower()], **save_args)
