"""The paper's claims, measured on synthetic scenes with 95% bootstrap intervals.

Trains the tiny reference model once (no detector: every variant runs on ground-truth
boxes, so the claims are about the FCRF and the second stage, not detection), predicts
the val split four ways and compares the final model with each ablation through
``ppp compare`` (paired percentile bootstrap over val images):

* Tables 1-2, segment features: final vs ``--no-segment-features`` (pose mAP, ADK);
* Tables 3-4, pose input: final vs ``--no-pose-refinement`` (part IoU, mIOU, mIOU by
  person size; the paper's largest gain is at XS);
* boxes vs full image: final vs ``--full-image`` (both with the FCNs at their training
  scale: the whole image is zoomed so that its median GT box has the training size),
  accuracy and FCRF time per image. The paper's 40x compares its pipeline with
  DeeperCut's, not these two modes.

A claim "holds" when the 95% interval of the difference excludes 0 in the paper's
direction, is "reversed" when it excludes 0 the other way, and is "not shown" otherwise.
Every step is resumable: a rerun reuses the scenes, dataset, model, submissions and
comparisons that exist (delete OUT/report.* only to rewrite the report).

    .venv/bin/python benchmark/paper_claims.py OUT [--train-images 600] [--val-images 300]
        [--seed 0] [--threads 2] [--resamples 1000] [--train-args "--fcn-steps 1600"]

``--train-args`` defaults to twice the demo's FCN steps.

Writes OUT/report.md (the tables, also printed) and OUT/report.json (every compared
number). CPU time of the whole run is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# name -> (options of `ppp-baseline predict`, the comparison it enters)
VARIANTS = {
    "final": [],
    "wo-seg": ["--no-segment-features"],
    "wo-pose": ["--no-pose-refinement"],
    "full-image": ["--full-image"],
}
# Two predictions run at a time, one thread each; boxes and full image side by side, so
# that their times share the same load.
PREDICTION_ROUNDS = (("final", "full-image"), ("wo-seg", "wo-pose"))


@dataclass(frozen=True)
class Claim:
    """One number of a paper table and the direction the paper reports for the final
    model against the ablation (+1: final is higher, -1: final is lower)."""

    table: str
    ablation: str
    path: tuple[str, ...]
    direction: int

    @property
    def label(self) -> str:
        if self.path == ("parts", "miou"):
            return "part mIOU"
        return {"pose_ap": "pose mAP", "adk": "ADK", "parts": "part IoU",
                "parts_by_size": "mIOU"}[self.path[0]] + " " + self.path[-1]


def claims() -> list[Claim]:
    joints = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "U-Body", "Total")
    adk = ("Forehead", "Neck", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Ave.")
    parts = ("head", "torso", "upper_arm", "lower_arm", "upper_leg", "lower_leg",
             "background")
    rows = [Claim("Table 1: pose mAP, w/ vs w/o segment features", "wo-seg",
                  ("pose_ap", "table", j), +1) for j in joints]
    rows += [Claim("Table 2: ADK, w/ vs w/o segment features (lower is better)", "wo-seg",
                   ("adk", "table", j), -1) for j in adk]
    rows += [Claim("Table 3: part IoU, w/ vs w/o pose input", "wo-pose",
                   ("parts", "per_class", p), +1) for p in parts]
    rows.append(Claim("Table 3: part IoU, w/ vs w/o pose input", "wo-pose",
                      ("parts", "miou"), +1))
    rows += [Claim("Table 4: part mIOU by person size, w/ vs w/o pose input", "wo-pose",
                   ("parts_by_size", s), +1) for s in ("XS", "S", "M", "L")]
    # Boxes vs full image: the paper reports boxes at least as accurate and much faster.
    rows += [Claim("Boxes vs full image: accuracy", "full-image", path, direction)
             for path, direction in ((("pose_ap", "table", "Total"), +1),
                                     (("adk", "table", "Ave."), -1),
                                     (("parts", "miou"), +1))]
    return rows


def run(command: list[str], log: Path) -> None:
    """Run a step, its output appended to ``log``; a failure stops the study."""
    with log.open("a") as out:
        out.write(f"$ {shlex.join(command)}\n")
        out.flush()
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"error: {shlex.join(command[:2])} failed (exit {done.returncode}); "
                 f"see {log}")


def predict(bin_dir: Path, out: Path, names: tuple[str, ...], log: Path) -> dict[str, dict]:
    """Predictions of ``names`` side by side; wall time and the per-stage milliseconds
    each prints, kept in OUT/timings/NAME.json."""
    started, processes = {}, {}
    timings = {name: out / "timings" / f"{name}.json" for name in names}
    for name in names:
        if timings[name].exists():
            continue
        command = [str(bin_dir / "ppp-baseline"), "predict", "--checkpoint", str(out / "model"),
                   "--data", str(out / "data"), "--split", "val", "--gt-boxes",
                   "--out", str(out / "submissions" / name), "--threads", "1", "--quiet",
                   *VARIANTS[name]]
        with log.open("a") as handle:
            handle.write(f"$ {shlex.join(command)}\n")
        started[name] = time.perf_counter()
        processes[name] = subprocess.Popen(command, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT, text=True)
    for name, process in processes.items():
        output, _ = process.communicate()
        seconds = time.perf_counter() - started[name]
        with log.open("a") as handle:
            handle.write(output)
        if process.returncode:
            sys.exit(f"error: predicting {name} failed (exit {process.returncode}); see {log}")
        stages = re.search(r"ms per image: (.*)", output)
        per_image = {stage: float(ms) for stage, ms in
                     re.findall(r"(\w+) ([\d.]+)", stages.group(1))} if stages else {}
        timings[name].parent.mkdir(parents=True, exist_ok=True)
        timings[name].write_text(json.dumps({"seconds": seconds, "ms_per_image": per_image}))
    return {name: json.loads(path.read_text()) for name, path in timings.items()}


def verdict(interval: list[float] | None, direction: int) -> str:
    if interval is None:  # e.g. no person of that size in the split
        return "undefined"
    low, high = sorted(x * direction for x in interval)
    if low > 0:
        return "holds"
    if high < 0:
        return "reversed"
    return "not shown"


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def report(comparisons: dict[str, dict], timings: dict[str, dict],
           setup: dict) -> tuple[str, dict]:
    by_path = {name: {tuple(row["path"]): row for row in c["rows"]}
               for name, c in comparisons.items()}
    lines = ["# The paper's claims on synthetic scenes", "",
             f"Tiny reference model trained once on {setup['train_images']} synthetic "
             f"images (seed {setup['seed']}); every variant on ground-truth boxes over "
             f"{setup['val_images']} val images. Differences are final minus ablation, with "
             f"the 95% paired bootstrap interval over images ({setup['resamples']} "
             "resamples) and its p-value. A claim holds when the interval excludes 0 in the "
             "paper's direction.", ""]
    rows_json = []
    table = None
    for claim in claims():
        row = by_path[claim.ablation][claim.path]
        if claim.table != table:
            table = claim.table
            lines += ["", f"## {table}", "",
                      "| number | final | ablation | difference | 95% interval | p | claim |",
                      "|---|---|---|---|---|---|---|"]
        result = verdict(row["interval"], claim.direction)
        interval = "-" if row["interval"] is None else \
            "[{:+.2f}, {:+.2f}]".format(*row["interval"])
        lines.append(f"| {claim.label} | {_number(row['a'], '.2f')} | "
                     f"{_number(row['b'], '.2f')} | {_number(row['difference'], '+.2f')} | "
                     f"{interval} | {_number(row['p_value'], '.3f')} | {result} |")
        rows_json.append({"table": claim.table, "ablation": claim.ablation,
                          "path": list(claim.path), "direction": claim.direction,
                          "verdict": result, **{k: row[k] for k in
                                                ("a", "b", "difference", "interval",
                                                 "p_value")}})
    sizes = {s: by_path["wo-pose"][("parts_by_size", s)]["difference"]
             for s in ("XS", "S", "M", "L")}
    sizes = {s: d for s, d in sizes.items() if d is not None}
    largest = max(sizes, key=sizes.get) if sizes else None
    lines += ["", f"Largest mIOU gain from the pose input by size: {largest} "
                  f"({_number(sizes.get(largest), '+.2f')}; the paper: XS).", "",
              "## Boxes vs full image: time", "",
              "| variant | wall s (2 side by side) | FCN ms/image | FCRF ms/image | "
              "second stage ms/image |", "|---|---|---|---|---|"]
    for name in ("final", "full-image"):
        ms = timings[name]["ms_per_image"]
        lines.append(f"| {name} | {timings[name]['seconds']:.0f} | {ms.get('fcn', 0):.0f} | "
                     f"{ms.get('fcrf', 0):.0f} | {ms.get('refinement', 0):.0f} |")
    box, full = (timings[n]["ms_per_image"].get("fcrf", 0.0) for n in ("final", "full-image"))
    lines += ["", f"FCRF time, full image / boxes: {full / max(box, 1e-9):.2f}x."]
    data = {"setup": setup, "claims": rows_json, "largest_size_gain": largest,
            "timings": timings}
    return "\n".join(lines) + "\n", data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train-images", type=int, default=600)
    parser.add_argument("--val-images", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="training threads")
    parser.add_argument("--resamples", type=int, default=1000)
    # Twice the demo's FCN steps: the claims are about the FCRF and the second stage, which
    # need score maps worth assembling.
    parser.add_argument("--train-args", default="--fcn-steps 1600",
                        help="more options of `ppp-baseline train`, one string")
    parser.add_argument("--bin", type=Path, default=Path(sys.executable).parent,
                        help="folder of ppp and ppp-baseline (default: this Python's)")
    args = parser.parse_args()
    out, bin_dir = args.out.resolve(), args.bin.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    start = time.perf_counter()
    total = args.train_images + args.val_images
    if not (out / "raw").exists():
        run([str(bin_dir / "ppp"), "synth", "--out", str(out / "raw"), "--images", str(total),
             "--seed", str(args.seed), "--val-fraction", str(args.val_images / total),
             "--workers", str(args.threads), "--quiet"], log)
    if not (out / "data" / "annotations").exists():
        run([str(bin_dir / "ppp"), "prepare", str(out / "raw"), str(out / "data"),
             "--workers", str(args.threads), "--quiet"], log)
    # Training resumes or returns at once when done.
    run([str(bin_dir / "ppp-baseline"), "train", "--config", "tiny", "--data",
         str(out / "data"), "--out", str(out / "model"), "--seed", str(args.seed),
         "--detector-steps", "0", "--threads", str(args.threads), "--quiet",
         *shlex.split(args.train_args)], log)
    timings = {}
    for names in PREDICTION_ROUNDS:
        timings |= predict(bin_dir, out, names, log)
    comparisons = {}
    for ablation in ("wo-seg", "wo-pose", "full-image"):
        path = out / "comparisons" / f"final-vs-{ablation}.json"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            run([str(bin_dir / "ppp"), "compare", str(out / "data"),
                 str(out / "submissions" / "final"), str(out / "submissions" / ablation),
                 "--resamples", str(args.resamples), "--seed", str(args.seed),
                 "--json", str(path), "--quiet"], log)
        comparisons[ablation] = json.loads(path.read_text())
    setup = {"train_images": args.train_images, "val_images": args.val_images,
             "seed": args.seed, "resamples": args.resamples, "train_args": args.train_args}
    text, data = report(comparisons, timings, setup)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    cpu = children.ru_utime + children.ru_stime + own.ru_utime + own.ru_stime
    data["run"] = {"wall_seconds": time.perf_counter() - start, "cpu_seconds": cpu}
    (out / "report.md").write_text(text)
    (out / "report.json").write_text(json.dumps(data, indent=1))
    print(text)
    print(f"This run: {data['run']['wall_seconds'] / 60:.1f} min wall, {cpu / 60:.1f} CPU-min "
          f"(steps skipped on a rerun are not counted). Report: {out}/report.md, .json")


if __name__ == "__main__":
    main()
