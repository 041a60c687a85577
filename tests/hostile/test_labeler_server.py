"""The labeler under hostile and careless use: many tabs saving at once, hostile bodies,
cross-origin writes, huge requests.

The lost-save property: every labeler tab edits one person by read-modify-write of a
counter kept in the person's forehead joint (the tab's next value is its last known value
+ 1), exactly as the page does (it adopts the revision of each reply and bases its next
save on it). If no acknowledged save is ever lost, each person's counter on disk equals
the number of saves acknowledged for that person, and each image's revision equals the
number of saves acknowledged on that image: every acknowledged save is on disk or was
followed by one based on it, and every other save was answered with a conflict.

A forced thread switch right after the store's lock is released (the window in which a
reply used to read the revision from a document that another save was already changing:
a writer that saved waits until another one saved) makes the interleavings that lost
saves happen on every run of the former code.
"""

import contextlib
import functools
import http.client
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from werkzeug.serving import make_server

from canonical_fixture import write_canonical_dataset
from pascal_person_pose import schema
from pascal_person_pose.errors import InputError
from pascal_person_pose.label.server import MAX_REQUEST_BYTES, create_app
from pascal_person_pose.label import store as store_module
from pascal_person_pose.label.store import AnnotationStore, RevisionConflict, person_arrays
from test_label_server import running_server

COUNTER_WIDTH = 60  # the counter c sits at forehead (1 + c % 60, 1 + c // 60)
# (voc id, person number) edited by the tabs: two images of val, several persons of each
TARGETS = (("2009_000012", 0), ("2009_000012", 1), ("2010_000005", 0), ("2010_000005", 1))


def encode(keypoints: np.ndarray, counter: int) -> np.ndarray:
    keypoints = keypoints.copy()
    keypoints[0] = (1 + counter % COUNTER_WIDTH, 1 + counter // COUNTER_WIDTH, 2)
    return keypoints


def decode(keypoints) -> int:
    x, y, v = np.asarray(keypoints, np.float64).reshape(schema.NUM_JOINTS, 3)[0]
    return 0 if v == 0 else int(round(x - 1 + COUNTER_WIDTH * (y - 1)))


@pytest.fixture
def switch_after_the_lock(monkeypatch):
    """A writer that saved waits, once it released the store's lock, until another writer
    has saved too (at most 50 ms): its reply is built only after someone else's save, the
    interleaving in which replies used to carry another save's revision."""
    original_lock, original_write = AnnotationStore._lock, store_module.atomic.write_json
    saved = threading.Condition()
    saves = [0]
    mine = threading.local()

    def write_json(*args, **kwargs):
        original_write(*args, **kwargs)
        with saved:
            saves[0] += 1
            mine.save = saves[0]
            saved.notify_all()

    @contextlib.contextmanager
    def switching(self, shared=False):
        mine.save = None
        with original_lock(self, shared):
            yield
        if mine.save is not None:
            with saved:
                saved.wait_for(lambda: saves[0] > mine.save, timeout=0.05)

    monkeypatch.setattr(AnnotationStore, "_lock", switching)
    monkeypatch.setattr(store_module.atomic, "write_json", write_json)


@dataclass
class Tally:
    """What the tabs saw; ``acknowledged`` per (image, annotation), ``revisions`` per image."""

    attempted: int = 0
    conflicts: int = 0
    acknowledged: Counter = field(default_factory=Counter)
    revisions: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, image_id, annotation_id, revision):
        with self.lock:
            self.acknowledged[image_id, annotation_id] += 1
            self.revisions.setdefault(image_id, []).append(revision)


