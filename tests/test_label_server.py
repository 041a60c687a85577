"""The labeler's server: API, revisions, refusals (paths, hosts, binding), crash safety.

:func:`running_server` starts ``ppp label serve`` as a real process on a free port; the
browser tests use it too.
"""

import contextlib
import http.client
import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from click.testing import CliRunner

from canonical_fixture import write_canonical_dataset
from pascal_person_pose import atomic, schema
from pascal_person_pose.cli import main
from pascal_person_pose.errors import InputError
from pascal_person_pose.label import server as server_module
from pascal_person_pose.label.server import create_app, is_loopback, serve

_START_TIMEOUT = 60  # seconds for a server process to announce its URL (2 shared cores)


@contextlib.contextmanager
def running_server(root, split, log_path, cwd=None):
    """``ppp label serve ROOT --split SPLIT --port 0`` in a child process (working in
    ``cwd``); yields (base URL, process). The process is always killed and reaped on
    leaving."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", "from pascal_person_pose.cli import main; main()", "label",
             "serve", str(root), "--split", split, "--port", "0"],
            stdout=subprocess.PIPE, stderr=log, text=True, cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        ready, _, _ = select.select([process.stdout], [], [], _START_TIMEOUT)
        line = process.stdout.readline() if ready else ""
        match = re.search(r"http://[\d.]+:\d+/", line)
        if match is None:
            raise RuntimeError(f"server did not start: {line!r}; log: {log_path.read_text()}")
        yield match.group(0), process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        process.stdout.close()


@pytest.fixture
def written(tmp_path):
    return write_canonical_dataset(tmp_path)


@pytest.fixture
def client(written, tmp_path):
    return create_app(tmp_path, "val", trusted_hosts=["127.0.0.1", "localhost"]).test_client()


def person_body(person, revision, **joints):
    keypoints = np.array(person["keypoints"])
    for name, value in joints.items():
        keypoints[schema.JOINT_NAMES.index(name)] = value
    return {"revision": revision, "keypoints": keypoints.ravel().tolist(),
            "proposed": np.array(person["proposed"]).ravel().tolist()}


def test_state_lists_images_progress_and_schema(client, written):
    state = client.get("/api/state").get_json()
    assert [im["voc_id"] for im in state["images"]] == written["splits"]["val"]
    assert state["progress"] == {"done": 3, "total": 5}  # the pose-less image's 2 persons
    assert [j["name"] for j in state["schema"]["joints"]] == list(schema.JOINT_NAMES)
    assert state["schema"]["flip"] == schema.FLIP_INDEX.tolist()
    assert state["revision"] == 0


def test_image_gives_persons_with_outline_and_flags(client, written):
    data = client.get("/api/image/0").get_json()
    record = written["images"]["2009_000012"]
    assert [p["annotation_id"] for p in data["persons"]] == record["annotation_ids"]
    np.testing.assert_array_equal(np.array(data["persons"][0]["keypoints"], np.float32),
                                  record["keypoints"][0])
    assert all(len(p["outline"]) >= 1 for p in data["persons"])
    assert [f["check"] for f in data["persons"][1]["flags"]] == ["missing_joint"]


def test_a_save_bumps_the_revision_and_a_stale_one_is_refused(client, written):
    person = client.get("/api/image/0").get_json()["persons"][0]
    aid = person["annotation_id"]
    reply = client.put(f"/api/person/{aid}", json=person_body(person, 0, r_elbow=(20, 30, 1)))
    assert reply.status_code == 200 and reply.get_json()["revision"] == 1
    assert reply.get_json()["person"]["keypoints"][3] == [20, 30, 1]
    stale = client.put(f"/api/person/{aid}", json=person_body(person, 0, r_elbow=(5, 5, 2)))
    assert stale.status_code == 409
    assert "reload" in stale.get_json()["error"] and stale.get_json()["revision"] == 1
    doc = json.loads(written["annotation_files"]["val"].read_text())
    assert doc["revision"] == 1
    ann = next(a for a in doc["annotations"] if a["id"] == aid)
    assert ann["keypoints"][9:12] == [20, 30, 1]


@pytest.mark.parametrize("body, message", [
    ("not json", "expected Content-Type: application/json"),
    ({"keypoints": [0] * 42, "proposed": [0] * 42}, "expected a JSON object"),
    ({"revision": 0, "keypoints": [0] * 41, "proposed": [0] * 42}, "42 numbers"),
    ({"revision": 0, "keypoints": [3] * 42, "proposed": None}, "visibility 0, 1 or 2"),
])
def test_bad_save_bodies_are_refused(client, body, message):
    aid = client.get("/api/image/0").get_json()["persons"][0]["annotation_id"]
    if isinstance(body, str):
        reply = client.put(f"/api/person/{aid}", data=body, content_type="text/plain")
    else:
        reply = client.put(f"/api/person/{aid}", json=body)
    assert reply.status_code == (415 if isinstance(body, str) else 400)
    assert message in reply.get_json()["error"]


@pytest.mark.parametrize("path", [
    "/image/..", "/image/.%2e", "/image/..%2f..%2fannotations%2fperson_pose_val.json",
    "/image/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/parts/..%5c..%5cwin.ini",
    "/image/2009_000012.jpg", "/image/2009_000012%00", "/image/2009_000012/../../etc/passwd",
    "/parts/....//....//etc/passwd", "/image/2008_000003",  # an image of the other split
    "/static/../annotations/person_pose_val.json", "/annotations/person_pose_val.json",
    "/api/image/..%2f0", "/api/image/-1", "/api/image/99", "//etc/passwd",
])
def test_path_traversal_and_foreign_ids_are_refused(client, path):
    reply = client.get(path)
    assert reply.status_code in (400, 404)
    assert reply.mimetype == "application/json" and "error" in reply.get_json()


def test_the_image_and_its_part_map_are_served_for_split_ids(client):
    with client.get("/image/2009_000012") as image:
        assert image.status_code == 200 and image.mimetype == "image/jpeg"
    parts = client.get("/parts/2009_000012")
    assert parts.status_code == 200 and parts.data.startswith(b"\x89PNG")
    assert client.get("/image/..").get_json()["error"].startswith("refused")


def test_foreign_host_headers_are_refused(client):
    assert client.get("/api/state", headers={"Host": "127.0.0.1:8765"}).status_code == 200
    assert client.get("/api/state", headers={"Host": "attacker.example"}).status_code == 400


def test_the_page_is_self_contained(client):
    reply = client.get("/")
    page = reply.get_data(as_text=True)
    assert reply.status_code == 200 and "<canvas" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page)
    assert "default-src 'none'" in reply.headers["Content-Security-Policy"]


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.7")
    assert not is_loopback("no-such-host.invalid")


class _FakeServer:
    """Stands in for werkzeug's server: records where it was asked to bind."""

    bound: list = []

    def __init__(self, host, port, app, threaded):
        self.server_port = port or 5555
        _FakeServer.bound.append(host)

    def serve_forever(self):
        return None

    def server_close(self):
        return None


