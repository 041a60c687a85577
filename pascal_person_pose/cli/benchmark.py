"""`ppp validate`, `ppp score`, `ppp compare`, `ppp analyze`, `ppp nms`, `ppp leaderboard`,
`ppp challenge-bundle`: the benchmark's jobs.

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
from pascal_person_pose.metrics.pose_ap import ALPHA, JITTER, MIN_IOU
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
@click.option("--details", type=AbsolutePath(dir_okay=False),
              help="Write per-image records (JSON lines: each person's match, distances, "
                   "hits, ADK terms; each prediction's assignment; part confusion) here.")
@click.option("--bootstrap", "resamples", type=click.IntRange(min=1),
              help="Add a 95% interval to every table number: N bootstrap resamples of the "
                   "split's images (percentile method).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the bootstrap resamples.")
@quiet_option
@_limits
def score(root: Path, submission: Path, split: str, json_out: Path | None, coco_oks: bool,
          add_to: Path | None, method: str | None, replace: bool, alpha: float,
          min_iou: float, size_thresholds: tuple[float, ...], details: Path | None,
          resamples: int | None, seed: int, limits: SubmissionLimits) -> None:
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
                                      progress=show_progress(), details=details,
                                      resamples=resamples, seed=seed)
        except InvalidSubmission as e:
            _fail(e.problems)
    click.echo(leaderboard.score_tables_text(scores, method or "submission"))
    click.echo(f"Scored on the {split} split, ground truth {scores['params']['ground_truth']} "
               "(docs/leaderboard.md)\n")
    if resamples:
        from pascal_person_pose.bootstrap import interval_lines

        click.echo("\n".join(interval_lines(scores["intervals"], scores["bootstrap"])) + "\n")
    if json_out:
        atomic.write_json(json_out, scores, indent=2)
        if json_out != "-":
            click.echo(f"wrote {json_out}")
    if details:
        click.echo(f"wrote {details}")
    if add_to:
        citation = meta.get("paper") or meta.get("url") or ""
        doc = results.result_from_score(scores, method, citation, meta or None)
        click.echo(f"wrote {results.add_result(add_to, doc, replace=replace)}")


@click.command()
@_ROOT
@click.argument("submission_a", type=AbsolutePath(exists=True))
@click.argument("submission_b", type=AbsolutePath(exists=True))
@_SPLIT
@click.option("--resamples", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Bootstrap resamples of the split's images (the same for both).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "json_out", type=AbsolutePath(dir_okay=False),
              help="Write the comparison here.")
@quiet_option
@_limits
def compare(root: Path, submission_a: Path, submission_b: Path, split: str, resamples: int,
            seed: int, json_out: Path | None, limits: SubmissionLimits) -> None:
    """Compare SUBMISSION_A with SUBMISSION_B on every table number: A - B, its paired
    bootstrap interval (95%, resampling images) and p-value."""
    from pascal_person_pose import atomic
    from pascal_person_pose.bootstrap import compare as compare_evaluations
    from pascal_person_pose.bootstrap import comparison_lines
    from pascal_person_pose.scoring import evaluation
    from pascal_person_pose.submission import InvalidSubmission, read_submission

    with read_submission(submission_a, limits) as sub_a, \
            read_submission(submission_b, limits) as sub_b:
        try:
            a, b = (evaluation(root, s, split, progress=show_progress()) for s in (sub_a, sub_b))
        except InvalidSubmission as e:
            _fail(e.problems)
    result = compare_evaluations(a.statistics, b.statistics, a.summarize(), b.summarize(),
                                 resamples, seed)
    names = [_name(a.submission, "A"), _name(b.submission, "B")]
    if names[0] == names[1]:
        names = ["A", "B"]
    click.echo("\n".join(comparison_lines(result, *names)))
    if json_out:
        atomic.write_json(json_out, {"a": str(submission_a), "b": str(submission_b),
                                     "split": split, **result}, indent=2)
        click.echo(f"wrote {json_out}")


@click.command()
@_ROOT
@_SUBMISSION
@_SPLIT
@click.option("--out", type=AbsolutePath(file_okay=False), required=True,
              help="Folder for report.html, the plots and analysis.json.")
@click.option("--alpha", type=click.FloatRange(0, min_open=True), default=ALPHA,
              show_default=True, help="A joint is good within alpha x the GT head size.")
@click.option("--jitter", type=click.FloatRange(0, min_open=True), default=JITTER,
              show_default=True, help="A near miss lies within this many head sizes.")
@quiet_option
@_limits
def analyze(root: Path, submission: Path, split: str, out: Path, alpha: float,
            jitter: float, limits: SubmissionLimits) -> None:
    """Diagnose SUBMISSION's errors on the SPLIT of ROOT: pose error types by joint and
    person size, the AP each costs, part confusion, mIOU by size, worst images."""
    from pascal_person_pose.analysis import Analysis
    from pascal_person_pose.scoring import evaluation
    from pascal_person_pose.submission import InvalidSubmission, read_submission

    if jitter <= alpha:
        raise click.BadParameter(f"must exceed --alpha ({alpha})", param_hint="--jitter")
    with read_submission(submission, limits) as sub:
        try:
            evaluated = evaluation(root, sub, split, alpha=alpha, progress=show_progress())
        except InvalidSubmission as e:
            _fail(e.problems)
        analysis = Analysis(evaluated, jitter=jitter)
        analysis.run()
    for path in analysis.write_report(out):
        click.echo(f"wrote {path}")


def _name(submission, default: str) -> str:
    return (submission.meta or {}).get("method") or default


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


COMMANDS = [validate, score, compare, analyze, nms, leaderboard_command, challenge_bundle]
