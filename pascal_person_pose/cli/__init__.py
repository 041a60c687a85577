"""`ppp`: the command line. Thin: each job's module parses options, calls the library and
prints. Bad input (``InputError``, ``click.UsageError``) ends with one line and exit 2, and
so does a file the system refuses (an ``OSError`` naming a file: permission denied, disk
full); any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import click

from pascal_person_pose.errors import InputError, os_error
from pascal_person_pose.cli import benchmark, data, inspect, label, synth
from pascal_person_pose.cli.conventions import SentenceGroup, quiet_option

JOB_MODULES = (synth, data, inspect, benchmark, label)
# click >= 8.2 shows a bare group's help by raising this usage error (8.1 exits instead)
_HELP_REQUESTS = getattr(click.exceptions, "NoArgsIsHelpError", ())


class _Group(SentenceGroup):
    def make_context(self, info_name, args, parent=None, **extra):
        try:  # the group's own options (`ppp --bad`)
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as e:
            _fail_usage(e, info_name or "ppp")

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as e:
            _fail(e)
        except click.UsageError as e:
            _fail_usage(e, ctx.command_path)
        except OSError as e:  # (click itself ends a closed pipe quietly)
            if e.filename is None:
                raise
            _fail(os_error(e))


def _fail_usage(error: click.UsageError, where: str) -> None:
    """A wrong option or argument in one line (click's own form takes four); a group run
    without a command still shows its help."""
    if isinstance(error, _HELP_REQUESTS):
        raise error
    where = error.ctx.command_path if error.ctx is not None else where
    _fail(InputError(None, f"{where}: {error.format_message()} (see {where} --help)"))


def _fail(error: InputError) -> None:
    click.echo(f"error: {error}", err=True)
    sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pascal-person-pose")
@quiet_option
def main() -> None:
    """PASCAL-Person-Part with 14 joints: download, prepare, inspect, score, label.

    The formats, the submission rules and the metrics are specified in the project's docs/
    (formats.md, submission.md, metrics.md).
    """


for _module in JOB_MODULES:
    for _command in _module.COMMANDS:
        main.add_command(_command)
