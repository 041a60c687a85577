"""What does the ground-truth fingerprint cost on a val-sized split?

Every `ppp score` hashes the split's annotation file, part maps and instance maps (see
docs/leaderboard.md). This builds the val-sized case of ``score_speed.py`` (1817 images
around 500x375, part and instance PNGs, a predicted submission) and times, in this process,
with the files in the page cache (as they are when scoring reads them):

- reading the same files without hashing (the baseline: the floor any hash sits on);
- :func:`pascal_person_pose.fingerprint.ground_truth_fingerprint`;
- :func:`pascal_person_pose.scoring.score` end to end (which includes the fingerprint),

and prints the fingerprint against both: its ratio to a plain read, and its share of a score.

Usage: ``python benchmark/perf/fingerprint_speed.py [--images 1817] [--workdir DIR]``.
"""

from __future__ import annotations

import os
import tempfile
import time

from score_speed import case, case_arguments  # the val-sized case of the score benchmark

from pascal_person_pose.dataset import Dataset
from pascal_person_pose.fingerprint import ground_truth_files, ground_truth_fingerprint
from pascal_person_pose.scoring import score


def _best_of(repeats: int, fn) -> float:
    """The fastest of ``repeats`` runs, in seconds (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = case_arguments(__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, submission = case(args, tmp)
        load_before = os.getloadavg()[0]
        dataset = Dataset(root, "val")
        paths = [root / name for name in ground_truth_files(dataset)]
        size = sum(p.stat().st_size for p in paths)
        read = _best_of(args.repeats, lambda: [p.read_bytes() for p in paths])
        fingerprint = _best_of(args.repeats, lambda: ground_truth_fingerprint(dataset))
        scoring = _best_of(1, lambda: score(root, submission, "val"))
    print(f"{len(paths)} files, {size / 2 ** 20:.1f} MiB")
    print(f"read the files (baseline)        {read * 1000:8.1f} ms")
    print(f"ground-truth fingerprint         {fingerprint * 1000:8.1f} ms  "
          f"({fingerprint / read:.2f}x the plain read)")
    print(f"score end to end (includes it)   {scoring * 1000:8.1f} ms  "
          f"(fingerprint: {fingerprint / scoring:.1%} of it)")
    print(f"({os.cpu_count()} CPUs, load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after)")


if __name__ == "__main__":
    main()
