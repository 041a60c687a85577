"""What hostile input costs: peak memory of `ppp validate`/`ppp score` on zip bombs against a
legitimate val-sized submission, the time a trickling server takes to be refused, and what
checking a hand-edited canonical JSON adds to loading it.

Builds (or reuses, with ``--workdir``) the val-sized synthetic case of ``score_speed.py``
(1817 images around 500x375, about 10k predicted poses, a part PNG per image), zipped, and
the bombs of issue 12 (``tests/hostile/bombs.py``, honest sizes and CRCs):

- a 1 MiB zip holding a 1 GiB ``pose.json``;
- a 2.5 MiB zip holding ten 256 MiB part maps;
- a legitimate submission whose one part map is a PNG declaring 10000x10000 pixels.

Each command runs in a child process that reports its own peak RSS (``ru_maxrss``); the
baseline is the same command on the legitimate submission, in the same run. ``--code DIR``
runs the children on another checkout (e.g. an older commit) for a before/after.

The trickling server sends one byte every 10 s and no Content-Length; ``fetch`` runs with
the default limits (``DownloadLimits``), so the figure is what a user waits.

Usage: ``python benchmark/perf/hostile_limits.py [--workdir DIR] [--code DIR]
[--skip-trickle]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "benchmark" / "perf"), str(REPO / "tests" / "hostile")]

from bombs import png_declaring, write_zip  # noqa: E402 - from the test helpers above
from score_speed import build_case  # noqa: E402

# VmHWM, the peak RSS of this process image: ru_maxrss would also count the RSS of the
# parent that forked it, which carried over through exec.
_PEAK = ("import re, sys\n"
         "from pascal_person_pose.cli import main\n"
         "try:\n"
         "    main(sys.argv[1:])\n"
         "finally:\n"
         "    status = open('/proc/self/status').read()\n"
         "    print('PEAK', re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=sys.stderr)\n")


def peak_rss(code: Path, *args) -> tuple[int, int, str]:
    """(exit code, peak RSS in bytes, first stderr line) of ``ppp ARGS`` in a child."""
    result = subprocess.run([sys.executable, "-c", _PEAK, *map(str, args)],
                            env={**os.environ, "PYTHONPATH": str(code)}, cwd=code,
                            capture_output=True, text=True)
    lines = result.stderr.splitlines()
    peak = next(int(line.split()[1]) for line in reversed(lines) if line.startswith("PEAK"))
    first = next((line for line in lines if not line.startswith("PEAK")), "")
    return result.returncode, peak * 1024, first


def _zip_dir(folder: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            zf.write(path, path.relative_to(folder).as_posix())
    return out


def memory(work: Path, code: Path) -> None:
    root, folder = work / "canonical", work / "submission"
    if not (root / "annotations" / "person_pose_val.json").exists():
        print(build_case(root, folder, 1817, 0))
    legit = work / "legit.zip"
    if not legit.exists():
        _zip_dir(folder, legit)
    largest = max(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    voc_ids = sorted(p.stem for p in (folder / "parts").iterdir())
    pose_bomb = write_zip(work / "pose_bomb.zip", [("pose.json", 1024)])
    part_bomb = write_zip(work / "part_bomb.zip", [(f"parts/{v}.png", 256)
                                                   for v in voc_ids[:10]])
    png_bomb = work / "png_bomb.zip"
    with zipfile.ZipFile(legit) as src, zipfile.ZipFile(png_bomb, "w",
                                                         zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            bomb = info.filename == f"parts/{voc_ids[0]}.png"
            dst.writestr(info.filename, png_declaring(10_000, 10_000, 100) if bomb
                         else src.read(info))
    cases = [("validate", "legitimate val-sized zip", legit),
             ("score", "legitimate val-sized zip", legit),
             ("validate", "1 GiB pose.json in a 1 MiB zip", pose_bomb),
             ("validate", "ten 256 MiB part maps in a 2.5 MiB zip", part_bomb),
             ("score", "ten 256 MiB part maps in a 2.5 MiB zip", part_bomb),
             ("validate", "a PNG declaring 10000x10000 (legit otherwise)", png_bomb)]
    print(f"code: {code}")
    print(f"largest member of the legitimate submission: {largest / 2**20:.1f} MiB "
          f"(pose.json); zip {legit.stat().st_size / 2**20:.1f} MiB")
    baseline = {}
    print(f"{'command':<9} {'submission':<48} {'zip':>9} {'peak RSS':>10} {'vs legit':>9}  "
          "outcome")
    for command, label, path in cases:
        code_, peak, line = peak_rss(code, command, root, path)
        baseline.setdefault(command, peak)
        outcome = "ok" if code_ == 0 else line[:90]
        print(f"{command:<9} {label:<48} {path.stat().st_size / 2**20:>7.1f}MB "
              f"{peak / 2**20:>8.0f}MB {peak / baseline[command]:>8.2f}x  {outcome}")


def canonical_check(work: Path) -> None:
    """What checking every field (the RLEs above all) adds to loading the val-sized split."""
    from pascal_person_pose import rle, safe_json
    from pascal_person_pose.dataset import Dataset

    path = work / "canonical" / "annotations" / "person_pose_val.json"
    coco = safe_json.load(path, allow_nan=True)
    rles = [(a["segmentation"]["counts"], *a["segmentation"]["size"])
            for a in coco["annotations"]]
    best = {"load": float("inf"), "rle": float("inf")}
    for _ in range(3):
        start = time.perf_counter()
        Dataset(work / "canonical", "val")
        best["load"] = min(best["load"], time.perf_counter() - start)
        start = time.perf_counter()
        rle.first_bad_rle(rles)
        best["rle"] = min(best["rle"], time.perf_counter() - start)
    print(f"Dataset(val) load, {len(rles)} persons, {sum(len(c) for c, _, _ in rles)} RLE "
          f"characters: {best['load']:.2f} s, of which the RLE check {best['rle']:.2f} s "
          f"({best['rle'] / best['load']:.0%})")


def trickle() -> None:
    from pascal_person_pose.download import FetchError, fetch
    from pascal_person_pose.limits import DownloadLimits

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(100_000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(10)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    limits = DownloadLimits()
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            fetch(f"http://127.0.0.1:{httpd.server_address[1]}/a.tar", Path(tmp) / "a.tar",
                  limits=limits, progress=False, fmt="tar")
            outcome = "NOT refused"
        except FetchError as e:
            outcome = str(e)
    httpd.shutdown()
    print(f"trickling server (1 byte / 10 s): refused after {time.monotonic() - start:.1f} s "
          f"with the defaults (window {limits.window:g} s, min rate {limits.min_rate:g} B/s, "
          f"timeout {limits.timeout:g} s): {outcome}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, help="keep the generated case here and reuse it")
    parser.add_argument("--code", type=Path, default=REPO,
                        help="the checkout whose `ppp` the children run (default: this one)")
    parser.add_argument("--skip-trickle", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        memory(work, args.code.resolve())
        canonical_check(work)
    if not args.skip_trickle:
        trickle()


if __name__ == "__main__":
    main()
