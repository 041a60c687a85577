"""How fast are bootstrap intervals on a val-sized split? Target: 1000 resamples <= 10 s.

Uses the val-sized case of ``score_speed.py`` (1817 images, ~3,500 persons, ~10,000
poses, part maps; built once into ``--workdir`` and reused). Evaluates the submission once,
then times, in this process:

- ``bootstrap.intervals`` with ``--resamples`` resamples (default 1000): every table number
  from weighted per-image statistics, the way ``ppp score --bootstrap`` does it;
- the named baseline, "re-accumulate per resample": each resample's images drawn as
  records and put through ``accumulate`` + ``summarize`` (no file is re-read, which would be
  slower still), timed over ``--baseline-resamples`` and scaled to ``--resamples``;
- the whole process ``ppp score DATA SUB --bootstrap N`` for reference.

Usage: ``python benchmark/perf/bootstrap_speed.py [--workdir DIR] [--resamples 1000]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pascal_person_pose.bootstrap import intervals, resample_weights
from pascal_person_pose.evaluation import accumulate, summarize
from pascal_person_pose.scoring import evaluation

sys.path.insert(0, str(Path(__file__).resolve().parent))
from score_speed import PPP, REPO, case, case_arguments, measure  # noqa: E402  (a sibling script)


def naive(evaluated, weights: np.ndarray) -> float:
    """Seconds to summarize the resamples by drawing records and re-accumulating them."""
    start = time.perf_counter()
    for w in weights:
        drawn = [evaluated.images[i] for i in np.repeat(np.arange(len(w)), w.astype(int))]
        summarize(accumulate(drawn, evaluated.params))
    return time.perf_counter() - start


def main() -> None:
    parser = case_arguments(__doc__.split("\n")[0])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--baseline-resamples", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, submission = case(args, tmp)
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        evaluated = evaluation(root, submission, progress=False)
        tables = evaluated.summarize()
        scored = time.perf_counter() - start
        wall, cpu = time.perf_counter(), time.process_time()
        tree, _ = intervals(evaluated.statistics, tables, args.resamples, args.seed)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        weights = resample_weights(len(evaluated.images), args.baseline_resamples, args.seed)
        baseline = naive(evaluated, weights) * args.resamples / args.baseline_resamples
        whole = measure([sys.executable, "-c", PPP, "score", str(root), str(submission),
                         "--bootstrap", str(args.resamples), "--quiet"], REPO, 1)
    n = args.resamples
    print(f"evaluation (score once, in process)                 {scored:7.2f} s")
    print(f"bootstrap.intervals, {n} resamples                 {wall:7.2f} s wall "
          f"{cpu:7.2f} s CPU   (target <= 10 s)")
    print(f"baseline: re-accumulate per resample, {n} (scaled) {baseline:7.2f} s   "
          f"ours {baseline / wall:.0f}x faster")
    print(f"whole process: ppp score --bootstrap {n}            {whole['wall']:7.2f} s wall "
          f"{whole['cpu']:7.2f} s CPU")
    miou = tree.get("parts", {}).get("miou")
    total = tree.get("pose_ap", {}).get("table", {}).get("Total")
    print(f"sanity: 95% intervals Total AP {total}, mIOU {miou}")
    print(f"({os.cpu_count()} CPUs, load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after)")


if __name__ == "__main__":
    main()
