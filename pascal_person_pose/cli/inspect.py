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


@click.command("show")
@_ROOT
@click.argument("image")
@click.option("--out", required=True, type=AbsolutePath(dir_okay=False),
              help="PNG file to write.")
@click.option("--split", default=None, help="Look only in this split (default: all).")
@click.option("--parts/--no-parts", default=True, help="Draw the part map.")
@click.option("--instances/--no-instances", default=True, help="Outline each person.")
@click.option("--skeletons/--no-skeletons", default=True, help="Draw the GT poses.")
@click.option("--joint-names", is_flag=True, help="Write each joint's name beside it.")
@click.option("--alpha", default=0.6, show_default=True, type=click.FloatRange(0, 1),
              help="Opacity of the part colours.")
def show(root: Path, image: str, out: Path, split: str | None, parts: bool, instances: bool,
         skeletons: bool, joint_names: bool, alpha: float) -> None:
    """Draw one image (IMAGE: VOC id such as 2008_000652, or image id) with its annotations."""
    from pascal_person_pose import vis
    from pascal_person_pose.dataset import Dataset

    datasets = [Dataset(root, s) for s in _splits(root, split)]
    for dataset in datasets:
        try:
            sample = dataset[dataset.index_of(image)]
        except InputError:
            continue
        vis.save_png(out, vis.render_sample(sample, parts=parts, instances=instances,
                                            skeletons=skeletons, joint_names=joint_names,
                                            alpha=alpha))
        click.echo(f"{out}: {sample.voc_id} ({dataset.split}, {len(sample.persons)} persons)")
        return
    raise InputError(", ".join(str(d.annotation_file) for d in datasets),
                     f"no image {image!r}")


COMMANDS = [info, show]
