"""Readers and writers of the real upstream formats (docs/formats.md, section 3), one module
per source.

- :mod:`.voc`: VOC2010 JPEGImages and id lists.
- :mod:`.pascal_part`: PASCAL-Part ``Annotations_Part/<id>.mat`` (person instances, fine parts).
- :mod:`.person_part`: PASCAL-Person-Part label PNGs (palette, grayscale colours, raw ids).
- :mod:`.pose_mat`: the 14-joint pose ``.mat`` files (``joints`` / ``boxes`` cells).

Each reader turns a missing, truncated or malformed file into one :class:`InputError` that
names the file (and the record and field inside it), and each writer produces exactly the
upstream structure, atomically, so that ``ppp synth`` output goes through the same readers
as the real data. docs/formats.md documents every format field by field.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO

import numpy as np

from pascal_person_pose.errors import InputError


def load_mat(path: str | os.PathLike, variables: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named variables of a MATLAB v5 file, as ``scipy.io.loadmat`` returns them.

    scipy reports a truncated or corrupt file through a zoo of exception types (OSError,
    ValueError, TypeError, IndexError, MatReadError, zlib errors, ...), so every failure of
    the load itself becomes one InputError naming the file.
    """
    import scipy.io

    try:
        content = scipy.io.loadmat(os.fspath(path), variable_names=list(variables))
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except Exception as e:  # noqa: BLE001 - any failure to parse is a broken input file
        reason = " ".join(f"{type(e).__name__}: {e}".split())  # keep the error on one line
        raise InputError(path, f"not a readable MATLAB .mat file ({reason})") from None
    missing = [v for v in variables if v not in content]
    if missing:
        raise InputError(path, f"missing MATLAB variable(s) {', '.join(missing)}")
    return {v: content[v] for v in variables}


MAT_HEADER_TEXT_BYTES = 116  # MAT-file v5: text, then subsystem offset, version, byte order
MAT_HEADER_TEXT = b"MATLAB 5.0 MAT-file, Platform: posix, Created by: pascal-person-pose"


def save_mat(stream: BinaryIO, variables: dict) -> None:
    """``scipy.io.savemat(stream, variables, do_compression=True)`` with a constant header.

    scipy stamps the creation time into the header's text, which MATLAB and scipy never
    read back (they read the version and byte order after it); a constant text makes the
    same content the same bytes, so a synthetic release with a given seed can be hashed.
    """
    import scipy.io

    buffer = io.BytesIO()
    scipy.io.savemat(buffer, variables, do_compression=True)
    data = buffer.getbuffer()
    data[:MAT_HEADER_TEXT_BYTES] = MAT_HEADER_TEXT.ljust(MAT_HEADER_TEXT_BYTES, b" ")
    stream.write(data)
