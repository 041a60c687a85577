"""The annotation store: edits of one split's canonical JSON, atomic and revisioned.

Where labelling state lives:

- ``revision`` (top-level integer, absent = 0): bumped by every save. A writer states the
  revision its edit is based on; a save based on an older one is refused
  (:class:`RevisionConflict`), so two open labeler tabs cannot silently overwrite each
  other.
- ``proposed_keypoints`` (per annotation, optional): ``[x, y, v] * 14`` like
  ``keypoints``, ``v = 0`` where no proposal is pending. Proposals live beside the
  labels, never in ``keypoints``: an unconfirmed proposal must not count as ground truth
  for the metrics, the ``Dataset`` and pycocotools, which read ``keypoints`` only.
  Confirming a proposal moves it into ``keypoints`` and drops it from here; the key is
  removed once no proposal of the person is pending.

Both keys are extra members that pycocotools and ``Dataset`` ignore, so the file stays a
valid canonical annotation file.

Every save rewrites the whole file through ``atomic.write_json`` (temp file, fsync,
rename): a reader or a killed process sees the old file or the new one, never half of
one. Writers in several processes or threads (the labeler, ``ppp label propose``,
``ppp label import``) serialise on an ``flock`` of the annotation folder and re-read the
file when it changed on disk, so no writer works from a stale copy.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from pascal_person_pose import atomic, layout, schema
from pascal_person_pose.errors import InputError

PROPOSALS_KEY = "proposed_keypoints"
REVISION_KEY = "revision"
_LENGTH = 3 * schema.NUM_JOINTS


class RevisionConflict(Exception):
    """A save based on an older revision than the file's: the page must reload."""

    def __init__(self, path: Path, expected: int, current: int):
        self.expected, self.current = expected, current
        super().__init__(f"{path}: the annotations changed since this page loaded them "
                         f"(revision {current} on disk, {expected} here); reload to continue")


def float32_list(values: np.ndarray) -> list[float]:
    """Numbers as the shortest decimals of their float32 values, the canonical JSON's form."""
    return [float(str(v)) for v in np.asarray(values, dtype=np.float32).ravel()]


def check_keypoints(keypoints: np.ndarray, width: int, height: int, where: str,
                    path: Path | None = None, field: str = "keypoints") -> np.ndarray:
    """Validate one person's ``(14, 3)`` joints from outside (labeler, import); return them.

    Coordinates must be finite and inside the image (pixel centres ``0 .. size - 1``, half
    a pixel of slack for the pixel's own extent), visibility 0, 1 or 2, and an unlabelled
    joint has ``x = y = 0`` as COCO requires.
    """
    try:
        kp = np.asarray(keypoints, dtype=np.float64).reshape(schema.NUM_JOINTS, 3)
    except (TypeError, ValueError):
        raise InputError(path, f"must be {_LENGTH} numbers [x, y, v] * 14", record=where,
                         field=field) from None
    if not np.isfinite(kp).all() or not np.isin(kp[:, 2], (0, 1, 2)).all():
        raise InputError(path, "coordinates must be finite and visibility 0, 1 or 2",
                         record=where, field=field)
    labelled = kp[:, 2] > 0
    outside = labelled & ((kp[:, 0] < -0.5) | (kp[:, 0] > width - 0.5)
                          | (kp[:, 1] < -0.5) | (kp[:, 1] > height - 0.5))
    if outside.any():
        name = schema.JOINT_NAMES[int(np.argmax(outside))]
        raise InputError(path, f"joint {name} lies outside the {width}x{height} image",
                         record=where, field=field)
    if (kp[~labelled, :2] != 0).any():
        raise InputError(path, "an unlabelled joint (v = 0) must have x = y = 0", record=where,
                         field=field)
    return kp


