"""`ppp download` and `ppp prepare`: from upstream sources to the canonical dataset."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pascal_person_pose.cli.conventions import (AbsolutePath, ByteSize, path_or_url,
                                                 quiet_option, show_progress)
from pascal_person_pose.limits import DownloadLimits

_DOWNLOAD_DEFAULTS = DownloadLimits()


@click.command()
@click.argument("raw", type=AbsolutePath(file_okay=False))
@click.option("--only", "only", multiple=True,
              help="Fetch only this source (repeatable): voc2010, pascal_part, "
                   "pascal_person_part, pose_annotations.")
@click.option("--mirror", metavar="URL|DIR", callback=path_or_url,
              help="A directory holding the archives under their upstream names, or a base "
                   "URL tried before the upstream hosts.")
@click.option("--manifest", type=AbsolutePath(dir_okay=False, exists=True),
              help="Another source manifest (default: the one in the package, "
                   "pascal_person_pose/sources/manifest.json).")
@click.option("--retries", type=click.IntRange(min=0), default=3, show_default=True,
              help="Resumed attempts per URL after a cut or failed transfer.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), show_default=True,
              default=_DOWNLOAD_DEFAULTS.timeout,
              help="Seconds one archive may take in all (every URL and retry).")
@click.option("--min-rate", type=ByteSize(), show_default=True,
              default=f"{int(_DOWNLOAD_DEFAULTS.min_rate) >> 10}K",
              help=f"Bytes per second a transfer must keep up over each "
                   f"{_DOWNLOAD_DEFAULTS.window:g} s, else that URL is given up.")
@quiet_option
def download(raw: Path, only: tuple[str, ...], mirror: str | None, manifest: Path | None,
             retries: int, timeout: float, min_rate: int) -> None:
    """Fetch, check and extract the upstream sources into RAW (resumable).

    Sources that cannot be fetched (the pose annotations, handed out by the paper's authors,
    or a host that is down) are listed with the exact path to put them at; the command then
    exits with status 1 if an archive is missing, 0 when only the pose annotations are.
    """
    from pascal_person_pose.download import download as run_download

    limits = DownloadLimits(timeout=timeout, min_rate=min_rate,
                            window=_DOWNLOAD_DEFAULTS.window)
    report = run_download(raw, only=only or None, mirror=mirror, manifest=manifest,
                          retries=retries, limits=limits, progress=show_progress())
    for result in report.results:
        if result.status != "manual":
            click.echo(f"{result.name}: {result.status} ({result.message})")
    for result in report.manual:
        click.echo(f"{result.name}: MANUAL DOWNLOAD NEEDED\n  {result.message}", err=True)
    if any(r.name != "pose_annotations" for r in report.manual):
        sys.exit(1)


@click.command()
@click.argument("raw", type=AbsolutePath(exists=True, file_okay=False))
@click.argument("out", type=AbsolutePath(file_okay=False))
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes preparing images in parallel (default: all cores).")
@click.option("--copy-images", is_flag=True,
              help="Copy the JPEGs into OUT/images instead of linking to RAW.")
@click.option("--neck-in-head", is_flag=True,
              help="Count the PASCAL-Part neck as head (some releases do) instead of torso.")
@click.option("--side-order", type=click.Choice(["right_first", "left_first"]),
              default="right_first", show_default=True,
              help="Which side rows 2-7 of the pose files are: the person's right "
                   "(right_first) or left.")
@quiet_option
def prepare(raw: Path, out: Path, workers: int | None, copy_images: bool, neck_in_head: bool,
            side_order: str) -> None:
    """Build the canonical dataset OUT from the raw tree RAW (resumable)."""
    from pascal_person_pose.prepare import prepare as run_prepare

    summary = run_prepare(raw, out, workers=workers, copy_images=copy_images,
                          neck_in_head=neck_in_head, side_order=side_order,
                          progress=show_progress())
    rows = summary.rows()
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"{label:<{width}}  {value}")


COMMANDS = [download, prepare]
