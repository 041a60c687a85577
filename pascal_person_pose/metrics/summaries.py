"""Summaries every metric table shares: a mean that skips undefined values, JSON nulls.

An undefined value (a joint type without positives, a class without pixels) is NaN while
computing and ``null`` in JSON; a column mean is taken over the defined values only.
"""

from __future__ import annotations

import numpy as np


def mean_of_defined(values: np.ndarray) -> float:
    """Mean of the defined (non-NaN) values; NaN when none is defined."""
    values = np.asarray(values, dtype=np.float64)
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


def nullable(value: float) -> float | None:
    """A JSON-ready number: an undefined value (NaN) becomes None (null)."""
    return None if np.isnan(value) else float(value)
