"""The promotion gate: a challenger replaces the champion only with proof, on the same rows."""

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


def _calibration(metrics: dict[str, Any]) -> float | None:
    bins = metrics.get("calibration")
    if not bins:
        return None
    count = sum(b["count"] for b in bins)
    predicted = sum(b["predicted"] * b["count"] for b in bins) / count
    observed = sum(b["observed"] * b["count"] for b in bins) / count
    return abs(predicted / observed - 1) if observed > 0 else None


def gate(metrics: dict[str, Any], config: GateConfig) -> GateResult:
    """Judge a challenger from its registered metrics (which hold the champion's on the same holdout)."""
    name, greater, score = metrics["metric"], metrics["greater_is_better"], metrics["score"]
    checks = []
    baseline_gain = _gain(score, metrics["baseline_score"], greater)
    checks.append(
        {
            "check": "beats_baseline",
            "passed": bool(baseline_gain > 0),
            "detail": f"{name} {score:.4f} against the dummy baseline's {metrics['baseline_score']:.4f}",
        }
    )
    champion = metrics.get("champion")
    if champion and champion.get("score") is not None and np.isfinite(champion["score"]):
        # Where the champion was scored on a subset (rows it never trained on), so is the challenger.
        same_rows = champion.get("challenger_score", score)
        gain = _gain(same_rows, champion["score"], greater)
        checks.append(
            {
                "check": "beats_champion",
                "passed": bool(gain >= config.min_improvement),
                "detail": f"{name} {same_rows:.4f} against champion v{champion['version']}'s "
                f"{champion['score']:.4f} (gain {gain:+.4f}, needed {config.min_improvement})",
            }
        )
        checks += _segments(metrics, champion, name, greater, config.segment_tolerance)
    off = _calibration(metrics)
    if off is not None:
        checks.append(
            {
                "check": "calibration",
                "passed": bool(off <= config.calibration_tolerance),
                "detail": f"mean prediction off the observed rate by {off:.0%} "
                f"(at most {config.calibration_tolerance:.0%})",
            }
        )
    return GateResult(all(c["passed"] for c in checks), checks)


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
                {
                    "check": f"segment {column}={row['value']}",
                    "passed": bool(loss <= tolerance),
                    "detail": f"{column}={row['value']}: {name} {row[name]:.4f} against {other:.4f}",
                }
            )
    return checks
