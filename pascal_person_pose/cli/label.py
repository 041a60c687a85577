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
_FORMATS = {".xml": "cvat", ".json": "labelstudio"}


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


@label.command()
@_ROOT
@_SPLIT
@click.option("--json", "json_out", type=AbsolutePath(dir_okay=False),
              help="Write the full report as JSON.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="Rows of the printed table (the JSON has every flag).")
@quiet_option
def check(root: Path, split: str, json_out: Path | None, limit: int) -> None:
    """QA checks of the split's joints, most severe first."""
    from pascal_person_pose import atomic
    from pascal_person_pose.label import qa

    flags = qa.check_split(root, split, progress=show_progress())
    click.echo(qa.format_table(flags, limit))
    click.echo(", ".join(f"{s}: {sum(f.severity == s for f in flags)}" for s in qa.SEVERITIES))
    if json_out is not None:
        atomic.write_json(json_out, qa.report(flags, split), indent=2)


def _format(path: Path, given: str | None) -> str:
    if given is not None:
        return given
    if path.suffix.lower() not in _FORMATS:
        raise click.UsageError(f"cannot tell the format of {path.name}: pass --format")
    return _FORMATS[path.suffix.lower()]


_FORMAT = click.option("--format", "fmt", type=click.Choice(["cvat", "labelstudio"]),
                       help="cvat (CVAT for images 1.1 XML) or labelstudio (Label Studio "
                            "JSON); default from the file suffix (.xml / .json).")


@label.command("export")
@_ROOT
@_SPLIT
@click.option("--out", required=True, type=AbsolutePath(dir_okay=False),
              help="File to write (.xml for CVAT, .json for Label Studio).")
@_FORMAT
@click.option("--image-url", default=None,
              help="Label Studio: prefix of the image URLs (default: Label Studio's "
                   "local-files storage, /data/local-files/?d=images/).")
def export(root: Path, split: str, out: Path, fmt: str | None, image_url: str | None) -> None:
    """Export the split's joints to CVAT or Label Studio."""
    if _format(out, fmt) == "cvat":
        from pascal_person_pose.label.interchange_cvat import export_cvat

        persons = export_cvat(root, split, out)
    else:
        from pascal_person_pose.label.interchange_labelstudio import (DEFAULT_IMAGE_URL,
                                                                      export_labelstudio)

        persons = export_labelstudio(root, split, out, image_url or DEFAULT_IMAGE_URL)
    click.echo(f"wrote {persons} persons to {out}")


@label.command("import")
@_ROOT
@_SPLIT
@click.argument("file", type=AbsolutePath(exists=True, dir_okay=False))
@_FORMAT
def import_(root: Path, split: str, file: Path, fmt: str | None) -> None:
    """Import joints edited in CVAT or Label Studio (one atomic save)."""
    from pascal_person_pose.label.interchange import apply_import

    if _format(file, fmt) == "cvat":
        from pascal_person_pose.label.interchange_cvat import read_cvat as read
    else:
        from pascal_person_pose.label.interchange_labelstudio import read_labelstudio as read
    summary = apply_import(root, split, read(file), file)
    click.echo(f"updated {summary.persons} persons of {summary.images} images "
               f"(revision {summary.revision})")
    for where in summary.unmatched:
        click.echo(f"warning: {where} matches no person of the split; skipped", err=True)


COMMANDS = [label]
