"""`ppp info` and `ppp show`: look at a canonical dataset (statistics, one drawn image)."""

from __future__ import annotations

from pathlib import Path

import click

from pascal_person_pose.cli.conventions import AbsolutePath, quiet_option, show_progress
from pascal_person_pose.errors import InputError

_ROOT = click.argument("root", type=AbsolutePath(exists=True, file_okay=False))


def _splits(root: Path, split: str | None) -> list[str]:
    """The requested split, or every split whose annotation file exists."""
    from pascal_person_pose.layout import SPLITS, CanonicalLayout

    canonical = CanonicalLayout(root)
    if split is not None:
        return [split]
    found = [s for s in SPLITS if canonical.annotations(s).is_file()]
    if not found:
        raise InputError(canonical.annotation_dir, "no person_pose_<split>.json annotation file "
                                                   "(run `ppp prepare` first)")
    return found


def _format_table(stats: list[dict]) -> str:
    """Rows of statistics, one column per split."""
    from pascal_person_pose import schema

    pct = "{:.1%}".format
    rows: list[tuple[str, list[str]]] = [
        ("images", [str(s["images"]) for s in stats]),
        ("pose-annotated images", [str(s["pose_annotated_images"]) for s in stats]),
        ("persons", [str(s["persons"]) for s in stats]),
        ("labelled joints (visible/occluded)", [""] * len(stats)),
        *((f"  {name}", [f"{s['joints'][name]['visible']}/{s['joints'][name]['occluded']}"
                         for s in stats]) for name in schema.JOINT_NAMES),
        ("persons by size (instance pixels / image area)", [""] * len(stats)),
    ]
    bounds = [None, *schema.SIZE_THRESHOLDS, None]
    for k, bucket in enumerate(schema.SIZE_BUCKETS):
        low, high = bounds[k], bounds[k + 1]
        span = f"< {pct(high)}" if low is None else f">= {pct(low)}" if high is None else \
            f"{pct(low)}-{pct(high)}"
        rows.append((f"  {bucket} ({span})", [str(s["persons_by_size"][bucket]) for s in stats]))
    rows.append(("part pixel share", [""] * len(stats)))
    rows += [(f"  {name}", [pct(s["part_pixel_share"][name]) for s in stats])
             for name in (*schema.PART_NAMES, "ignore")]

    header = ("", [s["split"] for s in stats])
    label_width = max(len(label) for label, _ in rows)
    widths = [max(len(header[1][i]), *(len(v[i]) for _, v in rows)) for i in range(len(stats))]
    return "\n".join(label.ljust(label_width) + "".join(f"  {v.rjust(w)}"
                                                         for v, w in zip(values, widths))
                     for label, values in [header, *rows])


@click.command("info")
@_ROOT
@click.option("--split", default=None, help="Only this split (default: every split present).")
@click.option("--json", "json_out", type=AbsolutePath(dir_okay=False, allow_dash=True),
              help="Also write the statistics as JSON ('-': stdout).")
@quiet_option
def info(root: Path, split: str | None, json_out: Path | None) -> None:
    """Statistics of a canonical dataset per split: images, persons, joints, sizes, parts."""
    from pascal_person_pose import atomic
    from pascal_person_pose.dataset import Dataset
    from pascal_person_pose.fingerprint import ground_truth_fingerprint

    stats = []
    for name in _splits(root, split):
        dataset = Dataset(root, name)
        stats.append({**dataset.statistics(progress=show_progress()),
                      "ground_truth": ground_truth_fingerprint(dataset)})
    click.echo(_format_table(stats))
    click.echo("ground-truth fingerprint (what scores record; see docs/leaderboard.md)")
    for s in stats:
        click.echo(f"  {s['split']:<{max(len(t['split']) for t in stats)}}  {s['ground_truth']}")
    if json_out is not None:
        atomic.write_json(json_out, {s["split"]: s for s in stats}, indent=2)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _find_sample(datasets: list, image: str):
    """``(dataset, sample)`` of IMAGE in the first split that has it, in any accepted form."""
    key = image.strip()
    if Path(key).suffix.lower() in (".jpg", ".jpeg", ".png"):
        key = Path(key).stem  # a file name or path: 2008_000652.jpg
    for dataset in datasets:
        try:
            return dataset, dataset[dataset.index_of(key)]
        except InputError:
            continue
    raise InputError(", ".join(str(d.annotation_file) for d in datasets),
                     f"no image {image!r}")


