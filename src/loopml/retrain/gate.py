"""The promotion gate: a challenger replaces the champion only with proof, on the same rows.

The rows are those neither model learned from (:mod:`loopml.train.compare` scores both on them).
Every check compares the challenger with the champion: the primary metric's gain with a paired
bootstrap interval (promoted when the challenger is not worse beyond ``retrain.gate.tolerance`` at
the interval's low end and not worse in expectation, or, with ``retrain.gate.ties: newer`` (the
default) and no ``min_improvement``, when the interval reaches 0: with no evidence either way the
newer model, whose served refit learnt rows the champion never saw, wins), each segment,
calibration and the time to score a row (not worse by more than a tolerance). The absolute floors
(``calibration_tolerance``, ``max_latency_us``) are options, and never keep a champion that fails
them worse than the challenger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.config import GateConfig

__all__ = ["GateResult", "gate"]


@dataclass(frozen=True)
class GateResult:
    """Whether the challenger may be promoted, and every check's verdict."""

    passed: bool
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return [c["detail"] for c in self.checks if not c["passed"]]


def _gain(challenger: float, other: float, greater: bool) -> float:
    return challenger - other if greater else other - challenger


def _check(name: str, passed: bool, detail: str) -> dict[str, Any]:
    return {"check": name, "passed": bool(passed), "detail": detail}


def _holdout_calibration(metrics: dict[str, Any]) -> float | None:
    """|mean predicted / observed - 1| over the challenger's whole holdout (its calibration bins)."""
    bins = metrics.get("calibration")
    if not bins:
        return None
    count = sum(b["count"] for b in bins)
    predicted = sum(b["predicted"] * b["count"] for b in bins) / count
    observed = sum(b["observed"] * b["count"] for b in bins) / count
    return abs(predicted / observed - 1) if observed > 0 else None


def gate(metrics: dict[str, Any], config: GateConfig) -> GateResult:
    """Judge a challenger from its registered metrics (which hold the champion's on the same rows)."""
    name, greater, score = metrics["metric"], metrics["greater_is_better"], metrics["score"]
    baseline = metrics["baseline_score"]
    checks = [
        _check(
            "beats_baseline",
            _gain(score, baseline, greater) > 0,
            f"{name} {score:.4f} against the dummy baseline's {baseline:.4f}",
        )
    ]
    champion = metrics.get("champion")
    if champion and champion.get("waiting"):
        checks.append(_check("unseen_rows", False, f"no fair comparison: {champion['waiting']}"))
    elif champion and champion.get("score") is not None and np.isfinite(champion["score"]):
        checks.append(_beats_champion(name, greater, score, champion, config))
        checks += _segments(metrics, champion, name, greater, config.segment_tolerance)
        checks += _latency(champion, config)
    checks += _calibration(metrics, champion or {}, config)
    return GateResult(all(c["passed"] for c in checks), checks)


def _beats_champion(
    name: str, greater: bool, score: float, champion: dict[str, Any], config: GateConfig
) -> dict[str, Any]:
    """The gain on the same rows: its paired interval when recorded, else the gain alone (older records)."""
    mine = champion.get("challenger_score", score)
    theirs = f"{name} {mine:.4f} against champion v{champion['version']}'s {champion['score']:.4f}"
    rows = f" on {champion['rows']:,} rows neither learned from" if "rows" in champion else ""
    interval = champion.get("gain")
    if not interval:
        gain = _gain(mine, champion["score"], greater)
        return _check(
            "beats_champion",
            gain >= config.min_improvement,
            f"{theirs}{rows} (gain {gain:+.4f}, needed {config.min_improvement})",
        )
    expected, low, high = interval["mean"], interval["low"], interval["high"]
    needed = config.min_improvement
    newer = config.ties == "newer" and needed == 0  # an asked-for improvement must be shown
    tie = newer and expected < 0 <= high  # no evidence either way: the newer model wins
    passed = (expected >= needed or tie) and low >= -config.tolerance
    level = f"{interval['confidence']:.0%}"
    reach = " (or an interval reaching it: ties go to the newer model)" if newer else ""
    return _check(
        "beats_champion",
        passed,
        f"{theirs}{rows}: expected gain {expected:+.4f}, {level} interval {low:+.4f} to {high:+.4f} "
        f"(needs an expected gain of at least {needed}{reach} and a low end of at least "
        f"{-config.tolerance:+.4f})" + ("; a tie, promoted as the newer" if tie and passed else ""),
    )


def _calibration(
    metrics: dict[str, Any], champion: dict[str, Any], config: GateConfig
) -> list[dict[str, Any]]:
    """Binary tasks: the challenger's calibration against the champion's on the same rows, and the
    optional absolute floor (which a challenger no worse than the champion passes)."""
    mine = champion.get("challenger_calibration_off")
    theirs = champion.get("calibration_off")
    if mine is None:
        mine, theirs = _holdout_calibration(metrics), None  # no champion on the same rows
    if mine is None:
        return []
    checks = []
    if theirs is not None:
        checks.append(
            _check(
                "calibration",
                mine <= theirs + config.calibration_margin,
                f"mean prediction off the observed rate by {mine:.0%}, champion's by {theirs:.0%} on the "
                f"same rows (at most {config.calibration_margin:.0%} worse)",
            )
        )
    floor = config.calibration_tolerance
    if floor is not None:
        no_worse = theirs is not None and mine <= theirs
        checks.append(
            _check(
                "calibration_floor",
                mine <= floor or no_worse,
                f"mean prediction off the observed rate by {mine:.0%} (at most {floor:.0%}"
                + (f", or no worse than the champion's {theirs:.0%})" if theirs is not None else ")"),
            )
        )
    return checks


def _latency(champion: dict[str, Any], config: GateConfig) -> list[dict[str, Any]]:
    """The time to score a row, against the champion's on the same rows, and the optional floor."""
    mine, theirs = champion.get("challenger_latency_us"), champion.get("latency_us")
    if mine is None or theirs is None:
        return []
    limit = max(theirs * (1 + config.latency_tolerance), theirs + config.latency_slack_us)
    checks = [
        _check(
            "latency",
            mine <= limit,
            f"{mine:.1f} µs to score a row, champion's {theirs:.1f} µs (at most {limit:.1f}: "
            f"{1 + config.latency_tolerance:g} times, or {config.latency_slack_us:g} µs more)",
        )
    ]
    floor = config.max_latency_us
    if floor is not None:
        checks.append(
            _check(
                "latency_floor",
                mine <= floor or mine <= theirs,
                f"{mine:.1f} µs to score a row (at most {floor:g}, or no slower than the champion's "
                f"{theirs:.1f})",
            )
        )
    return checks


def _segments(
    metrics: dict[str, Any], champion: dict[str, Any], name: str, greater: bool, tolerance: float
) -> list[dict[str, Any]]:
    checks = []
    # Where the champion was scored on a subset, its segments are; so are the challenger's beside them.
    mine = champion["challenger_segments"] if "challenger_segments" in champion else metrics.get("segments")
    for column, rows in (mine or {}).items():
        theirs = {r["value"]: r for r in (champion.get("segments") or {}).get(column, [])}
        for row in rows:
            other = theirs.get(row["value"], {}).get(name)
            if other is None or not np.isfinite(other) or not np.isfinite(row.get(name, np.nan)):
                continue
            loss = -_gain(row[name], other, greater)
            checks.append(
                _check(
                    f"segment {column}={row['value']}",
                    loss <= tolerance,
                    f"{column}={row['value']}: {name} {row[name]:.4f} against {other:.4f}",
                )
            )
    return checks