class AnnotationStore:
    """One split's annotation file, edited in transactions (``with store.edit(...) as doc``)."""

    def __init__(self, root: str | os.PathLike, split: str):
        self.path = layout.CanonicalLayout(root).annotations(split)
        if not self.path.is_file():
            raise InputError(self.path, "annotation file not found (run `ppp prepare` first)")
        self._doc: dict | None = None
        self._signature: tuple | None = None
        self._by_id: dict[int, dict] = {}
        self._images: dict[int, dict] = {}

    # -- reading -----------------------------------------------------------------------
    def _stat(self) -> tuple:
        st = os.stat(self.path)
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _load(self) -> dict:
        """The document, re-read only when the file changed since the last read."""
        signature = self._stat()
        if signature != self._signature or self._doc is None:
            try:
                with open(self.path, encoding="utf-8") as f:
                    doc = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise InputError(self.path, f"not valid JSON ({e})") from None
            if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
                raise InputError(self.path, "not a canonical annotation file", field="annotations")
            self._doc, self._signature = doc, signature
            self._by_id = {a["id"]: a for a in doc["annotations"]}
            self._images = {im["id"]: im for im in doc.get("images", [])}
        return self._doc

    def read(self) -> dict:
        """The current document (do not modify it outside :meth:`edit`)."""
        with self._lock(shared=True):
            return self._load()

    @property
    def revision(self) -> int:
        return int(self.read().get(REVISION_KEY, 0))

    def annotation(self, annotation_id: int) -> dict:
        """The annotation record with this id from the current document."""
        self.read()
        try:
            return self._by_id[annotation_id]
        except KeyError:
            raise InputError(self.path, "no such annotation", record=f"annotation {annotation_id}",
                             field="id") from None

    # -- writing -----------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self, shared: bool = False) -> Iterator[None]:
        """``flock`` of the annotation folder: one writer at a time across processes."""
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    @contextlib.contextmanager
    def edit(self, expected_revision: int | None = None) -> Iterator[dict]:
        """Yield the document to modify in place; on leaving, save it as the next revision.

        ``expected_revision`` is the revision the caller's edit is based on: when the file
        has moved on, :class:`RevisionConflict` is raised and nothing is written. An
        exception inside the block discards the edit (the document is re-read next time).
        """
        with self._lock():
            doc = self._load()
            current = int(doc.get(REVISION_KEY, 0))
            if expected_revision is not None and expected_revision != current:
                raise RevisionConflict(self.path, expected_revision, current)
            try:
                yield doc
            except BaseException:
                self._doc = None
                raise
            doc[REVISION_KEY] = current + 1
            atomic.write_json(self.path, doc)
            self._signature = self._stat()
            self._by_id = {a["id"]: a for a in doc["annotations"]}

    def remove_stale_temp_files(self) -> int:
        """Delete temp files left by writers that were killed mid-save; returns how many.

        Safe only while no other writer of this split runs outside the store's lock (the
        labeler calls it at start-up). A temp file younger than a minute is kept.
        """
        removed = 0
        with self._lock():
            for tmp in self.path.parent.glob(f".{self.path.name}.*.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    if time.time() - tmp.stat().st_mtime > 60:
                        tmp.unlink()
                        removed += 1
        return removed

    def update_person(self, annotation_id: int, keypoints: np.ndarray,
                      proposals: np.ndarray | None, expected_revision: int | None) -> int:
        """Replace one person's joints and pending proposals; returns the new revision.

        ``proposals`` is ``(14, 3)`` with ``v = 0`` where nothing is pending, or None for
        none. A proposal is dropped where the joint is labelled: a labelled joint always
        wins.
        """
        with self.edit(expected_revision) as doc:
            ann = self._by_id.get(annotation_id)
            if ann is None:
                raise InputError(self.path, "no such annotation",
                                 record=f"annotation {annotation_id}", field="id")
            image = self._images[ann["image_id"]]
            where = f"annotation {annotation_id}"
            kp = check_keypoints(keypoints, image["width"], image["height"], where)
            pending = None if proposals is None else check_keypoints(
                proposals, image["width"], image["height"], where, field=PROPOSALS_KEY)
            set_person(ann, kp, pending)
        return int(doc[REVISION_KEY])


def set_person(ann: dict, keypoints: np.ndarray, proposals: np.ndarray | None) -> None:
    """Write joints (and pending proposals) into an annotation record, keeping it canonical."""
    kp = np.asarray(keypoints, dtype=np.float64).reshape(schema.NUM_JOINTS, 3)
    ann["keypoints"] = float32_list(kp)
    ann["num_keypoints"] = int((kp[:, 2] > 0).sum())
    if proposals is not None:
        pending = np.asarray(proposals, dtype=np.float64).reshape(schema.NUM_JOINTS, 3).copy()
        pending[kp[:, 2] > 0] = 0
        if (pending[:, 2] > 0).any():
            ann[PROPOSALS_KEY] = float32_list(pending)
            return
    ann.pop(PROPOSALS_KEY, None)


def person_arrays(ann: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(keypoints, proposals)`` of an annotation record, each ``(14, 3)`` float32."""
    kp = np.asarray(ann["keypoints"], dtype=np.float32).reshape(schema.NUM_JOINTS, 3)
    pending = ann.get(PROPOSALS_KEY)
    proposals = (np.zeros_like(kp) if pending is None
                 else np.asarray(pending, dtype=np.float32).reshape(schema.NUM_JOINTS, 3))
    return kp, proposals