def test_a_non_loopback_address_needs_an_explicit_host(written, tmp_path, monkeypatch):
    with pytest.raises(InputError, match="refusing to serve on '0.0.0.0'"):
        serve(tmp_path, "val", host="0.0.0.0")
    monkeypatch.setattr(server_module, "make_server", _FakeServer)
    runner = CliRunner()
    from_env = runner.invoke(main, ["label", "serve", str(tmp_path), "--split", "val"],
                             env={"PPP_LABEL_HOST": "0.0.0.0"})
    assert from_env.exit_code == 2 and from_env.output.count("\n") == 1
    assert "not a loopback address" in from_env.output
    explicit = runner.invoke(main, ["label", "serve", str(tmp_path), "--split", "val",
                                    "--host", "0.0.0.0", "--port", "0"])
    assert explicit.exit_code == 0, explicit.output
    default = runner.invoke(main, ["label", "serve", str(tmp_path), "--split", "val"])
    assert default.exit_code == 0 and "http://127.0.0.1:8765/" in default.output
    assert _FakeServer.bound[-2:] == ["0.0.0.0", "127.0.0.1"]


def test_killing_the_server_mid_save_leaves_the_old_or_the_new_revision(written, tmp_path):
    """SIGKILL while saves are in flight, again and again: the file always parses and holds
    the last acknowledged revision or the one being written, with that save's data."""
    path = written["annotation_files"]["val"]
    doc = json.loads(path.read_text())
    doc["padding"] = "x" * 3_000_000  # every save rewrites ~3 MB: kills land mid-write
    atomic.write_json(path, doc)
    aid = doc["annotations"][0]["id"]
    base = np.array(doc["annotations"][0]["keypoints"]).reshape(14, 3)
    rng = random.Random(0)

    def payload(revision):
        """The data the save based on ``revision`` writes: the forehead moves with it."""
        keypoints = base.copy()
        keypoints[0, :2] = (5 + revision % 80, 5 + revision // 80 % 60)
        return {"revision": revision, "keypoints": keypoints.ravel().tolist(),
                "proposed": [0] * 42}

    revision = 0
    for round_ in range(4):
        acknowledged = [revision]
        with running_server(tmp_path, "val", tmp_path / "server.log") as (url, process):
            def saver():
                while True:
                    request = urllib.request.Request(
                        f"{url}api/person/{aid}", method="PUT",
                        data=json.dumps(payload(acknowledged[-1])).encode(),
                        headers={"Content-Type": "application/json"})
                    try:
                        with urllib.request.urlopen(request, timeout=10) as reply:
                            acknowledged.append(json.load(reply)["revision"])
                    except (urllib.error.URLError, http.client.HTTPException, OSError):
                        return

            thread = threading.Thread(target=saver)
            thread.start()
            deadline = time.monotonic() + 120  # a first save acknowledged, however loaded
            while len(acknowledged) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.7))
            process.send_signal(signal.SIGKILL)
            thread.join(timeout=30)
        on_disk = json.loads(path.read_text())  # always parses
        revision = on_disk["revision"]
        assert revision in (acknowledged[-1], acknowledged[-1] + 1), (round_, acknowledged)
        assert len(acknowledged) > 1  # saves were really in flight
        ann = next(a for a in on_disk["annotations"] if a["id"] == aid)
        assert ann["keypoints"][:2] == payload(revision - 1)["keypoints"][:2]
        assert on_disk["padding"] == doc["padding"]
