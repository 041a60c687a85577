"""The annotation store: edits of one split's canonical JSON, atomic and revisioned per image.

Where labelling state lives:

- ``revision`` on each image record (absent = 0): bumped by every save that changes the
  image's persons. A writer states the revision of the image its edit is based on; a save
  based on an older one is refused (:class:`RevisionConflict`), so two labelers on one
  image cannot silently overwrite each other, while two labelers on different images
  never conflict.
- ``revision`` at the top level (absent = 0): the file's save counter, bumped by every
  save that changed anything. Informational (``ppp label propose`` and ``import`` print
  it); conflicts are decided per image.
- ``proposed_keypoints`` (per annotation, optional): ``[x, y, v] * 14`` like
  ``keypoints``, ``v = 0`` where no proposal is pending. Proposals live beside the
  labels, never in ``keypoints``: an unconfirmed proposal must not count as ground truth
  for the metrics, the ``Dataset`` and pycocotools, which read ``keypoints`` only.
  Confirming a proposal moves it into ``keypoints`` and drops it from here; the key is
  removed once no proposal of the person is pending.

All are extra members that pycocotools and ``Dataset`` ignore, so the file stays a valid
canonical annotation file.

Guarantees (tested with many concurrent writers in ``tests/hostile``):

- Every save rewrites the whole file through ``atomic.write_json`` (temp file, fsync,
  rename): a reader or a killed process sees the old file or the new one, never half.
- Writers in several processes or threads (the labeler, ``ppp label propose``,
  ``ppp label import``) serialise on an ``flock`` of the annotation folder. Inside it the
  conflict check, the write and everything a caller is told about the save (the new
  revisions, the saved record) come from the one document that save wrote, so a reply
  can never carry another save's revision.
- An edit works on a private copy of the document; readers keep the last saved one,
  which nobody modifies, so a reader in another thread never sees half an edit.
- A store notices a change on disk by the file's identity (device, inode, mtime, size).
  It keeps the file it read open, so the file system cannot hand that inode number to a
  newer file: two quick saves by another process can never look like "unchanged".
- An edit that changes nothing writes nothing: no revision moves, the file is untouched.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import threading
import time
import weakref
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from pascal_person_pose import atomic, layout, safe_json, schema
from pascal_person_pose.errors import InputError

PROPOSALS_KEY = "proposed_keypoints"
REVISION_KEY = "revision"
_LENGTH = 3 * schema.NUM_JOINTS


class RevisionConflict(Exception):
    """A save based on an older revision of its image than the file's: reload that image."""

    def __init__(self, path: Path, voc_id: str, expected: int, current: int):
        self.voc_id, self.expected, self.current = voc_id, expected, current
        super().__init__(f"{path}: image {voc_id} changed since this page loaded it "
                         f"(revision {current} on disk, {expected} here); reload it to continue")


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
    except (TypeError, ValueError, OverflowError):
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


def image_revision(image: dict) -> int:
    return image.get(REVISION_KEY, 0)


@dataclass(frozen=True)
class Snapshot:
    """One saved state of the file. Never modified: edits work on a copy."""

    doc: dict
    identity: tuple  # (device, inode, mtime, size) of the file it was read from
    by_id: dict[int, dict]  # annotation id -> record
    images: dict[int, dict]  # image id -> record

    @classmethod
    def of(cls, doc: dict, identity: tuple, path: Path) -> "Snapshot":
        if not _is_revision(doc.get(REVISION_KEY, 0)):
            raise InputError(path, "must be a non-negative integer", field=REVISION_KEY)
        images = {}
        for k, image in enumerate(doc.get("images", [])):
            if not isinstance(image, dict) or type(image.get("id")) is not int:
                raise InputError(path, "must be an object with an integer id",
                                 record=f"images[{k}]", field="id")
            if not _is_revision(image_revision(image)):
                raise InputError(path, "must be a non-negative integer",
                                 record=f"image {image['id']}", field=REVISION_KEY)
            images[image["id"]] = image
        by_id = {}
        for k, ann in enumerate(doc["annotations"]):
            if not isinstance(ann, dict) or type(ann.get("id")) is not int:
                raise InputError(path, "must be an object with an integer id",
                                 record=f"annotations[{k}]", field="id")
            if type(ann.get("image_id")) is not int or ann["image_id"] not in images:
                raise InputError(path, "must name an image of the file",
                                 record=f"annotation {ann['id']}", field="image_id")
            by_id[ann["id"]] = ann
        return cls(doc, identity, by_id, images)

    @property
    def revision(self) -> int:
        return self.doc.get(REVISION_KEY, 0)


