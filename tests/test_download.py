"""`ppp download` against a local HTTP server (127.0.0.1, Range support) serving fixture
archives written by the tests: resume, checksums, safe extraction, mirrors, manual steps."""

from __future__ import annotations

import hashlib
import io
import json
import random
import socket
import stat
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from pascal_person_pose import layout
from pascal_person_pose.cli import main
from pascal_person_pose.download import (MANIFEST_PATH, STATE_FILE, download, fetch,
                                         load_manifest, safe_extract)
from pascal_person_pose.errors import InputError


class _Server:
    """Serves ``files`` (URL path -> bytes) with Range support; ``cut`` (path -> bytes)
    makes the first response of a path stop after that many body bytes; ``ignore_range``
    answers every request with the whole file (200)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and not server.ignore_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if self.path in server.cut:
                    payload = payload[:server.cut.pop(self.path)]
                    self.close_connection = True
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture
def closed_url():
    """A URL on a port nobody listens on: the connection is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/gone.tar.gz"


def _tar(members: list[tuple[str, bytes | None, dict]]) -> bytes:
    """A .tar.gz of (name, data or None for a dir/link, TarInfo attributes) members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, data, attrs in members:
            info = tarfile.TarInfo(name)
            for key, value in attrs.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _zip(members: list[tuple[str, bytes, int | None]]) -> bytes:
    """A zip of (name, data, unix mode or None) members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, data)
    return buffer.getvalue()


# A PASCAL-Part-like archive: Annotations_Part plus files that must not be extracted.
PART_FILES = {f"Annotations_Part/2008_00000{i}.mat": random.Random(i).randbytes(3000 + i)
              for i in range(4)}
PART_TAR = _tar([(n, d, {}) for n, d in PART_FILES.items()]
                + [("demo.m", b"% demo", {}), ("examples/2008_000001.jpg", b"jpg", {})])
PERSON_PART_ZIP = _zip([("pascal_person_part/pascal_person_part_gt/2008_000001.png", b"png",
                         None),
                        ("pascal_person_part/pascal_person_part_trainval_list/train_id.txt",
                         b"2008_000001\n", None),
                        ("__MACOSX/._junk", b"junk", None)])


def _manifest(path: Path, sources: dict) -> Path:
    path.write_text(json.dumps({"version": 1, "sources": sources}))
    return path


def _part_source(url: str, mirrors=(), **extra) -> dict:
    return {"title": "parts", "url": url, "mirrors": list(mirrors), "filename": "trainval.tar.gz",
            "format": "tar", "extract_to": ".", "members": ["Annotations_Part/"],
            "provides": "Annotations_Part", **extra}


def _person_part_source(url: str, **extra) -> dict:
    return {"title": "person part", "url": url, "filename": "pascal_person_part.zip",
            "format": "zip", "members": ["pascal_person_part/"],
            "provides": "pascal_person_part", **extra}


def _assert_parts_extracted(raw: Path) -> None:
    got = {str(p.relative_to(raw)): p.read_bytes()
           for p in (raw / "Annotations_Part").iterdir()}
    assert got == PART_FILES
    assert not (raw / "demo.m").exists() and not (raw / "examples").exists()


def test_cut_transfer_is_resumed_with_a_range_request(server, tmp_path):
    server.files["/part/trainval.tar.gz"] = PART_TAR
    server.cut["/part/trainval.tar.gz"] = 1000
    manifest = _manifest(tmp_path / "m.json", {"pascal_part": _part_source(
        server.url + "/part/trainval.tar.gz")})
    raw = tmp_path / "raw"
    report = download(raw, manifest=manifest, progress=False)
    assert [(r.name, r.status) for r in report.results] == [("pascal_part", "downloaded")]
    assert server.requests == [("/part/trainval.tar.gz", None),
                               ("/part/trainval.tar.gz", "bytes=1000-")]
    _assert_parts_extracted(raw)
    state = json.loads((raw / STATE_FILE).read_text())
    assert state["archives"]["trainval.tar.gz"]["sha256"] == hashlib.sha256(PART_TAR).hexdigest()
    assert state["sources"] == {"pascal_part": "done"}
    # Done is done: a second run makes no request.
    assert download(raw, manifest=manifest, progress=False).results[0].status == "present"
    assert len(server.requests) == 2


def test_part_file_of_an_earlier_run_is_resumed(server, tmp_path):
    server.files["/x.tar.gz"] = PART_TAR
    dest = tmp_path / "x.tar.gz"
    (tmp_path / "x.tar.gz.part").write_bytes(PART_TAR[:700])
    fetch(server.url + "/x.tar.gz", dest, progress=False)
    assert dest.read_bytes() == PART_TAR and not (tmp_path / "x.tar.gz.part").exists()
    assert server.requests == [("/x.tar.gz", "bytes=700-")]