def run_together(functions) -> None:
    """Call each function in its own thread, all at once; return when all are done."""
    threads = [threading.Thread(target=function) for function in functions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def counters(path) -> dict:
    """Each person's counter in the file."""
    return {a["id"]: decode(a["keypoints"]) for a in json.loads(path.read_text())["annotations"]}


def check_nothing_lost(path, before: dict, tally: Tally, expected_untouched: set) -> dict:
    """Compare the file with what the tabs were told (``before``: the counters when they
    started); return the figures."""
    doc = json.loads(path.read_text())
    assert not tally.errors, tally.errors[:3]
    after = counters(path)
    lost = sum(count - (after[aid] - before[aid])
               for (_, aid), count in tally.acknowledged.items())
    images = {im["id"]: im.get("revision", 0) for im in doc["images"]}
    for image_id, revisions in tally.revisions.items():
        # each acknowledged revision was given once, and they are all there is
        assert sorted(revisions) == list(range(1, len(revisions) + 1)), revisions
        assert images[image_id] == len(revisions)
    assert all(images[i] == 0 for i in expected_untouched)
    figures = {"attempted": tally.attempted, "acknowledged": sum(tally.acknowledged.values()),
               "conflicts": tally.conflicts, "lost": lost}
    assert lost == 0, figures
    assert all(after[aid] == before[aid] for aid in after
               if aid not in {aid for _, aid in tally.acknowledged})
    assert figures["acknowledged"] + figures["conflicts"] == figures["attempted"], figures
    return figures


# --------------------------------------------------------------------- threads, the store
def store_tab(stores, annotation_id, saves, tally, rng):
    """One labeler tab on one person, saving through a store (of its own process or not)."""
    store = rng.choice(stores)
    snapshot = store.snapshot()
    image_id = snapshot.by_id[annotation_id]["image_id"]

    def load():
        snap = store.snapshot()
        keypoints, _ = person_arrays(snap.by_id[annotation_id])
        return snap.images[image_id].get("revision", 0), keypoints

    revision, keypoints = load()
    for _ in range(saves):
        counter = decode(keypoints) + 1
        with tally.lock:
            tally.attempted += 1
        try:
            saved = store.update_person(annotation_id, encode(keypoints, counter), None,
                                        revision)
        except RevisionConflict:
            with tally.lock:
                tally.conflicts += 1
            revision, keypoints = load()  # the page reloads the image
            continue
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            tally.errors.append(repr(e))
            return
        tally.ack(image_id, annotation_id, saved.revision)
        revision, keypoints = saved.revision, encode(keypoints, counter)
        time.sleep(rng.uniform(0, 0.002))


@settings(max_examples=4, deadline=None, derandomize=True, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tabs=st.lists(st.integers(0, len(TARGETS) - 1), min_size=4, max_size=10),
       saves=st.integers(10, 25), seed=st.integers(0, 2**16))
def test_concurrent_saves_through_the_store_lose_nothing(tmp_path_factory, switch_after_the_lock,
                                                         tabs, saves, seed):
    root = tmp_path_factory.mktemp("store")
    written = write_canonical_dataset(root)
    stores = [AnnotationStore(root, "val") for _ in range(3)]  # as if in three processes
    rng = random.Random(seed)
    ids = [written["images"][voc]["annotation_ids"][k] for voc, k in TARGETS]
    tally = Tally()
    path = written["annotation_files"]["val"]
    before = counters(path)
    run_together(functools.partial(store_tab, stores, ids[t], saves, tally,
                                   random.Random(rng.random())) for t in tabs)
    figures = check_nothing_lost(path, before, tally,
                                 {written["images"]["2010_000001"]["image_id"]})
    assert figures["acknowledged"] > 0
    print("store threads:", figures)


# ------------------------------------------------------------------- real HTTP, threads
class Tab:
    """One browser tab talking HTTP to the labeler, doing what the page does."""

    def __init__(self, port, index, person):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.index, self.person = index, person
        self.load()

    def request(self, method, path, body=None):
        headers = {"Content-Type": "application/json", "Origin": self.origin}
        self.connection.request(method, path, body=None if body is None else json.dumps(body),
                                headers=headers)
        reply = self.connection.getresponse()
        return reply.status, json.loads(reply.read())

    @property
    def origin(self):
        return f"http://127.0.0.1:{self.connection.port}"

    def load(self):
        status, data = self.request("GET", f"/api/image/{self.index}")
        assert status == 200, data
        record = data["persons"][self.person]
        self.image_id, self.annotation_id = data["image_id"], record["annotation_id"]
        self.revision = data["revision"]
        self.keypoints = np.array(record["keypoints"], np.float64)

    def save(self, tally, times=1):
        for _ in range(times):
            self.save_once(tally)

    def save_once(self, tally):
        counter = decode(self.keypoints) + 1
        keypoints = encode(self.keypoints, counter)
        with tally.lock:
            tally.attempted += 1
        status, reply = self.request("PUT", f"/api/person/{self.annotation_id}", {
            "revision": self.revision, "keypoints": keypoints.ravel().tolist(),
            "proposed": [0] * 42})
        if status == 409:
            with tally.lock:
                tally.conflicts += 1
            self.load()
        elif status == 200:
            tally.ack(self.image_id, self.annotation_id, reply["revision"])
            self.revision, self.keypoints = reply["revision"], keypoints
        else:
            tally.errors.append((status, reply))


@contextlib.contextmanager
def threaded_server(root, split):
    """The labeler's app behind werkzeug's threaded HTTP server, in this process (so the
    lock can be instrumented); yields the port."""
    app = create_app(root, split, trusted_hosts=["127.0.0.1", "localhost"])
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_concurrent_saves_over_http_lose_nothing(tmp_path, switch_after_the_lock):
    written = write_canonical_dataset(tmp_path)
    index = {voc: k for k, voc in enumerate(written["splits"]["val"])}
    rng = random.Random(0)
    targets = [TARGETS[rng.randrange(len(TARGETS))] for _ in range(12)]
    tally = Tally()
    path = written["annotation_files"]["val"]
    before = counters(path)
    with threaded_server(tmp_path, "val") as port:
        tabs = [Tab(port, index[voc], person) for voc, person in targets]
        run_together(functools.partial(tab.save, tally, 15) for tab in tabs)
    figures = check_nothing_lost(path, before, tally,
                                 {written["images"]["2010_000001"]["image_id"]})
    assert figures["conflicts"] > 0 and figures["acknowledged"] >= len(set(targets))
    print("HTTP threads:", figures)


def test_tabs_on_different_images_never_conflict(tmp_path, switch_after_the_lock):
    written = write_canonical_dataset(tmp_path)
    tally = Tally()
    path = written["annotation_files"]["val"]
    before = counters(path)
    with threaded_server(tmp_path, "val") as port:
        tabs = [Tab(port, 0, 0), Tab(port, 2, 0)]  # 2009_000012 and 2010_000005
        run_together(functools.partial(tab.save, tally, 15) for tab in tabs)
    figures = check_nothing_lost(path, before, tally, set())
    assert figures == {"attempted": 30, "acknowledged": 30, "conflicts": 0, "lost": 0}


# --------------------------------------------------------------------- hostile requests
@pytest.fixture
def client(tmp_path):
    write_canonical_dataset(tmp_path)
    return create_app(tmp_path, "val", trusted_hosts=["127.0.0.1", "localhost"]).test_client()


def first_person(client):
    person = client.get("/api/image/0").get_json()["persons"][0]
    return person["annotation_id"], {"revision": 0,
                                     "keypoints": np.ravel(person["keypoints"]).tolist(),
                                     "proposed": np.ravel(person["proposed"]).tolist()}


@pytest.mark.parametrize("body, message", [
    ("[" * 30_000 + "]" * 30_000, "nested 30000 levels deep"),  # 60 KB, within the size limit
    ('{"revision": ' + "7" * 5000 + "}", "integer with 5000 digits"),
    ('{"revision": 0, "keypoints": [' + "9" * 5000 + "], \"proposed\": null}",
     "integer with 5000 digits"),
    ('{"revision": 0, "keypoints": [1e999], "proposed": null}', "42 numbers"),
    ('{"revision": 0, "keypoints": ' + json.dumps([float("nan")] * 42) + ', "proposed": null}',
     "NaN is not a JSON number"),
    ('{"revision": 0, "revision": 1, "keypoints": [], "proposed": null}', "appears twice"),
    ('{"revision": 1.0, "keypoints": [], "proposed": null}', "expected a JSON object"),
    ('{"revision": true, "keypoints": [], "proposed": null}', "expected a JSON object"),
    (b'{"revision": 0, "keypoints": "\xff"}', "not UTF-8"),
])
def test_hostile_bodies_get_a_400_with_one_line(client, tmp_path, body, message):
    path = tmp_path / "annotations" / "person_pose_val.json"
    before = path.read_bytes()
    aid, _ = first_person(client)
    reply = client.put(f"/api/person/{aid}", data=body, content_type="application/json")
    assert reply.status_code == 400, reply.get_data()[:200]
    error = reply.get_json()["error"]
    assert message in error and "\n" not in error and len(error) < 300
    assert path.read_bytes() == before


def test_a_body_over_the_limit_is_refused(tmp_path):
    write_canonical_dataset(tmp_path)
    with threaded_server(tmp_path, "val") as port:
        tab = Tab(port, 0, 0)
        body = {"revision": 0, "keypoints": tab.keypoints.ravel().tolist(), "proposed": None}
        padded = json.dumps({**body, "padding": "x" * MAX_REQUEST_BYTES})
        tab.connection.request("PUT", f"/api/person/{tab.annotation_id}", body=padded,
                               headers={"Content-Type": "application/json"})
        reply = tab.connection.getresponse()
        assert reply.status == 413 and b"\n" not in reply.read().strip()
        tab.connection.close()

        def chunks():  # no Content-Length: the limit holds for a streamed body too
            for _ in range(64):
                yield b" " * 4096

        streamed = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        streamed.request("PUT", f"/api/person/{tab.annotation_id}", body=chunks(),
                         headers={"Content-Type": "application/json"}, encode_chunked=True)
        assert streamed.getresponse().status == 413
        streamed.close()
        status, _ = Tab(port, 0, 0).request("PUT", f"/api/person/{tab.annotation_id}", body)
        assert status == 200


def test_a_200_mb_body_does_not_grow_the_server(tmp_path):
    """A real server process; its peak memory after being sent 200 MB stays small."""
    write_canonical_dataset(tmp_path)
    with running_server(tmp_path, "val", tmp_path / "server.log") as (url, process):
        host, port = url[len("http://"):-1].split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        connection.putrequest("PUT", "/api/person/1")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(200 * 2**20))
        connection.endheaders()
        sent = 0
        with contextlib.suppress(OSError):  # the server answers and closes early
            while sent < 200 * 2**20:
                connection.send(b" " * 2**20)
                sent += 2**20
        reply = connection.getresponse()
        assert reply.status == 413
        status = Path(f"/proc/{process.pid}/status").read_text()
        peak_kib = int(next(line.split()[1] for line in status.splitlines()
                            if line.startswith("VmHWM")))
    assert peak_kib < 400 * 1024, f"server peaked at {peak_kib / 1024:.0f} MiB"


