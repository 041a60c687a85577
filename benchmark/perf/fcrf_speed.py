"""FCRF speed benchmark: the exact solver against the solver before issue 11, per program
family; box vs full image in the dense-proposal regime; and the scenes' accuracy.

Part 1, solver families. Every program is solved by the current solver and by
``BASELINE`` (the solver before: plain triangle cuts, every pair column, GAEC only),
measured in the same run, each with its time limit:

* random boxes of 14 types x 6 proposals (84 nodes), in three families of same-person /
  different-person probabilities: "easy" (0.5-1 / 0-0.5, the signs never lie), "medium"
  (0.4-0.95 / 0.05-0.6) and "hard" (0.3-0.9 / 0.1-0.7), 1 s per box;
* dense-proposal boxes: crowded synthetic scenes, score maps rendered from GT with
  noise, proposals by NMS at 4 px (up to 6 per type, probability > 0.1: near-miss
  alternatives of every joint survive), a pairwise model trained on such boxes; 1 s per
  box;
* full-image programs of the same scenes (up to 30 proposals per type), 10 s each.

Per family and solver: the share of programs proven optimal, median and 90th-percentile
wall time, the median and largest gap of the others, and the speed ratio baseline /
current. Targets (issue 11): hard >= 95% proven within 1 s; medium median <= 50 ms; dense
boxes median <= 200 ms; full images proven or within a 10% gap in 10 s. Then box vs full
image per scene: solver time of all boxes vs of the full image, and the gaps.
``--ablations`` adds rows with one technique switched off at a time.

Part 2, scenes: the pairwise model trained on rendered boxes (default proposals), the
same test scenes in box mode (one FCRF per person box, poses merged by pose NMS) and in
full-image mode; time per box and per image in each mode and the pose mAP of each, with
and without segment features.

    .venv/bin/python benchmark/perf/fcrf_speed.py [--boxes 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pascal_person_pose.metrics.pose_ap import pose_ap  # noqa: E402
from reference_model.fcrf import (FULL_IMAGE_PARAMS, FcrfParams, ProposalParams,  # noqa: E402
                                  RenderParams, TrainingBox, assemble_image, box_program,
                                  fcrf_box, fit_pairwise_model,
                                  render_score_maps, solve_program)
from reference_model.fcrf.assembly import (box_person, image_to_map,  # noqa: E402
                                           to_image)
from reference_model.fcrf.ilp import BASELINE, SolverOptions  # noqa: E402
from reference_model.fcrf.synthetic import (person_box, random_people,  # noqa: E402
                                            random_program, render_box_maps)

FAMILIES = {"easy": ((0.5, 1.0), (0.0, 0.5)), "medium": ((0.4, 0.95), (0.05, 0.6)),
            "hard": ((0.3, 0.9), (0.1, 0.7))}
HEIGHT, WIDTH, BOX_HEIGHT = 240, 320, 160
DENSE_BOX = ProposalParams(max_per_type=6, threshold=0.1, min_distance=4.0)
DENSE_IMAGE = replace(DENSE_BOX, max_per_type=30)
SOLVERS = {"current": SolverOptions(), "baseline": BASELINE}
ABLATIONS = {"no stars (plain triangles)": SolverOptions(cuts="triangles"),
             "no Kernighan-Lin": SolverOptions(kernighan_lin=False),
             "no pair fixing": SolverOptions(fixing=False),
             "every column": SolverOptions(column_generation=False),
             "simplex only": SolverOptions(lp_method="simplex"),
             "slack cuts kept": SolverOptions(drop_slack_cuts=False)}


def random_family(family: str, boxes: int, seed: int) -> list:
    same, different = FAMILIES[family]
    rng = np.random.default_rng(seed)
    return [random_program(rng, int(rng.integers(1, 7)), same=same, different=different)
            for _ in range(boxes)]


def solve_all(programs: list, options: SolverOptions, time_limit: float) -> dict:
    times, proven, gaps, nodes = [], [], [], []
    for program in programs:
        start = time.perf_counter()
        solution = solve_program(program, time_limit=time_limit, options=options)
        times.append(time.perf_counter() - start)
        proven.append(solution.optimal)
        gaps.append(solution.gap)
        nodes.append(program.n)
    return {"times": times, "proven": proven, "gaps": gaps, "nodes": nodes}


def summary(run: dict) -> dict:
    times = np.array(run["times"])
    open_gaps = [g for g, p in zip(run["gaps"], run["proven"]) if not p]
    return {"programs": len(times), "nodes_median": float(np.median(run["nodes"])),
            "proven_share": float(np.mean(run["proven"])),
            "median_ms": 1e3 * float(np.median(times)),
            "p90_ms": 1e3 * float(np.percentile(times, 90)),
            "unproven_median_gap": float(np.median(open_gaps)) if open_gaps else None,
            "max_gap": float(max(run["gaps"]))}


def family_rows(name: str, programs: list, time_limit: float, ablations: bool,
                runs: dict | None = None) -> dict:
    """Solve ``programs`` with every solver variant; print one line each. ``runs``, when
    given, receives each variant's per-program results."""
    variants = dict(SOLVERS, **(ABLATIONS if ablations else {}))
    rows = {}
    for label, options in variants.items():
        run = solve_all(programs, options, time_limit)
        if runs is not None:
            runs[label] = run
        rows[label] = row = summary(run)
        gap = ("-" if row["unproven_median_gap"] is None
               else f"{100 * row['unproven_median_gap']:.2f}%")
        print(f"{name:12s} {label:27s} n={row['programs']:3d} ({row['nodes_median']:.0f} "
              f"nodes)  proven {100 * row['proven_share']:5.1f}%  median "
              f"{row['median_ms']:8.1f} ms  p90 {row['p90_ms']:8.1f} ms  gap of the others "
              f"{gap} (max {100 * row['max_gap']:.2f}%)", flush=True)
    ratio = rows["baseline"]["median_ms"] / rows["current"]["median_ms"]
    print(f"{name:12s} speed-up of the median, baseline / current: {ratio:.1f}x", flush=True)
    rows["median_speedup"] = ratio
    return rows


