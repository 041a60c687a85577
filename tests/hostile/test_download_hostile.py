"""Downloads that finish or say why: no length means the archive proves itself whole; a
trickling server is given up; hand-edited state and manifests, and files in the way of
folders, are one line."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import assert_one_error_line, run_ppp
from pascal_person_pose.download import (STATE_FILE, FetchError, download, fetch,
                                         prove_complete)
from pascal_person_pose.errors import InputError
from pascal_person_pose.limits import DownloadLimits

FILES = {f"stuff/{k}.bin": bytes([k]) * (3000 + 512 * k) for k in range(3)}


def _tar(mode: str = "w") -> tuple[bytes, int]:
    """The archive, and the offset where the last member's header starts."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tf:
        for name, data in FILES.items():
            boundary = tf.offset
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue(), boundary


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in FILES.items():
            zf.writestr(name, data)
    return buffer.getvalue()


PLAIN_TAR, MEMBER_BOUNDARY = _tar()
GZ_TAR = _tar("w:gz")[0]
ZIP = _zip()


class Server:
    """Answers 200 without Content-Length. ``cut``: per response, the offset in the body
    where it stops and closes (None: the end); ``trickle``: seconds between single bytes.
    A Range request gets a 206 from there on (no length either)."""

    def __init__(self, body: bytes, cut: list[int | None], trickle: float | None = None):
        self.body, self.cut, self.trickle = body, list(cut), trickle
        self.sent: list[int] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(server.body) - 1}/*")
                else:
                    self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                cut = server.cut.pop(0) if server.cut else None
                payload = server.body[start:cut]
                sent = 0
                try:
                    if server.trickle is None:
                        self.wfile.write(payload)
                        sent = len(payload)
                    else:
                        for byte in payload:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            sent += 1
                            time.sleep(server.trickle)
                except OSError:  # the client gave up
                    pass
                server.sent.append(sent)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/archive"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(*args, **kwargs) -> Server:
        servers.append(Server(*args, **kwargs))
        return servers[-1]
    yield start
    for s in servers:
        s.close()


def _manifest(tmp_path: Path, url: str, filename: str, fmt: str, **extra) -> Path:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"sources": {"stuff": {
        "title": "stuff", "url": url, "filename": filename, "format": fmt,
        "provides": "stuff", **extra}}}))
    return path


QUICK = DownloadLimits(timeout=60, min_rate=1, window=5)


@pytest.mark.parametrize("body, cut, name, fmt", [
    (PLAIN_TAR, MEMBER_BOUNDARY, "a.tar", "tar"),  # tarfile lists this without complaint
    (GZ_TAR, len(GZ_TAR) - 4, "a.tar.gz", "tar"),  # all but the gzip trailer's length
    (ZIP, len(ZIP) - 30, "a.zip", "zip"),
], ids=["tar-at-a-member-boundary", "gzip-without-trailer", "zip-without-its-end"])
def test_a_server_closing_early_without_a_length_is_never_taken_as_complete(
        serve, tmp_path, body, cut, name, fmt):
    server = serve(body, [cut] * 10)
    raw = tmp_path / "raw"
    report = download(raw, manifest=_manifest(tmp_path, server.url, name, fmt), retries=2,
                      limits=QUICK, progress=False)
    assert report.results[0].status == "manual"
    assert "transfer ended early, without a length" in report.results[0].message
    assert not (raw / "archives" / name).exists() and not (raw / "stuff").exists()
    assert not (raw / STATE_FILE).exists()  # nothing extracted, nothing trusted
    assert (raw / "archives" / f"{name}.part").stat().st_size > 0  # kept for a resume


@pytest.mark.parametrize("body, cut, name, fmt", [
    (PLAIN_TAR, MEMBER_BOUNDARY, "a.tar", "tar"), (GZ_TAR, 100, "a.tar.gz", "tar"),
    (ZIP, 100, "a.zip", "zip")], ids=["tar", "tar.gz", "zip"])
def test_a_cut_transfer_without_a_length_is_resumed_until_the_archive_is_whole(
        serve, tmp_path, body, cut, name, fmt):
    server = serve(body, [cut])
    raw = tmp_path / "raw"
    report = download(raw, manifest=_manifest(tmp_path, server.url, name, fmt),
                      limits=QUICK, progress=False)
    assert report.results[0].status == "downloaded", report.results[0].message
    assert {f"stuff/{p.name}": p.read_bytes() for p in (raw / "stuff").iterdir()} == FILES
    assert server.sent == [cut, len(body) - cut]


def test_a_trickling_server_is_given_up(serve, tmp_path):
    server = serve(GZ_TAR, [None] * 5, trickle=0.05)  # 20 bytes/s: about 200 s in all
    limits = DownloadLimits(timeout=120, min_rate=200, window=1)
    start = time.monotonic()
    with pytest.raises(FetchError, match=r"below the minimum rate of 200 bytes/s"):
        fetch(server.url, tmp_path / "a.tar.gz", limits=limits, progress=False, fmt="tar")
    elapsed = time.monotonic() - start
    time.sleep(0.2)  # let the server notice the closed connection
    print(f"trickling server refused after {elapsed:.2f} s (window {limits.window:g} s)")
    assert len(server.sent) == 1 and server.sent[0] < len(GZ_TAR) / 4  # not retried, cut short


def test_the_overall_timeout_bounds_a_steady_slow_transfer(serve, tmp_path):
    server = serve(PLAIN_TAR, [None] * 5, trickle=0.001)  # fine for the rate, not the time
    limits = DownloadLimits(timeout=0.5, min_rate=1, window=5)
    with pytest.raises(FetchError, match=r"the overall limit of 0.5 s ran out"):
        fetch(server.url, tmp_path / "a.tar", limits=limits, progress=False, fmt="tar")
    assert not (tmp_path / "a.tar").exists()


def test_a_malformed_content_length_is_not_a_crash(tmp_path):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "lots")
            self.end_headers()
            self.wfile.write(GZ_TAR)
            self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        fetch(f"http://127.0.0.1:{httpd.server_address[1]}/a", tmp_path / "a.tar.gz",
              limits=QUICK, progress=False, fmt="tar")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert (tmp_path / "a.tar.gz").read_bytes() == GZ_TAR


def test_an_archive_placed_by_hand_must_be_whole_before_it_is_trusted(tmp_path):
    raw = tmp_path / "raw"
    (raw / "archives").mkdir(parents=True)
    (raw / "archives" / "a.tar").write_bytes(PLAIN_TAR[:MEMBER_BOUNDARY])
    manifest = _manifest(tmp_path, "http://127.0.0.1:9/none", "a.tar", "tar")
    with pytest.raises(InputError, match=r"no end-of-archive block after the last "
                                         r"member\); moved aside"):
        download(raw, manifest=manifest, progress=False)
    assert not (raw / "stuff").exists() and not (raw / STATE_FILE).exists()
    assert (raw / "archives" / "a.tar.corrupt").exists()


@pytest.mark.parametrize("name, body", [("t.tar", PLAIN_TAR), ("t.tgz", GZ_TAR),
                                        ("t.zip", ZIP)])
def test_whole_archives_prove_complete(tmp_path, name, body):
    (tmp_path / name).write_bytes(body)
    prove_complete(tmp_path / name, "zip" if name.endswith(".zip") else "tar")


@pytest.mark.parametrize("state, expected", [
    ("{", "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "nested 100000 levels deep"),
    ("[]", 'must be {"archives"'),
    ('{"archives": {}, "sources": {}, "extra": 1}', 'must be {"archives"'),
    ('{"archives": {"a.tar": 5}, "sources": {}}', "record archives/a.tar"),
    ('{"archives": {"a.tar": {"sha256": "xyz", "size": 1}}, "sources": {}}',
     "64 hex digits"),
    ('{"archives": {}, "sources": {"stuff": "half"}}', "record sources/stuff"),
])
def test_a_hand_edited_state_file_is_one_line(tmp_path, state, expected):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / STATE_FILE).write_text(state)
    manifest = _manifest(tmp_path, "http://127.0.0.1:9/none", "a.tar", "tar")
    line = assert_one_error_line(run_ppp("download", raw, "--manifest", manifest), expected)
    assert STATE_FILE in line and "Traceback" not in line


@pytest.mark.parametrize("entry, expected", [
    ({"size": "big"}, "field size: must be a non-negative integer"),
    ({"mirrors": "http://x"}, "field mirrors: must be a list of strings"),
    ({"checksum": "x"}, "field checksum: unknown field"),
])
def test_a_hand_edited_manifest_is_one_line(tmp_path, entry, expected):
    manifest = _manifest(tmp_path, "http://127.0.0.1:9/none", "a.tar", "tar", **entry)
    assert_one_error_line(run_ppp("download", tmp_path / "raw", "--manifest", manifest),
                          "record stuff", expected)


def test_a_file_where_a_folder_belongs_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    assert_one_error_line(run_ppp("download", tmp_path / "file"), "is a file")
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "archives").write_text("x")
    manifest = _manifest(tmp_path, "http://127.0.0.1:9/none", "a.tar", "tar")
    assert_one_error_line(run_ppp("download", raw, "--manifest", manifest),
                          "archives: exists and is not a folder")
