"""`ppp validate`, `ppp score`, `ppp nms`, `ppp leaderboard`, `ppp challenge-bundle`: the
benchmark's jobs.

Thin: parse, call :mod:`..submission`, :mod:`..scoring`, :mod:`..leaderboard`, print. A
submission with problems prints one line per problem on stderr and exits 2.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from pascal_person_pose.challenge import DEFAULT_DOCKER_IMAGE
from pascal_person_pose.cli.conventions import (AbsolutePath, ByteSize, quiet_option,
                                                 show_progress)
from pascal_person_pose.layout import SPLITS
from pascal_person_pose.limits import SubmissionLimits
from pascal_person_pose.metrics.pose_ap import ALPHA, MIN_IOU
from pascal_person_pose.metrics.pose_nms import NMS_LIMITS
from pascal_person_pose.schema import SIZE_THRESHOLDS

_ROOT = click.argument("root", type=AbsolutePath(exists=True, file_okay=False))
_SUBMISSION = click.argument("submission", type=AbsolutePath(exists=True))
_SPLIT = click.option("--split", type=click.Choice(SPLITS), default="val", show_default=True)
_DEFAULTS = SubmissionLimits()


def _shown(size: int) -> str:
    return f"{size >> 30}G" if size % (1 << 30) == 0 else f"{size >> 20}M"


def _limits(command):
    """The options of :class:`~..limits.SubmissionLimits`, handed to ``command`` as ``limits``."""
    options = [
        click.option("--max-pose-size", "pose_bytes", type=ByteSize(),
                     default=_shown(_DEFAULTS.pose_bytes), show_default=True,
                     help="Refuse a pose.json larger than this (uncompressed)."),
        click.option("--max-member-size", "member_bytes", type=ByteSize(),
                     default=_shown(_DEFAULTS.member_bytes), show_default=True,
                     help="Refuse any other file (a part map) larger than this."),
        click.option("--max-total-size", "total_bytes", type=ByteSize(),
                     default=_shown(_DEFAULTS.total_bytes), show_default=True,
                     help="Refuse a submission whose files add up to more than this."),
        click.option("--max-ratio", "ratio", type=click.FloatRange(1), show_default=True,
                     default=_DEFAULTS.ratio,
                     help="Refuse a zip member over 1M that inflates more than this."),
        click.option("--max-files", "files", type=click.IntRange(1), show_default=True,
                     default=_DEFAULTS.files, help="Refuse a submission with more files."),
    ]

    @functools.wraps(command)
    def with_limits(**kwargs):
        names = ("pose_bytes", "member_bytes", "total_bytes", "ratio", "files")
        limits = SubmissionLimits(**{name: kwargs.pop(name) for name in names})
        return command(limits=limits, **kwargs)

    for option in reversed(options):
        with_limits = option(with_limits)
    return with_limits


def _fail(problems) -> None:
    for line in problems.lines():
        click.echo(f"error: {line}", err=True)
    sys.exit(2)


def _thresholds(ctx, param, value: str) -> tuple[float, ...]:
    try:
        bounds = tuple(float(v) for v in value.split(","))
    except ValueError:
        bounds = ()
    if len(bounds) != 3 or not 0 < bounds[0] < bounds[1] < bounds[2] < 1:
        raise click.BadParameter("three increasing comma-separated fractions of the image "
                                 "area, e.g. 0.005,0.02,0.08")
    return bounds


@click.command()
@_ROOT
@_SUBMISSION
@_SPLIT
@quiet_option
@_limits
def validate(root: Path, submission: Path, split: str, limits: SubmissionLimits) -> None:
    """Check SUBMISSION (directory or .zip) against the SPLIT of the dataset at ROOT.

    The submission format and every rule checked: docs/submission.md.
    """
    from pascal_person_pose.dataset import Dataset
    from pascal_person_pose.submission import read_submission, validate_submission

    with read_submission(submission, limits) as sub:
        problems = validate_submission(sub, Dataset(root, split), progress=show_progress())
    if problems:
        _fail(problems)
    click.echo(f"OK: {sub.summary()}")


@click.command()
@_ROOT
@_SUBMISSION
@_SPLIT
@click.option("--json", "json_out", type=AbsolutePath(dir_okay=False, allow_dash=True),
              help="Write the scores as JSON here ('-': stdout; keys: docs/metrics.md).")
@click.option("--coco-oks", is_flag=True,
              help="Also report COCO OKS keypoint AP (an extra, not the paper's metric).")
@click.option("--add-to", type=AbsolutePath(file_okay=False),
              help="Add the scores as a 'scored' row to this results directory (refused "
                   "if the method name is taken).")
@click.option("--method", help="Method name of the row (default: meta.json's method).")
@click.option("--replace", is_flag=True,
              help="With --add-to: replace the scored row of the same method.")
@click.option("--alpha", type=click.FloatRange(0, min_open=True), default=ALPHA, show_default=True,
              help="Pose mAP: a joint is correct within alpha x the GT head size.")
@click.option("--min-iou", type=click.FloatRange(0, 1, max_open=True), default=MIN_IOU,
              show_default=True,
              help="Pose mAP: pose-box IoU a match must exceed.")
@click.option("--size-thresholds", default=",".join(map(str, SIZE_THRESHOLDS)), show_default=True,
              callback=_thresholds, help="mIOU by size: XS/S/M/L bounds (fractions of the image).")
@quiet_option
@_limits
def score(root: Path, submission: Path, split: str, json_out: Path | None, coco_oks: bool,
          add_to: Path | None, method: str | None, replace: bool, alpha: float,
          min_iou: float, size_thresholds: tuple[float, ...], limits: SubmissionLimits) -> None:
    """Score SUBMISSION on the SPLIT of ROOT and print the paper's tables.

    Every number is defined, with its parameters and defaults, in docs/metrics.md.
    """
    from pascal_person_pose import atomic, leaderboard, results
    from pascal_person_pose.scoring import score as score_submission
    from pascal_person_pose.submission import InvalidSubmission, read_submission

    if replace and not add_to:
        raise click.UsageError("--replace only applies with --add-to")
    with read_submission(submission, limits) as sub:
        meta = sub.meta or {}
        method = method or meta.get("method")
        if add_to and not method:
            raise click.UsageError("--add-to needs --method (or a method in meta.json)")
        if add_to:
            results.plan_add(add_to, method, replace=replace)  # a clash fails before scoring
        try:
            scores = score_submission(root, sub, split, alpha=alpha, min_iou=min_iou,
                                      size_thresholds=size_thresholds, coco_oks=coco_oks,
                                      progress=show_progress())
        except InvalidSubmission as e:
            _fail(e.problems)
    click.echo(leaderboard.score_tables_text(scores, method or "submission"))
    if json_out:
        atomic.write_json(json_out, scores, indent=2)
        if json_out != "-":
            click.echo(f"wrote {json_out}")
    if add_to:
        citation = meta.get("paper") or meta.get("url") or ""
        doc = results.result_from_score(scores, method, citation, meta or None)
        click.echo(f"wrote {results.add_result(add_to, doc, replace=replace)}")


@click.command()
@_SUBMISSION
@click.argument("out", type=AbsolutePath())
@click.option("--head", type=float, default=NMS_LIMITS["head"], show_default=True,
              help="Head-box IoU limit.")
@click.option("--upper", type=float, default=NMS_LIMITS["upper"], show_default=True,
              help="Upper-body IoU limit.")
@click.option("--lower", type=float, default=NMS_LIMITS["lower"], show_default=True,
              help="Lower-body IoU limit.")
@click.option("--whole", type=float, default=NMS_LIMITS["whole"], show_default=True,
              help="Whole-body IoU limit.")
@_limits
def nms(submission: Path, out: Path, head: float, upper: float, lower: float, whole: float,
        limits: SubmissionLimits) -> None:
    """Pose NMS (paper Sec. 4.1) of SUBMISSION's poses, per image; write OUT (dir or .zip)."""
    from pascal_person_pose.submission import InvalidSubmission, nms_submission

    try:
        kept, total = nms_submission(submission, out, limits, head=head, upper=upper,
                                     lower=lower, whole=whole)
    except InvalidSubmission as e:
        _fail(e.problems)
    click.echo(f"kept {kept} of {total} poses; wrote {out}")


