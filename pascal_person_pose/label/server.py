"""The browser labeler's web server (``ppp label serve``), a small Flask app.

It serves one self-contained page (``static/labeler.html``: inline script and style, no
asset from the network) and a JSON API over one split:

- ``GET /api/state``: the schema (joints, colours, mirror partners, skeleton, parts), the
  images of the split with their person counts, the progress and the file's revision;
- ``GET /api/image/<index>``: one image's persons (joints, pending proposals, mask
  outline, QA flags) and the image's revision;
- ``GET /image/<voc_id>`` (the JPEG) and ``GET /parts/<voc_id>`` (the part map as a
  transparent colour PNG);
- ``PUT /api/person/<annotation_id>``: save one person's joints and pending proposals,
  based on a revision of its image; answers 409 when that image moved on (another tab,
  another process), so the page reloads the image instead of overwriting it. Saves on
  other images never conflict. The revision in the reply is the one this save wrote.

Safety: a VOC id in a URL must be one of the split's images (anything else, ``..`` and
slashes included, is refused before a path is built); the server binds to 127.0.0.1 and
refuses a non-loopback address unless the caller explicitly allows it; while bound to
loopback it answers only requests whose ``Host`` is a loopback name (no DNS rebinding).
A write must come from the labeler's own origin (an ``Origin`` header naming another site
is refused with 403), carry a JSON body (which a cross-site form cannot send) of at most
``MAX_REQUEST_BYTES`` (413 beyond), parsed with limits on nesting and number size (400
with one line, never a 500).
"""

from __future__ import annotations

import io
import ipaddress
import logging
import os
import re
import socket
import threading
from collections import OrderedDict
from importlib import resources
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from flask import Flask, Response, jsonify, request, send_file
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.serving import make_server

from pascal_person_pose import safe_json, schema
from pascal_person_pose.errors import InputError
from pascal_person_pose.label import qa
from pascal_person_pose.label.store import (PROPOSALS_KEY, AnnotationStore, RevisionConflict,
                                            image_revision, person_arrays)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
