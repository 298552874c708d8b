"""An honest label-free estimate: calibrated, with an interval, back-tested against the labels as
they arrive, and marked unreliable as soon as they disagree with it.

The estimate (:mod:`loopml.monitor.estimate`) rests on two assumptions: that the scores are
calibrated, and that the relation between inputs and outcome has not changed since the reference.
The first is handled at training (the reference's calibrator, :mod:`loopml.train.calibration`). The
second cannot be checked without labels, so every labelled window of the monitored version is
**back-tested**: the estimate the monitor would have given from its scores alone, against the
metrics realized once its labels came in. The latest labelled window is the check: the estimate is
**unreliable** when, on its labelled rows,

- the count of positives is implausible under the calibrated scores (two-sided p-value under
  :data:`DISAGREE_P`), or
- a realized metric lies more than :data:`DISAGREE_Z` standard deviations of the estimate's draws
  from it (a two-sided 0.1 % test), or
- the concept-drift check (the positives' scores against the reference's) flags drift.

The check looks at the newest :data:`RECENT_WINDOWS` labelled windows, not only the latest: one
window whose few positives happen to fit the old relation does not make an estimate reliable again
while the windows just before it contradicted it. An unreliable estimate says why, and is then
re-calibrated on the labelled rows from the first disagreeing window of those on: the newest evidence
of the new relation between scores and outcome, instead of the reference's, until a new version is
trained. Its interval then also carries the uncertainty of that small re-calibration (the
calibrator refitted on :data:`RESAMPLES` bootstrap resamples of those rows), so an estimate that
rests on a few days of labels says so by being wide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopml.enums import AlertKind
from loopml.errors import ArtifactIntegrityError
from loopml.monitor.drift import DriftResult
from loopml.monitor.estimate import (
    DRAWS,
    METRICS,
    Estimate,
    expected_metrics,
    metrics_of_labels,
    positives_p_value,
    widened,
)
from loopml.registry import loads
from loopml.store import Store, sha256_bytes
from loopml.train.calibration import ISOTONIC_MIN_CLASS, CalibrationMethod, ScoreCalibrator
from loopml.validate.profile import Profile

__all__ = [
    "BACKTEST_WINDOWS",
    "DISAGREE_P",
    "DISAGREE_Z",
    "RECENT_WINDOWS",
    "RESAMPLES",
    "HonestEstimate",
    "backtest",
    "estimate_alerts",
    "honest_estimate",
    "reference_calibrator",
]

DISAGREE_P = 0.001
DISAGREE_Z = 3.29  # two-sided 0.1 %
RECENT_WINDOWS = 7  # the newest labelled windows whose disagreement makes the estimate unreliable
RESAMPLES = 20  # bootstrap refits of a re-calibration, for its share of the interval
BACKTEST_WINDOWS = 90  # the newest labelled windows back-tested on each pass


def reference_calibrator(store: Store, profile: Profile | None) -> ScoreCalibrator | None:
    """The estimate's calibrator saved with the reference profile (None when the scores needed
    none), checked against its recorded SHA-256 and read in the registry's safe format."""
    found = (profile.calibration or {}) if profile is not None else {}
    key = found.get("artifact")
    if not key:
        return None
    data = store.artifacts.get_bytes(key)
    if sha256_bytes(data) != found.get("sha256"):
        raise ArtifactIntegrityError(
            f"the estimate's calibrator '{key}' does not match its recorded SHA-256; refusing to load it.",
            hint="Restore the original file, or train a new version.",
        )
    calibrator = loads(data)
    if not isinstance(calibrator, ScoreCalibrator):
        raise ArtifactIntegrityError(f"'{key}' is not a score calibrator; refusing to use it.")
    return calibrator


