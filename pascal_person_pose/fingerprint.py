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

from pascal_person_pose.errors import InputError

PREFIX = "sha256:"


def ground_truth_files(dataset) -> list[str]:
    """The files a fingerprint covers, relative to the dataset root, in hashing order."""
    root = dataset.layout.root
    files = {_relative(dataset.annotation_file, root)}
    for image in dataset.images:
        voc_id = image["voc_id"]
        files.add(_relative(dataset.layout.parts(voc_id), root))
        files.add(_relative(dataset.layout.instances(voc_id), root))
    return sorted(files, key=lambda name: name.encode())


def ground_truth_fingerprint(dataset) -> str:
    """``"sha256:<hex>"`` of the split of ``dataset`` (a :class:`~.dataset.Dataset`)."""
    root = dataset.layout.root
    manifest = hashlib.sha256()
    for name in ground_truth_files(dataset):
        path = root / name
        try:
            with open(path, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        except FileNotFoundError:
            raise InputError(path, "missing; the ground-truth fingerprint needs every part "
                                   "and instance map of the split") from None
        except OSError as e:
            raise InputError(path, f"cannot be read ({e.strerror})") from None
        manifest.update(f"{digest}  {name}\n".encode())
    return PREFIX + manifest.hexdigest()


def _relative(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()
