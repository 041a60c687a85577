"""The ground-truth fingerprint: which exact annotations a score was computed on.

Scores are only comparable on the same ground truth, so every score records a fingerprint
of the split it was scored on and the leaderboard ranks only rows that share one. The
fingerprint covers everything the metrics read: the split's annotation file and, for each
of its images, the part map and the instance map (the JPEGs are not scored, so they are
left out). It is built the way ``sha256sum`` prints, so anyone can recompute it with
coreutils (docs/leaderboard.md gives the command)::

    sha256( "<sha256 of file>  <path relative to ROOT>\\n" for each file,
            paths sorted by their bytes )

Files are hashed as bytes, streamed, in one pass, nothing cached: the cost is one read of
the ground truth, which the scorer reads anyway.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pascal_person_pose.errors import InputError, os_error
from pascal_person_pose.layout import CanonicalLayout

PREFIX = "sha256:"
_CHUNK = 1 << 20  # bytes read at a time: the annotation file streams, a map is one read


def ground_truth_files(dataset) -> list[str]:
    """The files a fingerprint covers, relative to the dataset root, in hashing order."""
    relative = CanonicalLayout(Path())  # the canonical paths, spelled relative to the root
    files = {relative.annotations(dataset.split).as_posix()}
    for image in dataset.images:
        voc_id = image["voc_id"]
        files.add(relative.parts(voc_id).as_posix())
        files.add(relative.instances(voc_id).as_posix())
    return sorted(files, key=lambda name: name.encode())


def ground_truth_fingerprint(dataset) -> str:
    """``"sha256:<hex>"`` of the split of ``dataset`` (a :class:`~.dataset.Dataset`)."""
    root = os.fspath(dataset.layout.root)
    manifest = hashlib.sha256()
    # One buffer for every file: hashlib.file_digest allocates 256 KiB per call, which costs
    # more than hashing the few kB of a part map (2.3x slower over a val-sized split).
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    for name in ground_truth_files(dataset):
        path = os.path.join(root, name)
        digest = hashlib.sha256()
        try:
            with open(path, "rb", buffering=0) as f:
                while size := f.readinto(buffer):
                    digest.update(view[:size])
        except FileNotFoundError:
            raise InputError(path, "missing; the ground-truth fingerprint needs every part "
                                   "and instance map of the split") from None
        except OSError as e:
            raise os_error(e, path, "cannot be read for the ground-truth fingerprint") from None
        manifest.update(f"{digest.hexdigest()}  {name}\n".encode())
    return PREFIX + manifest.hexdigest()
