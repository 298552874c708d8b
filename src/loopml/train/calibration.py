"""Calibrating a binary classifier's scores for the label-free performance estimate.

The monitor estimates a window's metrics without labels by treating each score as the probability
that its row is positive (confidence-based performance estimation). That holds only for calibrated
scores, and many models are not: a LightGBM fraud model trained on 0.6 % positives scores its
quietest decile at 0.0002 while 0.1 % of it is fraud. So at training time the holdout (rows the
final model never learned from) measures the calibration error; above the bound a calibrator is
fitted there: isotonic regression with enough positives and negatives, Platt scaling (a logistic
fit on the score's log-odds) otherwise. It is kept with the reference profile, in the registry's
safe format (:mod:`loopml.registry.serialize` trusts :class:`ScoreCalibrator`); served scores are
never changed, only the estimate reads it.

**The calibration error** is the share of the positives that the scores put in the wrong place:
``sum over score bins |observed positives - sum of scores| / positives`` on ten quantile bins of the
scores (an expected calibration error relative to the base rate, so a rare-event model is judged on
its own scale). A perfectly calibrated model shows some error by chance; the bound is the larger of
:data:`CALIBRATION_BOUND` and the 95th percentile of the error under the scores' own labels (labels
drawn from the scores, :data:`NULL_DRAWS` times), so a small holdout is not recalibrated on noise.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

__all__ = [
    "CALIBRATION_BOUND",
    "ISOTONIC_MIN_CLASS",
    "CalibrationMethod",
    "ScoreCalibrator",
    "calibration_error",
    "fit_calibrator",
]

CALIBRATION_BOUND = 0.1  # a tenth of the positives misplaced across score bins
ISOTONIC_MIN_CLASS = 100  # fewer positives (or negatives): Platt scaling, which cannot overfit as much
NULL_DRAWS = 200
_CLIP = 1e-6

CalibrationMethod = Literal["isotonic", "platt"]


class ScoreCalibrator:
    """Maps a score to the probability that its row is positive: isotonic (a non-decreasing step
    function, interpolated) or Platt (a logistic function of the score's log-odds).

    Learned state (plain arrays and floats, so the registry's safe format can hold it): ``x_`` and
    ``y_`` (isotonic knots) or ``a_`` and ``b_`` (Platt).

    Examples
    --------
    >>> calibrator = ScoreCalibrator("isotonic").fit(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    >>> calibrator.predict(np.array([0.05, 0.85])).tolist()
    [0.0, 1.0]
    """

    def __init__(self, method: CalibrationMethod = "isotonic") -> None:
        self.method = method

    def fit(self, score: np.ndarray, y: np.ndarray) -> ScoreCalibrator:
        """Fit on scores and their 0/1 labels."""
        s, target = np.asarray(score, dtype=float), np.asarray(y, dtype=float)
        if self.method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, target)
            self.x_ = np.asarray(fitted.X_thresholds_, dtype=float)
            self.y_ = np.asarray(fitted.y_thresholds_, dtype=float)
        elif self.method == "platt":
            from sklearn.linear_model import LogisticRegression

            fitted_lr = LogisticRegression(C=1e6).fit(_logit(s)[:, None], target.astype(int))
            self.a_ = float(fitted_lr.coef_[0, 0])
            self.b_ = float(fitted_lr.intercept_[0])
        else:
            raise ValueError(f"calibration method must be 'isotonic' or 'platt'; got {self.method!r}")
        return self

    def predict(self, score: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of ``score``."""
        s = np.asarray(score, dtype=float)
        if self.method == "isotonic":
            if not hasattr(self, "x_"):
                raise ValueError("ScoreCalibrator is not fitted; call fit first.")
            return np.interp(s, self.x_, self.y_)
        if not hasattr(self, "a_"):
            raise ValueError("ScoreCalibrator is not fitted; call fit first.")
        return np.asarray(1.0 / (1.0 + np.exp(-(self.a_ * _logit(s) + self.b_))), dtype=float)

    def __repr__(self) -> str:
        return f"ScoreCalibrator(method={self.method!r})"


def _logit(score: np.ndarray) -> np.ndarray:
    p = np.clip(score, _CLIP, 1 - _CLIP)
    return np.asarray(np.log(p / (1 - p)), dtype=float)


def calibration_error(y: np.ndarray, score: np.ndarray, bins: int = 10) -> float:
    """The share of the positives misplaced across ``bins`` quantile bins of the scores (see the
    module's docstring); NaN without a positive.

    Examples
    --------
    >>> calibration_error(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5]))
    0.0
    """
    target, s = np.asarray(y, dtype=float), np.asarray(score, dtype=float)
    positives = float(target.sum())
    if positives <= 0 or not len(s):
        return float("nan")
    edges = np.unique(np.quantile(s, np.linspace(0, 1, bins + 1)[1:-1]))
    which = np.searchsorted(edges, s, side="right")
    observed = np.bincount(which, weights=target, minlength=len(edges) + 1)
    expected = np.bincount(which, weights=s, minlength=len(edges) + 1)
    return float(np.abs(observed - expected).sum() / positives)


def _null_bound(score: np.ndarray, seed: int) -> float:
    """The 95th percentile of :func:`calibration_error` when the labels follow the scores."""
    rng = np.random.default_rng(seed)
    s = np.clip(np.asarray(score, dtype=float), 0.0, 1.0)
    errors = [calibration_error((rng.random(len(s)) < s).astype(float), s) for _ in range(NULL_DRAWS)]
    finite = [e for e in errors if np.isfinite(e)]
    return float(np.quantile(finite, 0.95)) if finite else float("inf")


def fit_calibrator(
    y: np.ndarray, score: np.ndarray, *, seed: int = 0
) -> tuple[ScoreCalibrator | None, dict[str, Any]]:
    """A calibrator for ``score`` fitted on labels ``y`` when the calibration error is over its
    bound (None otherwise), and what was found: ``error``, ``bound``, ``method`` (None when the
    scores are left as they are), ``error_after``, ``rows``, ``positives``."""
    target, s = np.asarray(y, dtype=float), np.asarray(score, dtype=float)
    positives, negatives = int(target.sum()), int(len(target) - target.sum())
    error = calibration_error(target, s)
    bound = max(CALIBRATION_BOUND, _null_bound(s, seed))
    info: dict[str, Any] = {
        "error": error,
        "bound": bound,
        "method": None,
        "rows": len(s),
        "positives": positives,
    }
    if not positives or not negatives or not (np.isfinite(error) and error > bound):
        return None, info
    method: CalibrationMethod = "isotonic" if min(positives, negatives) >= ISOTONIC_MIN_CLASS else "platt"
    calibrator = ScoreCalibrator(method).fit(s, target)
    info.update(method=method, error_after=calibration_error(target, calibrator.predict(s)))
    return calibrator, info