def test_complete_part_file_is_accepted_on_416(server, tmp_path):
    server.files["/x.tar.gz"] = PART_TAR
    (tmp_path / "x.tar.gz.part").write_bytes(PART_TAR)
    fetch(server.url + "/x.tar.gz", tmp_path / "x.tar.gz", progress=False)
    assert (tmp_path / "x.tar.gz").read_bytes() == PART_TAR


def test_server_ignoring_range_restarts_the_file(server, tmp_path):
    server.files["/x.tar.gz"] = PART_TAR
    server.ignore_range = True
    (tmp_path / "x.tar.gz.part").write_bytes(b"garbage that must not stay in front")
    fetch(server.url + "/x.tar.gz", tmp_path / "x.tar.gz", progress=False)
    assert (tmp_path / "x.tar.gz").read_bytes() == PART_TAR


def test_corrupt_archive_is_refused_and_moved_aside(server, tmp_path):
    server.files["/trainval.tar.gz"] = PART_TAR
    manifest = _manifest(tmp_path / "m.json", {"pascal_part": _part_source(
        server.url + "/trainval.tar.gz", md5="0" * 32)})
    raw = tmp_path / "raw"
    with pytest.raises(InputError) as error:
        download(raw, manifest=manifest, progress=False)
    archive = raw / "archives" / "trainval.tar.gz"
    assert error.value.file == str(archive)
    assert "corrupt archive: md5" in str(error.value) and "\n" not in str(error.value)
    assert not archive.exists() and (raw / "archives" / "trainval.tar.gz.corrupt").exists()
    assert not (raw / "Annotations_Part").exists()


