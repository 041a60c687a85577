"""One error type for bad input, so every entry point reports it the same way.

The CLI turns an ``InputError`` into a single line on stderr and exit code 2 (no
traceback). The message always names the file, and the record and field when there is one,
so a user can go straight to the broken spot.
"""

from __future__ import annotations

import os


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
        return (": ".join([", ".join(where), self.message]) if where else self.message)
