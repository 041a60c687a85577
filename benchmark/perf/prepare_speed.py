"""Throughput of ``ppp prepare`` on a synthetic raw tree (images per second).

Writes ``--images`` synthetic scenes in the raw upstream formats (``synth.write_raw_tree``),
prepares them into a fresh folder ``--repeat`` times per ``--workers`` value (the best run
counts, which filters out the noise of a shared machine), and prints images/s and the
speed-up against the first value (the baseline, workers=1 by default); a last row times a
re-run over a finished folder, which only checks the per-image records.

    python benchmark/perf/prepare_speed.py --images 200 --workers 1 2
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

from pascal_person_pose.prepare import prepare
from pascal_person_pose.synth import write_raw_tree


def _timed(raw: Path, out: Path, workers: int) -> float:
    start = time.perf_counter()
    prepare(raw, out, workers=workers, progress=False)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        write_raw_tree(raw, args.images, args.seed)
        folders = itertools.count()
        best = {w: float("inf") for w in args.workers}
        for _ in range(args.repeat):  # interleaved, so a busy spell hurts every setting
            for w in args.workers:
                best[w] = min(best[w], _timed(raw, Path(tmp) / f"out{next(folders)}", w))
        rows = [(f"workers={w}", seconds) for w, seconds in best.items()]
        rows.append((f"resume, workers={args.workers[0]}",
                     _timed(raw, Path(tmp) / "out0", args.workers[0])))

    baseline = args.images / rows[0][1]
    print(f"prepare: {args.images} synthetic images (seed {args.seed}), "
          f"best of {args.repeat}")
    print(f"{'run':<22}{'seconds':>9}{'images/s':>11}{'vs first':>10}")
    for name, seconds in rows:
        rate = args.images / seconds
        print(f"{name:<22}{seconds:>9.2f}{rate:>11.1f}{rate / baseline:>9.2f}x")


if __name__ == "__main__":
    main()