def test_archive_changed_since_first_use_is_refused(server, tmp_path):
    server.files["/trainval.tar.gz"] = PART_TAR
    manifest = _manifest(tmp_path / "m.json", {"pascal_part": _part_source(
        server.url + "/trainval.tar.gz")})
    raw = tmp_path / "raw"
    download(raw, manifest=manifest, progress=False)
    # Start over with another archive under the same name: the recorded sha256 catches it.
    other = _tar([("Annotations_Part/2008_000009.mat", b"other", {})])
    for p in (raw / "Annotations_Part").iterdir():
        p.unlink()
    (raw / "Annotations_Part").rmdir()
    state = json.loads((raw / STATE_FILE).read_text())
    state["sources"] = {}
    (raw / STATE_FILE).write_text(json.dumps(state))
    (raw / "archives" / "trainval.tar.gz").write_bytes(other)
    result = CliRunner().invoke(main, ["download", str(raw), "--manifest", str(manifest),
                                       "--quiet"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "recorded in .checksums.json on first use" in result.stderr
    assert not (raw / "Annotations_Part").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil.txt", "Annotations_Part/../../evil"])
def test_path_traversal_archive_is_refused(tmp_path, name):
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(_tar([("Annotations_Part/ok.mat", b"ok", {}), (name, b"evil", {})]))
    target = tmp_path / "target"
    with pytest.raises(InputError) as error:
        safe_extract(archive, target)
    assert error.value.file == str(archive) and error.value.record == name
    assert list(target.iterdir()) == []  # nothing extracted, not even the good member
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("member", [
    ("Annotations_Part/link", None, {"type": tarfile.SYMTYPE, "linkname": "../../outside"}),
    ("Annotations_Part/abs", None, {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}),
    ("Annotations_Part/hard", None, {"type": tarfile.LNKTYPE, "linkname": "../outside"}),
    ("Annotations_Part/fifo", None, {"type": tarfile.FIFOTYPE}),
])
def test_link_escaping_the_target_is_refused(tmp_path, member):
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(_tar([member]))
    with pytest.raises(InputError) as error:
        safe_extract(archive, tmp_path / "target")
    assert error.value.record == member[0] and str(archive) in str(error.value)
    assert list((tmp_path / "target").iterdir()) == []


def test_zip_symlink_escaping_the_target_is_refused(tmp_path):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(_zip([("pascal_person_part/x", b"../../../etc", stat.S_IFLNK | 0o777)]))
    with pytest.raises(InputError, match="leaves the extraction folder"):
        safe_extract(archive, tmp_path / "target")


def test_links_inside_the_target_are_extracted(tmp_path):
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(_tar([("d/a.txt", b"a", {}),
                              ("d/sub/link", None, {"type": tarfile.SYMTYPE,
                                                    "linkname": "../a.txt"})]))
    assert safe_extract(archive, tmp_path / "t") == 2
    assert (tmp_path / "t" / "d" / "sub" / "link").read_bytes() == b"a"


def test_mirror_directory_is_used_without_network(tmp_path, closed_url):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "trainval.tar.gz").write_bytes(PART_TAR)
    (mirror / "pascal_person_part.zip").write_bytes(PERSON_PART_ZIP)
    manifest = _manifest(tmp_path / "m.json", {"pascal_part": _part_source(closed_url),
                                               "pascal_person_part": _person_part_source(
                                                   closed_url)})
    raw = tmp_path / "raw"
    report = download(raw, mirror=str(mirror), manifest=manifest, progress=False)
    assert [r.status for r in report.results] == ["downloaded", "downloaded"]
    _assert_parts_extracted(raw)
    rl = layout.RawLayout(raw)
    assert rl.label_png("2008_000001").read_bytes() == b"png"
    assert rl.id_list("train").read_text() == "2008_000001\n"
    assert not (raw / "__MACOSX").exists()
    assert (mirror / "trainval.tar.gz").exists()  # the mirror's own file is left alone


def test_mirror_url_is_tried_first(server, tmp_path, closed_url):
    server.files["/mirror/trainval.tar.gz"] = PART_TAR
    manifest = _manifest(tmp_path / "m.json", {"pascal_part": _part_source(closed_url)})
    raw = tmp_path / "raw"
    download(raw, mirror=server.url + "/mirror/", manifest=manifest, progress=False)
    _assert_parts_extracted(raw)


def test_upstream_mirror_is_used_when_the_main_url_fails(server, tmp_path):
    server.files["/copy/trainval.tar.gz"] = PART_TAR
    manifest = _manifest(tmp_path / "m.json", {"pascal_part": _part_source(
        server.url + "/missing.tar.gz", mirrors=[server.url + "/copy/trainval.tar.gz"])})
    download(tmp_path / "raw", manifest=manifest, progress=False)
    _assert_parts_extracted(tmp_path / "raw")
    assert [path for path, _ in server.requests] == ["/missing.tar.gz", "/copy/trainval.tar.gz"]


def test_manual_instructions_name_the_exact_paths(tmp_path, closed_url):
    manifest = _manifest(tmp_path / "m.json", {
        "pascal_part": _part_source(closed_url),
        "pose_annotations": json.loads(MANIFEST_PATH.read_text())["sources"]["pose_annotations"]})
    raw = tmp_path / "raw"
    result = CliRunner().invoke(main, ["download", str(raw), "--manifest", str(manifest),
                                       "--retries", "0", "--quiet"])
    assert result.exit_code == 1  # an archive could not be fetched
    archive = (raw / "archives" / "trainval.tar.gz").absolute()
    assert f"save it as {archive}" in result.stderr
    assert f"ppp download {raw} --only pascal_part" in result.stderr
    assert f"{(raw / 'pose_annotations').absolute()}/2008_000652.mat" in result.stderr
    assert "https://sukixia.github.io/paper.html" in result.stderr
    # The archive saved by hand where the message says is checked and extracted.
    archive.write_bytes(PART_TAR)
    (raw / "pose_annotations").mkdir()
    (raw / "pose_annotations" / "2008_000652.mat").write_bytes(b"mat")
    result = CliRunner().invoke(main, ["download", str(raw), "--manifest", str(manifest),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    assert "pascal_part: downloaded" in result.stdout
    assert "pose_annotations: present" in result.stdout
    _assert_parts_extracted(raw)


def test_only_pose_annotations_missing_exits_0(tmp_path):
    result = CliRunner().invoke(main, ["download", str(tmp_path / "raw"),
                                       "--only", "pose_annotations"])
    assert result.exit_code == 0
    assert "pose_annotations: MANUAL DOWNLOAD NEEDED" in result.stderr


def test_unknown_source_and_bad_mirror_are_input_errors(tmp_path):
    result = CliRunner().invoke(main, ["download", str(tmp_path), "--only", "nope"])
    assert result.exit_code == 2 and "unknown source nope" in result.stderr
    result = CliRunner().invoke(main, ["download", str(tmp_path), "--mirror",
                                       str(tmp_path / "missing")])
    assert result.exit_code == 2 and "neither an http(s) URL nor a directory" in result.stderr


def test_manifest_matches_the_raw_layout():
    sources = load_manifest()
    rl = layout.RawLayout("RAW")
    assert {name: rl.root / s.provides for name, s in sources.items()} == {
        "voc2010": rl.jpeg_dir, "pascal_part": rl.part_mat_dir,
        "pascal_person_part": rl.person_part_dir, "pose_annotations": rl.pose_mat_dir}
    assert sources["voc2010"].md5 == "da459979d0c395079b5c75ee67908abb"
    assert sources["pose_annotations"].manual
    assert all(s.urls and s.filename for s in sources.values() if not s.manual)
