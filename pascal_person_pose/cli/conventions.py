"""The conventions every command of ``ppp`` and ``ppp-baseline`` follows: absolute path
arguments, the quiet switch, and command lists that show whole sentences.

Paths are resolved once, here at the boundary: every path argument becomes an absolute
:class:`pathlib.Path` against the directory the user typed the command in, so no library
code (a Flask app, a worker process, a tool that changes directory) can resolve a relative
path against anything else.

``--quiet`` is accepted by the command groups (``ppp --quiet score ...``) and by each
command with a progress bar (``ppp score ... --quiet``); either silences every bar of the
run. The bars themselves are :mod:`pascal_person_pose.progress`'s.

A group's ``--help`` lists each command with the whole first paragraph of its docstring
(click would cut it at 45-odd columns or at the first full stop, "Pose NMS (paper Sec.").
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

_QUIET_KEY = "pascal_person_pose.quiet"
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


class AbsolutePath(click.Path):
    """``click.Path`` that returns an absolute :class:`~pathlib.Path` (``..`` collapsed,
    symbolic links kept as the user named them); with ``allow_dash``, ``-`` (stdout for
    the atomic writers) stays ``-``."""

    def __init__(self, **kwargs):
        kwargs.setdefault("path_type", Path)
        super().__init__(**kwargs)

    def convert(self, value, param, ctx) -> Path | str:
        if self.allow_dash and value == "-":
            return value
        return Path(os.path.abspath(super().convert(value, param, ctx)))


class ByteSize(click.ParamType):
    """A byte count: 123, 64K, 128M or 2G (binary units)."""

    name = "size"
    _UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", str(value), re.IGNORECASE)
        if match is None:
            self.fail(f"{value!r} is not a size such as 500K, 128M or 2G", param, ctx)
        return int(match.group(1)) * self._UNITS[match.group(2).upper()]


def path_or_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Callback of options that take a URL or a directory: a directory is made absolute."""
    if value is None or _URL.match(value):
        return value
    return os.path.abspath(value)


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[_QUIET_KEY] = True


quiet_option = click.option("--quiet", "-q", is_flag=True, expose_value=False,
                            is_eager=True, callback=_set_quiet,
                            help="No progress bars (they are shown only on a terminal).")


def show_progress() -> bool:
    """False once ``--quiet`` was given anywhere on the command line of this run."""
    ctx = click.get_current_context(silent=True)
    return not (ctx is not None and ctx.meta.get(_QUIET_KEY, False))


class SentenceGroup(click.Group):
    """A command group whose ``--help`` lists each command's whole summary, wrapped."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, summary(command)) for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def summary(command: click.Command) -> str:
    """The command's ``short_help``, else the first paragraph of its help, on one line."""
    if command.short_help:
        return command.short_help
    first = (command.help or "").split("\n\n", 1)[0]
    return " ".join(word for word in first.split() if word != "\b")
