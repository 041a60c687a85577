"""FCRF speed (and accuracy) benchmark: per-box solve time per solver, box vs full image.

Part 1, solvers: random box programs of 14 types x 6 proposals (84 nodes) in three
families of same-person / different-person probabilities: "easy" (0.5-1 / 0-0.5, the
signs never lie), "medium" (0.4-0.95 / 0.05-0.6) and "hard" (0.3-0.9 / 0.1-0.7). For each
solver: median and 95th-percentile wall time per box, the share of boxes solved to proven
optimality within the time limit, and the median relative gap of the others (n/a where the
solver proves no bound: pulp).

Part 2, scenes: synthetic images of overlapping people; a pairwise model is trained on
rendered boxes, then the same test scenes run in box mode (one FCRF per person box,
6 proposals per type, poses merged by pose NMS) and in full-image mode (one FCRF over
the image, 30 proposals per type). Prints the time per box, per image in each mode, their
ratio (the paper credits boxes with ~40x), and the pose mAP of each mode with and without
segment features.

    .venv/bin/python benchmark/perf/fcrf_speed.py [--boxes 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pascal_person_pose.metrics.pose_ap import pose_ap  # noqa: E402
from reference_model.fcrf import (FULL_IMAGE_PARAMS, FcrfParams, RenderParams,  # noqa: E402
                                  TrainingBox, assemble_image, fcrf_box,
                                  fit_pairwise_model, render_score_maps, solve_program)
from reference_model.fcrf.assembly import (closest_to_centre, image_to_map,  # noqa: E402
                                           to_image)
from reference_model.fcrf.synthetic import (person_box, random_people,  # noqa: E402
                                            random_program, render_box_maps)

FAMILIES = {"easy": ((0.5, 1.0), (0.0, 0.5)), "medium": ((0.4, 0.95), (0.05, 0.6)),
            "hard": ((0.3, 0.9), (0.1, 0.7))}
HEIGHT, WIDTH, BOX_HEIGHT = 240, 320, 160


def solver_table(boxes: int, pulp_boxes: int, time_limit: float, seed: int) -> list[dict]:
    rows = []
    for family, (same, different) in FAMILIES.items():
        rng = np.random.default_rng(seed)
        programs = [random_program(rng, int(rng.integers(1, 7)), same=same,
                                   different=different) for _ in range(boxes)]
        for solver in ("highs", "scipy", "pulp-highs", "pulp-cbc"):
            count = pulp_boxes if solver.startswith("pulp") else boxes
            times, optimal, gaps = [], [], []
            for program in programs[:count]:
                start = time.perf_counter()
                solution = solve_program(program, solver, time_limit)
                times.append(time.perf_counter() - start)
                optimal.append(solution.optimal)
                if not solution.optimal and np.isfinite(solution.gap):
                    gaps.append(solution.gap)
            row = {"family": family, "solver": solver, "boxes": count,
                   "median_ms": 1e3 * float(np.median(times)),
                   "p95_ms": 1e3 * float(np.percentile(times, 95)),
                   "optimal_share": float(np.mean(optimal)),
                   "unsolved_median_gap": float(np.median(gaps)) if gaps else None}
            rows.append(row)
            gap = "n/a" if not gaps else f"{100 * row['unsolved_median_gap']:.1f}%"
            print(f"{family:7s} {solver:11s} n={count:3d}  median {row['median_ms']:8.1f} ms"
                  f"  p95 {row['p95_ms']:8.1f} ms  optimal {100 * row['optimal_share']:5.1f}%"
                  f"  median gap of the others {gap}", flush=True)
    return rows


def crowded_scene(rng: np.random.Generator, people: tuple[int, int]) -> np.ndarray:
    """``people`` (min, max) persons crowded into the middle half of the image."""
    keypoints = random_people(rng, int(rng.integers(people[0], people[1] + 1)),
                              (HEIGHT, WIDTH // 2), head_size=(8, 13))
    keypoints[..., 0] += np.where(keypoints[..., 2] > 0, WIDTH // 4, 0)
    return keypoints


def person_boxes(keypoints: np.ndarray) -> list[np.ndarray]:
    return [person_box(p) for p in keypoints if (p[:, 2] > 0).sum() >= 4]


def training_boxes(scenes: int, people: tuple[int, int], render: RenderParams, seed: int):
    """Rendered training boxes, one at a time (a box's maps hold ~30 MB)."""
    rng = np.random.default_rng(seed)
    for _ in range(scenes):
        keypoints = crowded_scene(rng, people)
        for box in person_boxes(keypoints):
            maps, scale = render_box_maps(keypoints, box, BOX_HEIGHT, rng, render)
            inside = keypoints.copy()
            inside[..., :2] = image_to_map(keypoints[..., :2], box, scale)
            yield TrainingBox(maps, inside)


def scene_table(train_scenes: int, test_scenes: int, people: tuple[int, int],
                render: RenderParams, seed: int) -> dict:
    models = {seg: fit_pairwise_model(training_boxes(train_scenes, people, render, seed),
                                      use_segment_features=seg) for seg in (True, False)}
    rng = np.random.default_rng(seed + 1)
    runs = {seg: {"box_time": [], "image_time": [], "boxes": [], "proposals": [],
                  "optimal": [], "box_pred": [], "image_pred": []} for seg in models}
    gt = []
    for _ in range(test_scenes):  # one scene's maps in memory at a time
        keypoints = crowded_scene(rng, people)
        boxes = [(box,) + render_box_maps(keypoints, box, BOX_HEIGHT, rng, render)
                 for box in person_boxes(keypoints)]
        image_maps = render_score_maps(keypoints, (HEIGHT, WIDTH), rng, render)
        gt.append(keypoints.astype(np.float32))
        for seg, model in models.items():
            run = runs[seg]
            poses, spent = [], 0.0
            for box, maps, scale in boxes:
                start = time.perf_counter()
                result = fcrf_box(maps, model, FcrfParams())
                best = closest_to_centre([to_image(p, box, scale) for p in result.poses], box)
                spent += time.perf_counter() - start
                poses += [] if best is None else [best]
                run["proposals"].append(len(result.proposals))
                run["optimal"].append(result.solution.optimal)
            run["box_time"].append(spent)
            run["boxes"].append(len(boxes))
            run["box_pred"].append(_stack(assemble_image(poses)))
            start = time.perf_counter()
            whole = assemble_image(fcrf_box(image_maps, model, FULL_IMAGE_PARAMS).poses)
            run["image_time"].append(time.perf_counter() - start)
            run["image_pred"].append(_stack(whole))
    report = {"test_images": test_scenes}
    for seg, run in runs.items():
        key = "with_segment_features" if seg else "without_segment_features"
        per_box = np.array(run["box_time"]) / np.maximum(run["boxes"], 1)
        report[key] = r = {
            "box_ms_median": 1e3 * float(np.median(per_box)),
            "box_mode_ms_per_image": 1e3 * float(np.mean(run["box_time"])),
            "full_image_ms_per_image": 1e3 * float(np.mean(run["image_time"])),
            "full_over_box_ratio": float(np.sum(run["image_time"]) / np.sum(run["box_time"])),
            "proposals_per_box": float(np.mean(run["proposals"])),
            "box_optimal_share": float(np.mean(run["optimal"])),
            "box_mode_pose_map": pose_ap(gt, run["box_pred"])["table"],
            "full_image_pose_map": pose_ap(gt, run["image_pred"])["table"],
        }
        print(f"{key}: per box {r['box_ms_median']:.1f} ms (median over images, "
              f"{r['proposals_per_box']:.1f} proposals, {100 * r['box_optimal_share']:.0f}% "
              f"optimal); per image: boxes {r['box_mode_ms_per_image']:.1f} ms, full image "
              f"{r['full_image_ms_per_image']:.1f} ms, ratio {r['full_over_box_ratio']:.2f}x; "
              f"pose mAP boxes {r['box_mode_pose_map']['Total']:.1f}, full image "
              f"{r['full_image_pose_map']['Total']:.1f}", flush=True)
    return report


def _stack(poses) -> np.ndarray:
    return (np.stack([p.keypoints for p in poses]) if poses
            else np.zeros((0, 14, 3), np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boxes", type=int, default=30,
                        help="random boxes per family (0: skip part 1)")
    parser.add_argument("--pulp-boxes", type=int, default=10, help="of those, for pulp")
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per box")
    parser.add_argument("--train-scenes", type=int, default=60)
    parser.add_argument("--test-scenes", type=int, default=30, help="0: skip part 2")
    parser.add_argument("--offset-error", type=float, default=RenderParams().offset_error,
                        help="per-person offset error of the rendered Pn (RenderParams)")
    parser.add_argument("--people", type=int, nargs=2, default=(2, 5),
                        help="min and max persons per scene")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    render = RenderParams(offset_error=args.offset_error)
    figures = {"params": {**vars(args), "json": str(args.json)}}
    if args.boxes:
        figures["solvers"] = solver_table(args.boxes, args.pulp_boxes, args.time_limit,
                                          args.seed)
    if args.test_scenes:
        figures["scenes"] = scene_table(args.train_scenes, args.test_scenes,
                                        tuple(args.people), render, args.seed)
    if args.json:
        from pascal_person_pose.atomic import write_json
        write_json(args.json, figures, indent=2)


if __name__ == "__main__":
    main()
