"""`ppp label`: joint proposals from part masks, the browser labeler, QA checks, and
CVAT / Label Studio interchange (needs the ``label`` extra for ``serve``)."""

from __future__ import annotations

from pathlib import Path

import click

from pascal_person_pose.cli.conventions import (AbsolutePath, SentenceGroup, quiet_option,
                                                show_progress)
from pascal_person_pose.layout import SPLITS

_ROOT = click.argument("root", type=AbsolutePath(exists=True, file_okay=False))
_SPLIT = click.option("--split", required=True, type=click.Choice(SPLITS),
                      help="The split to work on.")


@click.group("label", cls=SentenceGroup)
def label() -> None:
    """Label joints: propose them from part masks, edit them in a browser, check them."""


@label.command()
@_ROOT
@_SPLIT
@quiet_option
def propose(root: Path, split: str) -> None:
    """Propose unlabelled joints from the part masks.

    Proposals are stored beside the labels until confirmed in the labeler; labelled joints
    are never changed. A second run replaces the pending proposals."""
    from pascal_person_pose.label.proposals import propose_split

    summary = propose_split(root, split, progress=show_progress())
    click.echo(f"{summary.persons} persons with unlabelled joints, "
               f"{summary.persons_with_proposals} got proposals (revision {summary.revision})")
    for name, count in summary.proposed.items():
        click.echo(f"  {name:<12}{count:>6}")


@label.command()
@_ROOT
@_SPLIT
@click.option("--host", default="127.0.0.1", show_default=True, envvar="PPP_LABEL_HOST",
              help="Address to bind. A non-loopback address is refused unless given here on "
                   "the command line (not through PPP_LABEL_HOST).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port (0: any free port).")
@click.pass_context
def serve(ctx: click.Context, root: Path, split: str, host: str, port: int) -> None:
    """Open the browser labeler (every change is saved at once)."""
    from click.core import ParameterSource

    try:
        from pascal_person_pose.label.server import serve as run_server
    except ImportError as e:  # flask is the `label` extra
        raise click.UsageError(f"the labeler needs Flask: pip install "
                               f"'pascal-person-pose[label]' ({e})") from None
    explicit = ctx.get_parameter_source("host") is ParameterSource.COMMANDLINE
    try:
        run_server(root, split, host=host, port=port, allow_remote=explicit,
                   announce=lambda line: click.echo(line))
    except KeyboardInterrupt:
        click.echo("stopped (every change was already saved)")


SEVERITIES = ("error", "warning", "info")  # qa.SEVERITIES, most severe first (a test ties them)


@label.command()
@_ROOT
@_SPLIT
@click.option("--json", "json_out", type=AbsolutePath(dir_okay=False),
              help="Write the full report as JSON.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="Rows of the printed table (the JSON has every flag).")
@click.option("--fail-on", type=click.Choice([*SEVERITIES, "never"]), default="error",
              show_default=True,
              help="Exit with status 1 when a finding of this severity or a more severe one "
                   "exists (never: always 0), so the check can gate a labeling pipeline.")
@quiet_option
def check(root: Path, split: str, json_out: Path | None, limit: int, fail_on: str) -> None:
    """QA checks of the split's joints, most severe first.

    Exit status: 0 when no finding reaches --fail-on, 1 when one does, 2 on bad input."""
    from pascal_person_pose import atomic
    from pascal_person_pose.label import qa

    flags = qa.check_split(root, split, progress=show_progress())
    click.echo(qa.format_table(flags, limit))
    click.echo(", ".join(f"{s}: {sum(f.severity == s for f in flags)}" for s in SEVERITIES))
    if json_out is not None:
        atomic.write_json(json_out, qa.report(flags, split), indent=2)
    failing = SEVERITIES[:SEVERITIES.index(fail_on) + 1] if fail_on != "never" else ()
    count = sum(f.severity in failing for f in flags)
    if count:
        click.echo(f"failed: {count} findings of severity {fail_on} or worse", err=True)
        raise SystemExit(1)


_FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["cvat", "coco", "labelstudio"]),
    help="cvat: CVAT for images 1.1 XML; coco: COCO Keypoints 1.0 as CVAT imports it (a "
         "dataset folder); labelstudio: Label Studio JSON. Default from the name: .xml is "
         "cvat, a folder coco, .json labelstudio (import: coco when the JSON is a COCO "
         "object).")