_VOC_ID = re.compile(r"^\d{4}_\d{6}$")
_LOOPBACK_NAMES = ("127.0.0.1", "localhost")
MAX_REQUEST_BYTES = 64 * 1024  # bodies this large or larger are refused (a save is ~2 KiB)
_SAMPLE_CACHE = 8  # images whose pixel maps stay decoded (the current one and its neighbours)
_CSP = ("default-src 'none'; img-src 'self' data:; connect-src 'self'; script-src 'unsafe-inline'; "
        "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) resolves to loopback addresses only."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def person_done(ann: dict) -> bool:
    """A person is done when it has a labelled joint and no proposal waits for confirmation."""
    return ann.get("num_keypoints", 0) > 0 and PROPOSALS_KEY not in ann


class LabelSession:
    """The server-side state of one labelling session: the split, its store, QA statistics."""

    def __init__(self, root: str | os.PathLike, split: str):
        from pascal_person_pose.dataset import Dataset

        self.dataset = Dataset(root, split)
        self.store = AnnotationStore(root, split)
        self.split = split
        self.params = qa.QAParams()
        doc = self.store.read()
        poses = np.array([a["keypoints"] for a in doc["annotations"]], np.float32)
        self.stats = qa.BoneStats.fit(poses.reshape(-1, schema.NUM_JOINTS, 3), self.params)
        self._samples: OrderedDict = OrderedDict()
        self._samples_lock = threading.Lock()  # the server answers requests in threads
        self._index_of_image = {im["id"]: k for k, im in enumerate(self.dataset.images)}

    def sample(self, index: int):
        """A cached ``Sample`` (its part, instance and mask arrays decode once)."""
        with self._samples_lock:
            if index in self._samples:
                self._samples.move_to_end(index)
            else:
                self._samples[index] = self.dataset[index]
                while len(self._samples) > _SAMPLE_CACHE:
                    self._samples.popitem(last=False)
            return self._samples[index]

    def progress(self, doc: dict) -> dict:
        done = sum(person_done(a) for a in doc["annotations"])
        return {"done": done, "total": len(doc["annotations"])}

    def state(self) -> dict:
        doc = self.store.read()
        persons = np.zeros(len(self.dataset), np.int64)
        done = np.zeros(len(self.dataset), np.int64)
        for ann in doc["annotations"]:
            k = self._index_of_image[ann["image_id"]]
            persons[k] += 1
            done[k] += person_done(ann)
        return {
            "split": self.split,
            "revision": int(doc.get("revision", 0)),
            "progress": self.progress(doc),
            "images": [{"voc_id": im["voc_id"], "width": im["width"], "height": im["height"],
                        "persons": int(persons[k]), "done": int(done[k])}
                       for k, im in enumerate(self.dataset.images)],
            "schema": {
                "joints": [{"name": j.name, "colour": list(j.colour)} for j in schema.JOINTS],
                "flip": schema.FLIP_INDEX.tolist(),
                "skeleton": [list(e) for e in schema.SKELETON_INDEX],
                "parts": [{"name": p.name, "colour": list(p.colour)} for p in schema.PARTS],
            },
        }

    def person(self, index: int, k: int, ann: dict) -> dict:
        """One person's record for the page: joints, proposals, outline, QA flags."""
        sample = self.sample(index)
        person = sample.persons[k]
        keypoints, proposed = person_arrays(ann)
        flags = qa.check_person(keypoints, proposed, sample.part_map, sample.instance_map,
                                person.instance, sample.masks[k], person.bbox, self.stats,
                                qa.PersonRef(sample.voc_id, sample.image_id, person.annotation_id),
                                sample.pose_annotated, self.params, sample.fine_part_map)
        contours, _ = cv2.findContours(sample.masks[k].astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        return {
            "annotation_id": person.annotation_id,
            "instance": person.instance,
            "keypoints": keypoints.tolist(),
            "proposed": proposed.tolist(),
            "bbox": person.bbox.tolist(),
            "outline": [c.reshape(-1, 2).tolist() for c in contours],
            "flags": [f.to_dict() for f in qa.sort_flags(flags)],
        }

    def image(self, index: int) -> dict:
        if not 0 <= index < len(self.dataset):
            raise KeyError(index)
        snapshot = self.store.snapshot()
        sample = self.sample(index)
        records = {a["id"]: a for a in snapshot.doc["annotations"]
                   if a["image_id"] == sample.image_id}
        return {
            "index": index, "voc_id": sample.voc_id, "image_id": sample.image_id,
            "width": sample.width, "height": sample.height,
            "pose_annotated": sample.pose_annotated,
            "revision": image_revision(snapshot.images[sample.image_id]),
            "persons": [self.person(index, k, records[p.annotation_id])
                        for k, p in enumerate(sample.persons)],
        }

    def save(self, annotation_id: int, keypoints, proposed, revision: int) -> dict:
        """Save one person; the reply's revision and person are those this save wrote."""
        saved = self.store.update_person(annotation_id, keypoints, proposed, revision)
        index = self._index_of_image[saved.annotation["image_id"]]
        k = [p.annotation_id for p in self.sample(index).persons].index(annotation_id)
        return {"revision": saved.revision, "file_revision": saved.file_revision,
                "person": self.person(index, k, saved.annotation),
                "progress": self.progress(self.store.read())}

    def parts_png(self, index: int) -> bytes:
        """The part map as RGBA: part colours, background transparent, ignore in cream."""
        from PIL import Image

        part_map = self.sample(index).part_map
        palette = np.zeros((256, 4), np.uint8)
        palette[:schema.NUM_PARTS, :3] = schema.PART_COLOURS
        palette[1:schema.NUM_PARTS, 3] = 255
        palette[schema.IGNORE_LABEL] = (*schema.voc_palette()[3 * 255:3 * 256], 255)
        buffer = io.BytesIO()
        Image.fromarray(palette[part_map], mode="RGBA").save(buffer, format="PNG")
        return buffer.getvalue()


class _Refused(Exception):
    """A request refused with an HTTP status and a one-line reason."""

    def __init__(self, status: int, message: str):
        self.status, self.message = status, message
        super().__init__(message)


def create_app(root: str | os.PathLike, split: str, trusted_hosts: list[str] | None = None):
    """The Flask app of one split. ``trusted_hosts``: the ``Host`` names to answer (None:
    any, for a server the user explicitly exposed).

    A relative ``root`` is taken against the working directory now, once: Flask would take
    a relative file path against the package folder."""
    session = LabelSession(Path(root).absolute(), split)
    app = Flask(__name__, static_folder=None)
    app.config["TRUSTED_HOSTS"] = trusted_hosts
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.json.sort_keys = False
    page = resources.files("pascal_person_pose.label").joinpath("static/labeler.html")

    def image_index(voc_id: str) -> int:
        """The split's index of ``voc_id``; anything that is not one of its ids is refused."""
        if not _VOC_ID.fullmatch(voc_id):
            raise _Refused(400, f"refused: {voc_id!r} is not a VOC image id")
        try:
            return session.dataset.index_of(voc_id)
        except InputError:
            raise _Refused(404, f"no image {voc_id} in the {split} split") from None

    def json_body():
        """The request body as JSON, within the size limit (413) and the parser's limits."""
        data = request.get_data(cache=False)  # 413 when Content-Length is over the limit
        if len(data) >= MAX_REQUEST_BYTES:  # a streamed body is cut at the limit: refuse it
            raise RequestEntityTooLarge()
        return safe_json.loads(data, "request body")  # an InputError is a 400

    @app.errorhandler(_Refused)
    def refused(error: _Refused):
        return jsonify(error=error.message), error.status

    @app.errorhandler(InputError)
    def bad_input(error: InputError):
        return jsonify(error=str(error)), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return jsonify(error=f"{error.name.lower()}: {error.description}"), error.code

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/")
    def index():
        return Response(page.read_bytes(), mimetype="text/html")

    @app.get("/api/state")
    def state():
        return jsonify(session.state())

    @app.get("/api/image/<int:index>")
    def image(index: int):
        try:
            return jsonify(session.image(index))
        except KeyError:
            raise _Refused(404, f"no image number {index} in the {split} split") from None

    @app.get("/image/<voc_id>")
    def image_file(voc_id: str):
        image_index(voc_id)
        return send_file(session.dataset.layout.image(voc_id), mimetype="image/jpeg")

    @app.get("/parts/<voc_id>")
    def parts_file(voc_id: str):
        return Response(session.parts_png(image_index(voc_id)), mimetype="image/png")

    @app.before_request
    def same_origin_writes():
        """A browser names the page that sends a write in ``Origin``: only ours may."""
        origin = request.headers.get("Origin")
        if request.method not in ("GET", "HEAD", "OPTIONS") and origin is not None \
                and origin != f"{request.scheme}://{request.host}":
            raise _Refused(403, f"refused: a write from another origin ({origin[:80]!r})")

    @app.put("/api/person/<int:annotation_id>")
    def save(annotation_id: int):
        if request.mimetype != "application/json":
            raise _Refused(415, "expected Content-Type: application/json")
        body = json_body()
        if not isinstance(body, dict) or type(body.get("revision")) is not int:
            raise _Refused(400, "expected a JSON object with revision, keypoints, proposed")
        try:
            return jsonify(session.save(annotation_id, body.get("keypoints"),
                                        body.get("proposed"), body["revision"]))
        except RevisionConflict as conflict:
            return jsonify(error=str(conflict), revision=conflict.current), 409

    return app


def serve(root: str | os.PathLike, split: str, host: str = DEFAULT_HOST,
          port: int = DEFAULT_PORT, allow_remote: bool = False,
          announce: Callable[[str], None] = print) -> None:
    """Run the labeler until interrupted. A non-loopback ``host`` needs ``allow_remote``
    (the CLI sets it only when ``--host`` was given on the command line); ``port`` 0 picks
    a free port. ``announce`` receives the URL once the socket is bound."""
    loopback = is_loopback(host)
    if not loopback and not allow_remote:
        raise InputError(None, f"refusing to serve on {host!r}, which is not a loopback "
                               "address: anyone on that network could edit the annotations; "
                               "pass --host explicitly to do it anyway")
    app = create_app(root, split, trusted_hosts=[*_LOOPBACK_NAMES, host] if loopback else None)
    AnnotationStore(root, split).remove_stale_temp_files()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = make_server(host, port, app, threaded=True)
    announce(f"labelling {split} of {root} at http://{host}:{server.server_port}/ "
             "(Ctrl+C to stop)")
    try:
        server.serve_forever()
    finally:
        server.server_close()
