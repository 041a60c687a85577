"""Progress bars of long jobs, one policy for the whole toolkit: tqdm on stderr, drawn only
when stderr is a terminal (a log file or a pipe gets no bar lines) and the caller allows it
(the CLI passes ``enabled=False`` after ``--quiet``)."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm import tqdm


def bar(iterable: Iterable | None = None, *, desc: str, total: int | None = None,
        unit: str = "it", enabled: bool = True, **kwargs) -> tqdm:
    """A tqdm bar on stderr; a silent one (same interface) when disabled or not a terminal."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr,
                disable=not (enabled and stderr_is_terminal()), dynamic_ncols=True, **kwargs)


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False