def _probability(calibrator: ScoreCalibrator | None, score: np.ndarray) -> np.ndarray:
    return score if calibrator is None else calibrator.predict(score)


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def check_window(
    score: np.ndarray, labels: np.ndarray, calibrator: ScoreCalibrator | None, threshold: float
) -> dict[str, Any]:
    """One labelled window's back-test: the estimate from its labelled rows' scores against the
    metrics their labels give, and whether they disagree (see the module's docstring)."""
    p = _probability(calibrator, score)
    estimate = expected_metrics(score, p, threshold=threshold)
    realized = metrics_of_labels(score, labels, threshold)
    reasons = []
    count_p = positives_p_value(labels, p)
    if count_p < DISAGREE_P:
        reasons.append(
            f"{int(labels.sum())} positives among {len(labels):,} labels where the calibrated scores "
            f"expect {estimate.expected_positives:.1f} (p={count_p:.2g})"
        )
    for metric in ("average_precision", "roc_auc"):
        value, spread = realized[metric], estimate.spread.get(metric, np.nan)
        if np.isfinite(value) and np.isfinite(spread) and spread > 0:
            z = (value - estimate.values[metric]) / spread
            if abs(z) > DISAGREE_Z:
                reasons.append(
                    f"realized {metric} {value:.3f} against the estimated "
                    f"{estimate.values[metric]:.3f} ({z:+.1f} standard deviations)"
                )
    covered = {
        m: bool(lo <= realized[m] <= hi)
        for m, (lo, hi) in estimate.intervals.items()
        if np.isfinite(realized[m]) and np.isfinite(lo)
    }
    return {
        "labels": len(labels),
        "positives": int(labels.sum()),
        "expected_positives": estimate.expected_positives,
        "estimated": {m: _number(v) for m, v in estimate.values.items()},
        "interval": {m: [_number(lo), _number(hi)] for m, (lo, hi) in estimate.intervals.items()},
        "realized": {m: _number(v) for m, v in realized.items()},
        "covered": covered,
        "agrees": not reasons,
        "reasons": reasons,
    }


def backtest(
    frame: pd.DataFrame,
    calibrator: ScoreCalibrator | None,
    *,
    version: int,
    window: pd.Timedelta,
    threshold: float,
    min_labels: int,
) -> list[dict[str, Any]]:
    """:func:`check_window` on each window of ``frame`` with at least ``min_labels`` labels on
    predictions of ``version`` (the newest :data:`BACKTEST_WINDOWS`), oldest first."""
    own = frame[(frame["model_version"] == version) & frame["label"].notna()]
    if own.empty:
        return []
    found = []
    grouper = pd.Grouper(key="time", freq=pd.tseries.frequencies.to_offset(window))
    for start, rows in own.groupby(grouper):
        if len(rows) >= min_labels:
            found.append((start, rows))
    out = []
    for start, rows in found[-BACKTEST_WINDOWS:]:
        labels = pd.to_numeric(rows["label"], errors="coerce").to_numpy(dtype=float)
        checked = check_window(rows["score"].to_numpy(dtype=float), labels, calibrator, threshold)
        out.append({"window_start": start, **checked})
    return out


def _summary(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean absolute error and interval coverage of the back-test, per metric."""
    out: dict[str, Any] = {"windows": len(windows), "mae": {}, "coverage": {}}
    for metric in METRICS:
        pairs = [
            (w["estimated"][metric], w["realized"][metric])
            for w in windows
            if w["estimated"].get(metric) is not None and w["realized"].get(metric) is not None
        ]
        if pairs:
            out["mae"][metric] = float(np.mean([abs(a - b) for a, b in pairs]))
        hits = [w["covered"][metric] for w in windows if metric in w["covered"]]
        if hits:
            out["coverage"][metric] = float(np.mean(hits))
    return out


@dataclass(frozen=True)
class HonestEstimate:
    """The current window's estimate and how far to trust it (``to_dict`` is the monitor report's
    ``estimate``)."""

    estimate: Estimate
    reliable: bool
    reasons: list[str] = field(default_factory=list)
    checked_window: pd.Timestamp | None = None
    unreliable_since: pd.Timestamp | None = None  # the first recent window that disagreed
    calibration: dict[str, Any] = field(default_factory=dict)
    backtest: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.estimate.to_dict(),
            "reliable": self.reliable,
            "reasons": self.reasons,
            "checked_window": self.checked_window,
            "unreliable_since": self.unreliable_since,
            "calibration": self.calibration,
            "backtest": {**_summary(self.backtest), "per_window": self.backtest},
        }


def _disagreeing(windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest :data:`RECENT_WINDOWS` back-tested windows whose labels disagreed, oldest first."""
    return [w for w in windows[-RECENT_WINDOWS:] if not w["agrees"]]