def _is_revision(value) -> bool:
    return type(value) is int and value >= 0


def _identity(st: os.stat_result) -> tuple:
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


def changed_images(before: dict, after: dict) -> set:
    """Ids of the images whose record (revision aside) or persons differ between two
    versions of the document."""
    def persons(doc: dict) -> dict:
        grouped = defaultdict(list)
        for ann in doc["annotations"]:
            grouped[ann.get("image_id")].append(ann)
        return grouped

    def records(doc: dict) -> dict:
        return {im.get("id"): {k: v for k, v in im.items() if k != REVISION_KEY}
                for im in doc.get("images", [])}

    old, new = persons(before), persons(after)
    changed = {i for i in old.keys() | new.keys() if old.get(i) != new.get(i)}
    old_images, new_images = records(before), records(after)
    return changed | {i for i in old_images.keys() | new_images.keys()
                      if old_images.get(i) != new_images.get(i)}


@dataclass(frozen=True)
class SavedPerson:
    """What a person's save wrote, taken under the lock from the document it wrote."""

    revision: int  # the image's revision after the save
    file_revision: int
    annotation: dict  # the saved record (part of an immutable snapshot: do not modify)


class AnnotationStore:
    """One split's annotation file, edited in transactions (``with store.edit() as doc``)."""

    def __init__(self, root: str | os.PathLike, split: str):
        self.path = layout.CanonicalLayout(root).annotations(split)
        if not self.path.is_file():
            raise InputError(self.path, "annotation file not found (run `ppp prepare` first)")
        self._snapshot: Snapshot | None = None
        self._held = _Descriptor()  # the file the snapshot was read from, kept open
        weakref.finalize(self, self._held.swap, None)  # closed with the store
        self._cache = threading.Lock()  # guards _snapshot/_held between threads

    # -- reading -----------------------------------------------------------------------
    def _current(self) -> Snapshot:
        """The document as on disk now (call with the file lock held), read again only
        when the file changed since the last read."""
        with self._cache:
            try:
                identity = _identity(os.stat(self.path))
            except OSError as e:
                raise InputError(self.path, f"cannot read ({e.strerror})") from None
            if self._snapshot is None or self._snapshot.identity != identity:
                try:
                    fd = os.open(self.path, os.O_RDONLY)
                except OSError as e:
                    raise InputError(self.path, f"cannot read ({e.strerror})") from None
                try:
                    identity = _identity(os.fstat(fd))
                    with os.fdopen(os.dup(fd), "rb") as f:
                        doc = _parse(f.read(), self.path)
                    self._snapshot = Snapshot.of(doc, identity, self.path)
                except BaseException:
                    os.close(fd)
                    raise
                self._held.swap(fd)
            return self._snapshot

    def close(self) -> None:
        """Let go of the file held open (a store is usable again after this)."""
        with self._cache:
            self._snapshot = None
            self._held.swap(None)

    def read(self) -> dict:
        """The current document (do not modify it; edit through :meth:`edit`)."""
        return self.snapshot().doc

    def snapshot(self) -> Snapshot:
        """The current saved state with its indexes (do not modify it)."""
        with self._lock(shared=True):
            return self._current()

    @property
    def revision(self) -> int:
        """The file's save counter."""
        return self.snapshot().revision

    def annotation(self, annotation_id: int) -> dict:
        """The annotation record with this id from the current document."""
        try:
            return self.snapshot().by_id[annotation_id]
        except KeyError:
            raise InputError(self.path, "no such annotation", record=f"annotation {annotation_id}",
                             field="id") from None

    # -- writing -----------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self, shared: bool = False) -> Iterator[None]:
        """``flock`` of the annotation folder: one writer at a time across processes and
        threads (each call opens its own descriptor, so threads exclude each other too)."""
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _check(self, snapshot: Snapshot, expected: Mapping[int, int]) -> None:
        for image_id, revision in expected.items():
            image = snapshot.images.get(image_id)
            if image is None:
                raise InputError(self.path, "no such image", record=f"image {image_id}")
            if image_revision(image) != revision:
                raise RevisionConflict(self.path, image.get("voc_id", image_id), revision,
                                       image_revision(image))

    def _commit(self, before: Snapshot, doc: dict) -> Snapshot:
        """Save ``doc`` (a changed copy of ``before.doc``, sharing no record that changed)
        as the next revision of the file and of each image it changed; call with the lock
        held. Nothing changed: no write."""
        if doc == before.doc:
            doc[REVISION_KEY] = before.revision
            return before
        changed = changed_images(before.doc, doc)
        doc["images"] = [{**image, REVISION_KEY: image_revision(
            before.images.get(image.get("id"), {})) + 1} if image.get("id") in changed
            else image for image in doc.get("images", [])]
        doc[REVISION_KEY] = before.revision + 1
        atomic.write_json(self.path, doc)
        with self._cache:
            fd = os.open(self.path, os.O_RDONLY)  # ours: nobody writes while we hold the lock
            self._snapshot = Snapshot.of(doc, _identity(os.fstat(fd)), self.path)
            self._held.swap(fd)
        return self._snapshot

    @contextlib.contextmanager
    def edit(self, expected: Mapping[int, int] | None = None) -> Iterator[dict]:
        """Yield a copy of the document to modify in place; on leaving, save it: the file's
        revision and that of every image whose persons changed move on by one.

        ``expected`` maps image ids to the revisions the caller's edit is based on: when
        one of them has moved on, :class:`RevisionConflict` is raised and nothing is
        written. An exception inside the block discards the edit. After the block,
        ``doc["revision"]`` is the file's revision (unchanged when nothing changed).
        """
        with self._lock():
            before = self._current()
            self._check(before, expected or {})
            doc = _copy(before.doc)
            yield doc
            self._commit(before, doc)

    def update_person(self, annotation_id: int, keypoints: np.ndarray,
                      proposals: np.ndarray | None, expected_revision: int | None
                      ) -> SavedPerson:
        """Replace one person's joints and pending proposals, based on revision
        ``expected_revision`` of its image (None: whatever is on disk).

        ``proposals`` is ``(14, 3)`` with ``v = 0`` where nothing is pending, or None for
        none. A proposal is dropped where the joint is labelled: a labelled joint always
        wins.
        """
        where = f"annotation {annotation_id}"
        with self._lock():
            before = self._current()
            ann = before.by_id.get(annotation_id)
            if ann is None:
                raise InputError(self.path, "no such annotation", record=where, field="id")
            image = before.images[ann["image_id"]]
            if expected_revision is not None:
                self._check(before, {image["id"]: expected_revision})
            kp = check_keypoints(keypoints, image["width"], image["height"], where)
            pending = None if proposals is None else check_keypoints(
                proposals, image["width"], image["height"], where, field=PROPOSALS_KEY)
            # copy on write: the new document shares every record but this person's with
            # the saved one, which nobody modifies (a whole copy would cost more than the save)
            changed = dict(ann)
            set_person(changed, kp, pending)
            doc = {**before.doc, "annotations": [changed if a is ann else a
                                                 for a in before.doc["annotations"]]}
            saved = self._commit(before, doc)
            return SavedPerson(revision=image_revision(saved.images[image["id"]]),
                               file_revision=saved.revision,
                               annotation=saved.by_id[annotation_id])

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


class _Descriptor:
    """A file descriptor held open, replaced (and the old one closed) by :meth:`swap`."""

    def __init__(self) -> None:
        self.fd: int | None = None

    def swap(self, fd: int | None) -> None:
        old, self.fd = self.fd, fd
        if old is not None:
            os.close(old)


def _copy(doc: dict) -> dict:
    """A deep copy of a JSON document (pickle: several times faster than copy.deepcopy)."""
    return pickle.loads(pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL))


def _parse(data: bytes, path: Path) -> dict:
    doc = safe_json.loads(data, path)
    if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
        raise InputError(path, "not a canonical annotation file", field="annotations")
    return doc


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