@click.command(name="leaderboard")
@click.argument("results", type=AbsolutePath(exists=True, file_okay=False))
@click.option("--out", type=AbsolutePath(file_okay=False), required=True,
              help="Folder for leaderboard.md/.html/.csv and the plots.")
@quiet_option
def leaderboard_command(results: Path, out: Path) -> None:
    """Regenerate the leaderboard (Markdown, HTML, CSV, plots) from RESULTS/*.json."""
    from pascal_person_pose.leaderboard import write_leaderboard

    for path in write_leaderboard(results, out, progress=show_progress()):
        click.echo(f"wrote {path}")


@click.command(name="challenge-bundle")
@_ROOT
@_SPLIT
@click.option("--out", type=AbsolutePath(), required=True,
              help="The bundle: a .zip to upload to Codabench, or a new directory to edit.")
@click.option("--title", help="Competition title (default: names the data and the split).")
@click.option("--docker-image", default=DEFAULT_DOCKER_IMAGE, show_default=True,
              help="Image the platform scores in: Python >= 3.11 with numpy, scipy, "
                   "pycocotools, opencv-python-headless and pillow.")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), help="Phase start (default: today).")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), help="Phase end (default: none).")
@quiet_option
def challenge_bundle(root: Path, split: str, out: Path, title: str | None, docker_image: str,
                     start, end) -> None:
    """Write a Codabench competition bundle that scores SPLIT of ROOT with ppp score."""
    from pascal_person_pose.challenge import write_bundle

    path = write_bundle(root, split, out, title=title, docker_image=docker_image,
                        start=start and start.date(), end=end and end.date(),
                        progress=show_progress())
    click.echo(f"wrote {path}: upload it at Codabench (Benchmarks > Management > Upload)")


COMMANDS = [validate, score, nms, leaderboard_command, challenge_bundle]
