"""The same-person probability P_ij: one logistic regression per oriented joint-type pair.

Input of the regression of type pair ``k`` (DeeperCut's basis, as pose-tensorflow does):
``[1, z, exp(-z), f(Ps)]`` where ``z`` is f(Pn) min-max normalised with the range seen in
training for that pair type (bounded below by -50 so that ``exp(-z)`` stays finite); the
``exp(-z)`` terms let a linear model favour small offset errors sharply. Without segment
features (the paper's "w/o seg" ablation) the input is ``[1, z, exp(-z)]``.

Each pair type's regression is fitted on its own rows (the joint problem is
block-diagonal) by Newton's method in a trust region (scipy's ``trust-exact``: with at
most 19 weights the exact Hessian is cheap, and a few passes over the rows converge; one
L-BFGS run over all 91 blocks at once took 2-3 minutes on 1.5 M pairs, and stopped
short of the optimum), with an L2 penalty on every weight, which also keeps a pair type
seen with one label only at finite weights. A model is saved as a plain ``.npz`` (no
pickle): the weights, the normalisation ranges, the switch and the feature parameters as
JSON text.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from pascal_person_pose.atomic import write_bytes
from pascal_person_pose.errors import InputError

from .features import (NUM_OFFSET_FEATURES, NUM_PAIR_TYPES, NUM_SEGMENT_FEATURES,
                       FeatureParams, PairFeatures)

FORMAT = "fcrf-pairwise-v1"
_LOWEST_Z = -50.0


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


@dataclass(frozen=True)
class PairwiseModel:
    weights: np.ndarray  # (91, D) float64, D = 9 (+10 with segment features)
    lo: np.ndarray  # (91, 4) f(Pn) minimum per pair type in training
    hi: np.ndarray  # (91, 4) f(Pn) maximum per pair type in training
    use_segment_features: bool
    feature_params: FeatureParams = FeatureParams()

    @property
    def num_inputs(self) -> int:
        return 1 + 2 * NUM_OFFSET_FEATURES + NUM_SEGMENT_FEATURES * self.use_segment_features

    def design(self, pair_type: np.ndarray, offset: np.ndarray,
               segment: np.ndarray | None) -> np.ndarray:
        """The regression input (N, D) of pairs with features ``offset`` and ``segment``."""
        span = np.maximum(self.hi[pair_type] - self.lo[pair_type], 1e-9)
        # Below the training range (z < 0) exp(-z) extrapolates: a smaller error than any
        # seen reads as more alike. Bounded, so that it stays finite: a pair type fitted on
        # two nearly equal errors has a tiny span, and z reached -1e5 (exp overflowed to inf,
        # and an unfitted weight of 0 times inf is NaN). At -50 the term is 5e21.
        z = np.maximum((offset - self.lo[pair_type]) / span, _LOWEST_Z)
        parts = [np.ones((len(pair_type), 1)), z, np.exp(-z)]
        if self.use_segment_features:
            if segment is None:
                raise ValueError("this model uses segment features: pass the part scores Ps")
            parts.append(segment)
        return np.concatenate(parts, axis=1)

    def probability(self, features: PairFeatures) -> np.ndarray:
        """P_ij (N,) of the pairs in ``features``."""
        X = self.design(features.pair_type, features.offset, features.segment)
        return _sigmoid((X * self.weights[features.pair_type]).sum(axis=1))

    @classmethod
    def fit(cls, pair_type: np.ndarray, offset: np.ndarray, segment: np.ndarray | None,
            same: np.ndarray, use_segment_features: bool = True,
            feature_params: FeatureParams = FeatureParams(), l2: float = 1.0) -> PairwiseModel:
        """Fit all pair types on labelled pairs (``same`` (N,) bool: one GT person)."""
        lo = np.zeros((NUM_PAIR_TYPES, NUM_OFFSET_FEATURES))
        hi = np.ones((NUM_PAIR_TYPES, NUM_OFFSET_FEATURES))
        seen = np.unique(pair_type)
        for k in seen:  # 91 at most: the ranges of each pair type's offset features
            rows = offset[pair_type == k]
            lo[k], hi[k] = rows.min(axis=0), rows.max(axis=0)
        untrained = cls(np.zeros((NUM_PAIR_TYPES, 0)), lo, hi, use_segment_features,
                        feature_params)
        X = untrained.design(pair_type, offset, segment)
        y = np.asarray(same, dtype=np.float64)
        weights = np.zeros((NUM_PAIR_TYPES, X.shape[1]))
        for k in seen:
            rows = pair_type == k
            weights[k] = _fit_logistic(X[rows], y[rows], l2)
        return cls(weights, lo, hi, use_segment_features, feature_params)

    def save(self, path: str | os.PathLike) -> None:
        """Write the model as a pickle-free ``.npz`` (atomically)."""
        buffer = io.BytesIO()
        np.savez(buffer, format=np.array(FORMAT), weights=self.weights, lo=self.lo,
                 hi=self.hi, use_segment_features=np.array(self.use_segment_features),
                 feature_params=np.array(json.dumps(self.feature_params.to_dict())))
        write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> PairwiseModel:
        """Read a model written by :meth:`save`; anything else (a truncated or foreign file,
        wrong shapes or types, non-finite weights) raises ``InputError`` naming the field."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except Exception as error:  # zipfile, zlib, numpy and OS errors of a damaged file
            raise InputError(path, f"not a pairwise model .npz ({type(error).__name__}: "
                                   f"{str(error)[:80]})".replace("\n", " ")) from None
        for key in ("format", "weights", "lo", "hi", "use_segment_features", "feature_params"):
            if key not in arrays:
                raise InputError(path, "missing array", field=key)
        text = {key: _scalar(arrays[key], np.str_, path, key)
                for key in ("format", "feature_params")}
        if text["format"] != FORMAT:
            raise InputError(path, f"format {text['format'][:40]}, expected {FORMAT}",
                             field="format")
        use_segment = bool(_scalar(arrays["use_segment_features"], np.bool_, path,
                                   "use_segment_features"))
        try:
            feature_params = FeatureParams.from_dict(json.loads(text["feature_params"]))
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
            raise InputError(path, f"not feature parameters ({str(error)[:80]})",
                             field="feature_params") from None
        dims = 1 + 2 * NUM_OFFSET_FEATURES + NUM_SEGMENT_FEATURES * use_segment
        expected = {"weights": (NUM_PAIR_TYPES, dims), "lo": (NUM_PAIR_TYPES, NUM_OFFSET_FEATURES),
                    "hi": (NUM_PAIR_TYPES, NUM_OFFSET_FEATURES)}
        numbers = {}
        for key, shape in expected.items():
            array = arrays[key]
            if array.dtype.kind not in "fiu":
                raise InputError(path, f"dtype {array.dtype}, expected numbers", field=key)
            if array.shape != shape:
                raise InputError(path, f"shape {array.shape}, expected {shape}", field=key)
            if not np.isfinite(array).all():
                raise InputError(path, "holds a non-finite number", field=key)
            numbers[key] = array.astype(np.float64)
        return cls(numbers["weights"], numbers["lo"], numbers["hi"], use_segment,
                   feature_params)


def _fit_logistic(X: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """The weights minimising the L2-penalised logistic loss of rows ``X`` with labels ``y``."""
    def loss_and_gradient(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = X @ w
        loss = np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * (w @ w)
        return float(loss), X.T @ (_sigmoid(z) - y) + l2 * w

    def hessian(w: np.ndarray) -> np.ndarray:
        p = _sigmoid(X @ w)
        return (X * (p * (1 - p))[:, None]).T @ X + l2 * np.eye(len(w))

    result = minimize(loss_and_gradient, np.zeros(X.shape[1]), jac=True, hess=hessian,
                      method="trust-exact", options={"gtol": 1e-8, "maxiter": 200})
    return result.x


def _scalar(array: np.ndarray, kind: type, path: str | os.PathLike, field: str):
    """The one value of a 0-d array of ``kind`` (a string or a bool)."""
    if array.shape != () or not np.issubdtype(array.dtype, kind):
        raise InputError(path, f"expected one {kind.__name__.strip('_')}, got an array of "
                               f"shape {array.shape} and dtype {array.dtype}", field=field)
    return array.item()
