"""Reading JSON that people wrote or edited by hand, or that strangers uploaded.

Python's :mod:`json` turns hostile text into a ``RecursionError`` (deep nesting), a
``ValueError`` (an integer of more than 4300 digits) or silently into values no format of
ours allows (``NaN``, duplicate keys, of which the last wins). Every reader of user JSON goes
through :func:`load` or :func:`loads` instead, which refuse all of these with one
:class:`InputError` naming the file and, where the parser knows it, the line and column:

- nesting deeper than :data:`MAX_DEPTH` (checked on the raw text, before parsing);
- integers outside the 64-bit range (checked before conversion, so a 5000-digit literal
  costs nothing);
- ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON (RFC 8259), unless the caller
  validates numbers itself and asks for them (``allow_nan=True``: a submission's checks
  name the record and field of a non-finite value, which is more helpful than a position);
- the same key twice in one object;
- files over ``max_bytes``, checked before reading, and anything that is not a regular file
  (a FIFO would block the reader forever).
"""

from __future__ import annotations

import json
import os
import re
import stat

import numpy as np

from pascal_person_pose.errors import InputError, os_error

MAX_DEPTH = 64  # our formats nest at most 6 levels; Python's parser recurses per level
_INT_LIMIT = 2 ** 63
_MAX_INT_DIGITS = len(str(_INT_LIMIT))  # longer literals are out of range without converting
# A JSON string, written so that the regex engine does not backtrack (unrolled loop).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_BRACKET_STEP = np.zeros(256, np.int8)
_BRACKET_STEP[list(b"[{")] = 1
_BRACKET_STEP[list(b"]}")] = -1


class _Refused(ValueError):
    """Raised inside the parser's hooks; turned into an InputError with the position."""

    def __init__(self, message: str, literal: str | None = None):
        super().__init__(message)
        self.literal = literal


def load(path: str | os.PathLike, *, max_bytes: int | None = None,
         allow_nan: bool = False):
    """The JSON value of the file at ``path`` (see the module docstring for what is refused)."""
    return loads(read_bytes(path, max_bytes), path, allow_nan=allow_nan)


def loads(data: bytes | str, source: str | os.PathLike | None, *, allow_nan: bool = False):
    """The JSON value of ``data``; ``source`` names it in errors (a file or member name)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    depth = nesting_depth(raw)
    if depth > MAX_DEPTH:
        raise InputError(source, f"not valid JSON for us: nested {depth} levels deep, more "
                                 f"than the {MAX_DEPTH} allowed")
    try:
        return json.loads(data, parse_int=_parse_int, object_pairs_hook=_unique_keys,
                          parse_constant=_parse_constant if not allow_nan else float)
    except UnicodeDecodeError as e:
        raise InputError(source, f"not UTF-8 text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise InputError(source, f"not valid JSON at line {e.lineno}, column {e.colno}: "
                                 f"{e.msg}") from None
    except _Refused as e:
        raise InputError(source, f"not valid JSON for us{_position(raw, e.literal)}: {e}") \
            from None


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON text, ignoring brackets in strings."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    steps = _BRACKET_STEP[np.frombuffer(brackets, np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0))


def read_bytes(path: str | os.PathLike, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file, refused with one line when larger than ``max_bytes``,
    unreadable (permissions, missing) or not a regular file."""
    try:
        with open(path, "rb", opener=_open_regular) as f:
            size = os.fstat(f.fileno()).st_size
            if max_bytes is None:
                return f.read()
            # Read one byte more than allowed: a file that grew since fstat is caught too.
            data = f.read(max_bytes + 1) if size <= max_bytes else b""
    except OSError as e:
        raise os_error(e, path, "cannot read") from None
    if max(size, len(data)) > max_bytes:
        raise InputError(path, f"is {max(size, len(data))} bytes, more than the limit of "
                               f"{max_bytes}")
    return data


def _open_regular(path: str, flags: int) -> int:
    """Open without blocking on a FIFO, and refuse anything but a regular file."""
    fd = os.open(path, flags | os.O_NONBLOCK)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, device or socket)"
        raise InputError(path, f"is {kind}")
    os.set_blocking(fd, True)
    return fd


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise _Refused(f"integer with {len(text.lstrip('-'))} digits is out of range "
                       "(64-bit integers only)", text)
    value = int(text)
    if not -_INT_LIMIT <= value < _INT_LIMIT:
        raise _Refused(f"integer {text} is out of range (64-bit integers only)", text)
    return value


def _parse_constant(text: str):
    raise _Refused(f"{text} is not a JSON number (use null for a missing value)", text)


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _Refused(f"key {key!r} appears twice in one object")
    return obj


def _position(raw: bytes, literal: str | None) -> str:
    """' at line L, column C' of the first occurrence of ``literal`` (as a token), if any."""
    if literal is None:
        return ""
    match = re.search(rb"(?<![\w.+-])" + re.escape(literal.encode("utf-8", "surrogatepass"))
                      + rb"(?![\w.])", raw)
    if match is None:
        return ""
    line = raw.count(b"\n", 0, match.start()) + 1
    column = match.start() - (raw.rfind(b"\n", 0, match.start()) + 1) + 1
    return f" at line {line}, column {column}"