def _export_format(out: Path, fmt: str | None) -> str:
    if fmt is not None:
        return fmt
    if out.suffix.lower() == ".xml":
        return "cvat"
    if out.suffix.lower() == ".json":
        return "labelstudio"
    if out.is_dir() or not out.suffix:
        return "coco"
    raise click.UsageError(f"cannot tell the format of {out.name}: pass --format")


@label.command("export")
@_ROOT
@_SPLIT
@click.option("--out", required=True, type=AbsolutePath(),
              help="What to write: a .xml file (CVAT), a folder (COCO Keypoints: "
                   "OUT/annotations/person_keypoints_SPLIT.json) or a .json file (Label "
                   "Studio, with its labelling interface beside it).")
@_FORMAT
@click.option("--shapes", type=click.Choice(["skeleton", "points"]), default="skeleton",
              show_default=True,
              help="CVAT: a skeleton per person (CVAT's own), or a person box and a point per "
                   "joint sharing a group id (what datumaro's CVAT importer reads).")
@click.option("--images", "images_mode", type=click.Choice(["link", "copy"]), default=None,
              help="Also put the split's images where the target tools look for them: "
                   "images/ beside the .xml or .json, images/SPLIT/ in the COCO folder "
                   "(link: symbolic links to the dataset's files).")
@click.option("--image-url", default=None,
              help="Label Studio: prefix of the image URLs (default: Label Studio's "
                   "local-files storage, /data/local-files/?d=images/).")
def export(root: Path, split: str, out: Path, fmt: str | None, shapes: str,
           images_mode: str | None, image_url: str | None) -> None:
    """Export the split's joints and pending proposals to CVAT or Label Studio."""
    from pascal_person_pose.label.interchange import place_images

    fmt = _export_format(out, fmt)
    if fmt == "cvat":
        from pascal_person_pose.label.interchange_cvat import export_cvat

        persons, images = export_cvat(root, split, out, shapes), out.parent / "images"
    elif fmt == "coco":
        from pascal_person_pose.label.interchange_coco import (annotation_file, export_coco,
                                                               images_folder)

        persons, images = export_coco(root, split, out), images_folder(out, split)
        out = annotation_file(out, split)
    else:
        from pascal_person_pose.label.interchange_labelstudio import (DEFAULT_IMAGE_URL,
                                                                      export_labelstudio)

        persons = export_labelstudio(root, split, out, image_url or DEFAULT_IMAGE_URL)
        images = out.parent / "images"
    click.echo(f"wrote {persons} persons to {out}")
    if images_mode is not None:
        count = place_images(root, split, images, images_mode)
        click.echo(f"{'linked' if images_mode == 'link' else 'copied'} {count} images into "
                   f"{images}")


@label.command("import")
@_ROOT
@_SPLIT
@click.argument("file", type=AbsolutePath(exists=True, dir_okay=False))
@_FORMAT
def import_(root: Path, split: str, file: Path, fmt: str | None) -> None:
    """Import joints and proposals edited in CVAT or Label Studio (one atomic save).

    Persons are found by the annotation id the export gave them, else by their box. What
    matches no person of the split is named; a file that matches nothing is an error
    (exit 2), and an import that changes nothing writes nothing."""
    from pascal_person_pose.errors import InputError
    from pascal_person_pose.label.interchange import apply_import, read_any

    summary = apply_import(root, split, read_any(file, fmt), file)
    for where in summary.unmatched:
        click.echo(f"warning: {file}: {where} matches no person of the {split} split; "
                   "skipped", err=True)
    if summary.persons == 0:
        raise InputError(file, f"matched no person of the {split} split "
                               f"({len(summary.unmatched)} unmatched, nothing written)")
    if summary.changed == 0:
        click.echo(f"no change: the {summary.persons} matched persons already hold these "
                   f"joints (revision {summary.revision}, nothing written)")
    else:
        click.echo(f"updated {summary.changed} of {summary.persons} matched persons in "
                   f"{summary.images} images (revision {summary.revision})")


COMMANDS = [label]