def _recent_labels(frame: pd.DataFrame, version: int, since: pd.Timestamp) -> pd.DataFrame:
    return frame[(frame["model_version"] == version) & frame["label"].notna() & (frame["time"] >= since)]


def _recalibrated(
    frame: pd.DataFrame, first: pd.Timestamp | None, *, version: int, min_positives: int
) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """The labelled rows of ``version`` from ``first`` (when the estimate became unreliable) on, to
    re-calibrate the estimate on, and what they are; None when they hold too few positives or
    negatives, or the estimate is reliable."""
    if first is None:
        return None, {}
    rows = _recent_labels(frame, version, first)
    labels = pd.to_numeric(rows["label"], errors="coerce").to_numpy(dtype=float) == 1
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives < min_positives or negatives < min_positives:
        return None, {}
    method: CalibrationMethod = "isotonic" if min(positives, negatives) >= ISOTONIC_MIN_CLASS else "platt"
    last = pd.Timestamp(rows["time"].max())
    return rows.assign(label=labels), {
        "used": "recent labels",
        "method": method,
        "fitted_on": [str(first), str(last)],
        "rows": len(rows),
        "positives": positives,
    }


def _resampled_estimate(
    score: np.ndarray, rows: pd.DataFrame, method: CalibrationMethod, threshold: float
) -> Estimate:
    """The estimate from a calibrator fitted on ``rows`` (scores and 0/1 labels), its interval widened
    by refitting the calibrator on :data:`RESAMPLES` bootstrap resamples of ``rows``."""
    x, y = rows["score"].to_numpy(dtype=float), rows["label"].to_numpy(dtype=float)
    centre = expected_metrics(score, ScoreCalibrator(method).fit(x, y).predict(score), threshold=threshold)
    rng = np.random.default_rng(0)
    drawn: dict[str, list[float]] = {m: [] for m in METRICS}
    for seed in range(RESAMPLES):
        pick = rng.integers(0, len(x), len(x))
        if y[pick].min() == y[pick].max():
            continue
        p = ScoreCalibrator(method).fit(x[pick], y[pick]).predict(score)
        found = expected_metrics(score, p, threshold=threshold, draws=DRAWS // 10, seed=seed + 1)
        for metric in METRICS:
            drawn[metric].append(found.values[metric])
    return widened(centre, drawn)


def _reasons(windows: list[dict[str, Any]], concept: DriftResult | None) -> list[str]:
    """Why the estimate is unreliable (empty when it is not): the newest disagreeing window's
    reasons, how many of the recent windows disagree, and concept drift."""
    late = _disagreeing(windows)
    found = (
        [f"labels of the window from {late[-1]['window_start']}: {r}" for r in late[-1]["reasons"]]
        if late
        else []
    )
    if len(late) > 1:
        found.append(f"{len(late)} of the last {min(len(windows), RECENT_WINDOWS)} labelled windows disagree")
    if concept is not None and concept.drifted:
        found.append(
            f"concept drift: labelled positives now score differently (Jensen-Shannon {concept.js:.3f}, "
            f"p={concept.p_value:.2g})"
        )
    return found


def _since(windows: list[dict[str, Any]], reasons: list[str]) -> pd.Timestamp | None:
    """When the estimate became unreliable: the first recent window that disagreed (the latest
    labelled one for concept drift alone); None while it is reliable."""
    late = _disagreeing(windows) or windows[-1:]
    return pd.Timestamp(late[0]["window_start"]) if reasons and late else None


def honest_estimate(
    frame: pd.DataFrame,
    current: pd.DataFrame,
    profile: Profile | None,
    calibrator: ScoreCalibrator | None,
    *,
    version: int,
    window: pd.Timedelta,
    threshold: float,
    min_labels: int,
    min_positives: int,
    concept: DriftResult | None = None,
) -> HonestEstimate:
    """The estimate of the ``current`` window's metrics, back-tested on every labelled window of
    ``version`` in ``frame`` and checked on the newest ones (see the module's docstring)."""
    windows = backtest(
        frame, calibrator, version=version, window=window, threshold=threshold, min_labels=min_labels
    )
    reasons = _reasons(windows, concept)
    reference = {k: v for k, v in ((profile.calibration or {}) if profile else {}).items() if k != "sha256"}
    used: dict[str, Any] = {"used": "reference" if calibrator is not None else "none (scores as they are)"}
    score = current["score"].to_numpy(dtype=float)
    since = _since(windows, reasons)
    rows, found = _recalibrated(frame, since, version=version, min_positives=min_positives)
    if rows is not None:
        estimate, used = _resampled_estimate(score, rows, found["method"], threshold), found
    else:
        estimate = expected_metrics(score, _probability(calibrator, score), threshold=threshold)
    return HonestEstimate(
        estimate,
        reliable=not reasons,
        reasons=reasons,
        checked_window=pd.Timestamp(windows[-1]["window_start"]) if windows else None,
        unreliable_since=since,
        calibration={"reference": reference, **used},
        backtest=windows,
    )


def estimate_alerts(
    estimate: dict[str, Any], floors: dict[str, float], start: pd.Timestamp
) -> list[dict[str, Any]]:
    """Alerts on the monitor report's ``estimate``: a metric whose whole interval is under its
    floor (an estimate whose interval still reaches the floor raises none), and, when the estimate
    is unreliable, one saying why (once per episode: keyed on the first window that disagreed).
    None without floors: nothing relies on the estimate then, and the report still says how far to
    trust it."""
    if not estimate or not floors:
        return []
    reliable = bool(estimate.get("reliable", True))
    calibration = estimate.get("calibration") or {}
    again = (
        f"re-calibrated on the labels from {calibration['fitted_on'][0]} to {calibration['fitted_on'][1]}"
        if calibration.get("used") == "recent labels"
        else "not re-calibrated (too few recent labels)"
    )
    note = "" if reliable else f"; the estimate is unreliable ({estimate['reasons'][0]}), {again}"
    confidence = float(estimate.get("confidence", 0.9))
    found = []
    for metric, floor in floors.items():
        value = estimate["values"].get(metric)
        low, high = estimate["intervals"].get(metric, (np.nan, np.nan))
        if value is not None and np.isfinite(value) and np.isfinite(high) and high < floor:
            found.append(
                {
                    "kind": AlertKind.ESTIMATED_PERFORMANCE,
                    "subject": metric,
                    "message": f"estimated performance {metric} = {value:.4f} ({confidence:.0%} interval "
                    f"{low:.4f} to {high:.4f}) is under {floor} (window from {start}){note}",
                    "window_start": start,
                }
            )
    if not reliable:
        found.append(
            {
                "kind": AlertKind.ESTIMATED_PERFORMANCE,
                "subject": "reliability",
                "message": f"the label-free estimate is unreliable: {'; '.join(estimate['reasons'])}; "
                f"until a new version is trained it is {again}",
                # one alert per episode: keyed on the first window that disagreed, not on each new one
                "window_start": estimate.get("unreliable_since") or estimate.get("checked_window") or start,
            }
        )
    return found