def dense_scenes(scenes: int, people: tuple[int, int], render: RenderParams,
                 train_scenes: int, seed: int) -> list[tuple[list, object]]:
    """Per scene, the dense-proposal programs of its person boxes and of the image."""
    model = fit_pairwise_model(training_boxes(train_scenes, people, render, seed),
                               proposal_params=DENSE_BOX)
    rng = np.random.default_rng(seed + 2)
    out = []
    for _ in range(scenes):
        keypoints = crowded_scene(rng, people)
        boxes = [box_program(render_box_maps(keypoints, box, BOX_HEIGHT, rng, render)[0],
                             model, DENSE_BOX)[1] for box in person_boxes(keypoints)]
        image = render_score_maps(keypoints, (HEIGHT, WIDTH), rng, render)
        out.append((boxes, box_program(image, model, DENSE_IMAGE)[1]))
    return out


def dense_table(scenes: list, ablations: bool) -> dict:
    boxes = [program for scene_boxes, _ in scenes for program in scene_boxes]
    images = [image for _, image in scenes]
    box_runs, image_runs = {}, {}
    report = {"boxes": family_rows("dense boxes", boxes, 1.0, ablations, box_runs),
              "images": family_rows("full images", images, 10.0, ablations, image_runs)}
    # Box vs full image per scene (current solver): all its boxes' time vs the image's.
    per_scene, first = [], 0
    box_run, image_run = box_runs["current"], image_runs["current"]
    for index, (scene_boxes, image) in enumerate(scenes):
        part = slice(first, first + len(scene_boxes))
        first += len(scene_boxes)
        per_scene.append({"boxes": len(scene_boxes), "box_nodes": box_run["nodes"][part],
                          "box_seconds": float(np.sum(box_run["times"][part])),
                          "box_max_gap": float(max(box_run["gaps"][part], default=0.0)),
                          "box_proven": bool(all(box_run["proven"][part])),
                          "image_nodes": image.n,
                          "image_seconds": image_run["times"][index],
                          "image_gap": image_run["gaps"][index],
                          "image_proven": bool(image_run["proven"][index])})
    box_s = np.array([r["box_seconds"] for r in per_scene])
    image_s = np.array([r["image_seconds"] for r in per_scene])
    report["box_vs_image"] = r = {
        "scenes": per_scene,
        "boxes_ms_per_image_median": 1e3 * float(np.median(box_s)),
        "image_ms_median": 1e3 * float(np.median(image_s)),
        "image_over_boxes": float(image_s.sum() / box_s.sum()),
        "boxes_proven_share": float(np.mean([r["box_proven"] for r in per_scene])),
        "images_proven_share": float(np.mean([r["image_proven"] for r in per_scene])),
        "image_max_gap": float(max(r["image_gap"] for r in per_scene)),
        "box_max_gap": float(max(r["box_max_gap"] for r in per_scene))}
    print(f"box vs full image (dense proposals, {len(per_scene)} scenes, current solver): "
          f"solver time per image, all boxes {r['boxes_ms_per_image_median']:.1f} ms vs "
          f"full image {r['image_ms_median']:.1f} ms (medians; totals' ratio "
          f"{r['image_over_boxes']:.1f}x); scenes with every box proven "
          f"{100 * r['boxes_proven_share']:.0f}% (largest box gap "
          f"{100 * r['box_max_gap']:.2f}%), images proven "
          f"{100 * r['images_proven_share']:.0f}% (largest gap "
          f"{100 * r['image_max_gap']:.2f}%)", flush=True)
    return report


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
                best = box_person([to_image(p, box, scale) for p in result.poses], box)
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
                        help="random boxes per family (0: skip them)")
    parser.add_argument("--dense-scenes", type=int, default=12,
                        help="scenes of the dense-proposal regime (0: skip it)")
    parser.add_argument("--dense-train-scenes", type=int, default=30)
    parser.add_argument("--ablations", action="store_true",
                        help="also solve with one technique off at a time")
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
        figures["random"] = {family: family_rows(family, random_family(family, args.boxes,
                                                                       args.seed),
                                                 1.0, args.ablations)
                             for family in FAMILIES}
    if args.dense_scenes:
        scenes = dense_scenes(args.dense_scenes, (3, 6), render, args.dense_train_scenes,
                              args.seed)
        figures["dense"] = dense_table(scenes, args.ablations)
    if args.test_scenes:
        figures["scenes"] = scene_table(args.train_scenes, args.test_scenes,
                                        tuple(args.people), render, args.seed)
    if args.json:
        from pascal_person_pose.atomic import write_json
        write_json(args.json, figures, indent=2)


if __name__ == "__main__":
    main()
