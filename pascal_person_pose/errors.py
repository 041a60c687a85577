"""One error type for bad input, so every entry point reports it the same way.

The CLI turns an ``InputError`` into a single line on stderr and exit code 2 (no
traceback). The message always names the file, and the record and field when there is one,
so a user can go straight to the broken spot. Names come from untrusted places (zip member
names, JSON keys), so control characters are escaped: the error stays one line and cannot
move the terminal's cursor.
"""

from __future__ import annotations

import errno
import os
import re

# C0/C1 controls and the Unicode line and paragraph separators: anything that could break
# the line or talk to the terminal.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class InputError(Exception):
    """Bad user input: a file, a record inside it, a field of that record."""

    def __init__(self, file: str | os.PathLike | None, message: str,
                 record: str | None = None, field: str | None = None):
        self.file = None if file is None else os.fspath(file)
        self.record = record
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __reduce__(self):
        # Picklable, so that errors raised in worker processes reach the parent intact.
        return (type(self), (self.file, self.message, self.record, self.field))

    def __str__(self) -> str:
        where = [w for w in (self.file,
                             None if self.record is None else f"record {self.record}",
                             None if self.field is None else f"field {self.field}") if w]
        return one_line(": ".join([", ".join(where), self.message]) if where else self.message)


def one_line(text: str) -> str:
    """``text`` with every control character written as its Python escape (``\\n``)."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


_OS_REASONS = {errno.ENOENT: "not found", errno.EACCES: "permission denied",
               errno.EPERM: "operation not permitted", errno.EISDIR: "is a folder",
               errno.ENOTDIR: "a part of the path is not a folder",
               errno.EEXIST: "already exists", errno.ENOSPC: "no space left on the device",
               errno.EROFS: "read-only file system", errno.ELOOP: "symbolic link loop",
               errno.ENAMETOOLONG: "name too long"}


def os_error(error: OSError, path: str | os.PathLike | None = None,
             doing: str | None = None) -> InputError:
    """An ``OSError`` (permission, missing folder, full disk) as a one-line InputError
    naming the file the system complained about (else ``path``)."""
    reason = _OS_REASONS.get(error.errno) or error.strerror or type(error).__name__
    return InputError(error.filename if error.filename is not None else path,
                      f"{doing}: {reason}" if doing else reason)