def _submission_view(submission: Path, dataset, sample, min_score: float):
    """The submission's poses (score >= ``min_score``, lowest score drawn first) and part
    map of ``sample``'s image, and a title saying what it holds."""
    import numpy as np

    from pascal_person_pose.submission import (InvalidSubmission, pose_arrays,
                                               read_part_map, read_submission,
                                               validate_submission)

    with read_submission(submission) as sub:  # the default size limits of `ppp validate`
        problems = validate_submission(sub, dataset, check_pixels=False)
        if problems:
            raise InvalidSubmission(problems)
        keypoints = np.zeros((0, 14, 3))
        if sub.has_pose:
            arrays = pose_arrays(sub.poses)
            rows = arrays.by_image().get(sample.image_id, np.zeros(0, np.int64))
            rows = rows[arrays.scores[rows] >= min_score]
            keypoints = arrays.keypoints[rows[np.argsort(arrays.scores[rows], kind="stable")]]
        part_map = None
        if sample.voc_id in sub.parts:
            image = dataset.images[dataset.index_of(sample.voc_id)]
            part_map, found = read_part_map(sub, image)
            if found:
                raise InvalidSubmission(found)
    what = [_plural(len(keypoints), "pose") + (f" (score >= {min_score:g})" if min_score
                                               else "") if sub.has_pose else "no pose task",
            "part map" if part_map is not None else
            ("no part map for this image" if sub.has_parts else "no part task")]
    name = (sub.meta or {}).get("method") or submission.name
    return keypoints, part_map, f"{name}: {', '.join(what)}"


@click.command("show")
@_ROOT
@click.argument("image")
@click.option("--out", required=True, type=AbsolutePath(dir_okay=False),
              help="Image file to write: .png (or .jpg/.jpeg).")
@click.option("--submission", type=AbsolutePath(exists=True),
              help="Also draw this submission's poses and parts (directory or .zip), beside "
                   "the ground truth.")
@click.option("--min-score", default=0.0, show_default=True, type=click.FloatRange(0),
              help="With --submission: draw only poses with at least this score.")
@click.option("--split", default=None, help="Look only in this split (default: all).")
@click.option("--parts/--no-parts", default=True, help="Draw the part maps.")
@click.option("--instances/--no-instances", default=True, help="Outline each GT person.")
@click.option("--skeletons/--no-skeletons", default=True, help="Draw the poses.")
@click.option("--joint-names", is_flag=True, help="Write each joint's name beside it.")
@click.option("--legend/--no-legend", default=True,
              help="Add a colour legend of the parts and joints below the drawing.")
@click.option("--alpha", default=0.6, show_default=True, type=click.FloatRange(0, 1),
              help="Opacity of the part colours.")
def show(root: Path, image: str, out: Path, submission: Path | None, min_score: float,
         split: str | None, parts: bool, instances: bool, skeletons: bool, joint_names: bool,
         legend: bool, alpha: float) -> None:
    """Draw one image with its annotations, and a submission's predictions beside them.

    IMAGE is the VOC id (2008_000652), the numeric image id (2008000652) or the image's
    file name (2008_000652.jpg, or a path to it).
    """
    from pascal_person_pose import atomic, vis
    from pascal_person_pose.dataset import Dataset

    if out.suffix.lower() not in atomic.IMAGE_FORMATS:
        raise InputError(out, f"cannot write {out.suffix or 'a file without extension'!r}; "
                              "use .png, .jpg or .jpeg", field="--out")
    datasets = [Dataset(root, s) for s in _splits(root, split)]
    dataset, sample = _find_sample(datasets, image)
    drawing = vis.render_sample(sample, parts=parts, instances=instances, skeletons=skeletons,
                                joint_names=joint_names, alpha=alpha)
    gt_title = f"ground truth: {_plural(len(sample.persons), 'person')}"
    said = f"{sample.voc_id} ({dataset.split}, {_plural(len(sample.persons), 'person')})"
    sections = vis.legend_items(parts=parts, joints=skeletons) if legend else None
    note = "GT joints: filled = visible, ring = occluded" if legend and skeletons else ""
    if submission is None:
        view = vis.compose([drawing], sections, note) if legend else drawing
    else:
        keypoints, part_map, title = _submission_view(submission, dataset, sample, min_score)
        predicted = vis.draw_prediction(sample.image, part_map, keypoints, parts=parts,
                                        skeletons=skeletons, joint_names=joint_names,
                                        alpha=alpha)
        view = vis.compose([vis.titled(drawing, gt_title), vis.titled(predicted, title)],
                           sections, note)
        said += f"; beside it {title}"
    vis.save_png(out, view)
    click.echo(f"{out}: {said}")


COMMANDS = [info, show]