@pytest.mark.parametrize("origin, status", [
    (None, 200),  # not a browser (curl, scripts)
    ("http://localhost", 200),  # the page's own origin (Host below)
    ("http://attacker.example", 403),
    ("null", 403),  # a sandboxed frame or a file:// page
    ("http://localhost:9999", 403),  # another local server
    ("https://localhost", 403),
])
def test_writes_from_another_origin_are_refused(client, tmp_path, origin, status):
    path = tmp_path / "annotations" / "person_pose_val.json"
    before = path.read_bytes()
    aid, body = first_person(client)
    body["keypoints"][2] = 1 if body["keypoints"][2] == 2 else 2
    headers = {"Host": "localhost"} | ({} if origin is None else {"Origin": origin})
    reply = client.put(f"/api/person/{aid}", json=body, headers=headers)
    assert reply.status_code == status, reply.get_json()
    assert (path.read_bytes() == before) == (status != 200)
    if status == 403:
        assert "another origin" in reply.get_json()["error"]
    # reading stays open: a cross-origin page cannot read the reply anyway (no CORS)
    assert client.get("/api/state", headers=headers).status_code == 200


def test_an_annotation_file_nested_too_deep_is_one_line(tmp_path):
    write_canonical_dataset(tmp_path)
    (tmp_path / "annotations" / "person_pose_val.json").write_text("[" * 100_000)
    with pytest.raises(InputError, match="not valid JSON") as error:
        AnnotationStore(tmp_path, "val").read()
    assert "\n" not in str(error.value)
