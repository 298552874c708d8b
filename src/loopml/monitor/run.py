"""One monitoring pass: drift and performance for the latest window, alerts recorded in the store."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopml.config import MonitorConfig
from loopml.enums import AlertKind
from loopml.features import parse_duration
from loopml.monitor.alerts import record_alerts
from loopml.monitor.drift import DriftResult, compare, concept_drift
from loopml.monitor.inputs import current_inputs, model_inputs
from loopml.monitor.performance import load_predictions, summarize, windowed_performance
from loopml.monitor.reliability import estimate_alerts, honest_estimate, reference_calibrator
from loopml.registry import ModelVersion, resolve
from loopml.store import OnWrite, Store, record_monitor_pass, utcnow
from loopml.validate.profile import Profile

__all__ = ["MonitorReport", "current_inputs", "reference_profile", "run_monitor"]


@dataclass(frozen=True)
class MonitorReport:
    """What one pass found."""

    model: str
    model_version: int
    window: dict[str, Any]
    drift: list[DriftResult]
    performance: dict[str, Any]
    estimated_performance: dict[str, Any]
    history: list[dict[str, Any]]
    alerts: list[dict[str, Any]] = field(default_factory=list)
    concept_drift: DriftResult | None = None
    no_verdict: list[str] = field(default_factory=list)  # what was not judged, and the setting to change
    # The label-free estimate with its interval, whether it is reliable (and why not), its
    # calibration and its back-test (see loopml.monitor.reliability.HonestEstimate); {} unless binary.
    estimate: dict[str, Any] = field(default_factory=dict)

    @property
    def drifted_features(self) -> list[str]:
        """The drifted columns (inputs, window and derived features), by impact."""
        return [d.column for d in self.drift if d.drifted and d.column != "prediction"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_version": self.model_version,
            "window": self.window,
            "drifted_features": self.drifted_features,
            "prediction_drift": next((asdict(d) for d in self.drift if d.column == "prediction"), None),
            "drift": [asdict(d) for d in self.drift],
            "performance": self.performance,
            "estimated_performance": self.estimated_performance,
            "history": self.history,
            "alerts": self.alerts,
            "concept_drift": asdict(self.concept_drift) if self.concept_drift else None,
            "no_verdict": self.no_verdict,
            "estimate": self.estimate,
        }


def reference_profile(store: Store, version: ModelVersion) -> Profile | None:
    """The reference profile saved with a version (None for versions trained before profiles)."""
    key = version.signature.get("profile")
    if not key:
        return None
    return Profile.from_dict(json.loads(store.artifacts.get_bytes(key)))


def _window(frame: pd.DataFrame, length: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The window of the given length that holds the latest prediction: the last of the windows that
    :func:`~loopml.monitor.performance.windowed_performance` cuts (counted from midnight of the first
    prediction's day, as ``pd.Grouper`` counts them), so that drift and performance name the same one."""
    times = frame["time"].dropna()
    span = pd.Timedelta(milliseconds=parse_duration(length))
    if times.empty:
        start = pd.Timestamp(utcnow()).tz_localize(None).floor(span)
        return start, start + span
    origin = times.min().normalize()
    start = origin + (times.max() - origin) // span * span
    return start, start + span


def _realized(
    now: dict[str, Any], start: pd.Timestamp, span: pd.Timedelta, history: list[dict[str, Any]]
) -> dict[str, Any]:
    """Realized performance of the latest window that has enough labels (labels arrive late, so
    that is often an earlier window than the current one), with that window's start, end and
    coverage; the current window's counts when no window has enough labels yet."""
    labelled = next((h for h in reversed(history) if "realized" in h), None)
    chosen = now if "realized" in now or labelled is None else labelled
    found = {k: chosen.get(k) for k in ("predictions", "labels", "label_coverage", "realized")}
    if "positives" in chosen:
        found["positives"] = chosen["positives"]
    window_start = start if chosen is now else pd.Timestamp(chosen["window_start"])
    return {"window_start": window_start, "window_end": window_start + span, **found}


def _no_verdict(
    config: MonitorConfig,
    profile: Profile | None,
    frame: pd.DataFrame,
    current: pd.DataFrame,
    performance: dict[str, Any],
) -> list[str]:
    """What this pass could not judge, with the setting to change and the value it runs with."""
    window = f"monitor.window ({config.window})"
    if frame.empty:
        return ["no verdict: no prediction of this model is logged yet; serve it (`loopml serve`) or "
                "score a file (`loopml predict`)"]  # fmt: skip
    found: list[str] = []
    if profile is None:
        found.append("no drift verdict: this version has no reference profile (trained before profiles); "
                     "train a new version to monitor drift")  # fmt: skip
    elif len(current) < config.min_rows:
        found.append(
            f"no drift verdict: {len(current):,} predictions in the window, fewer than monitor.min_rows "
            f"({config.min_rows}); lower monitor.min_rows or lengthen {window}"
        )
    if performance.get("realized") is None:
        labels = int(performance.get("labels") or 0)
        found.append(
            f"no realized performance: {labels:,} labels in the window, fewer than monitor.min_labels "
            f"({config.min_labels}), and no earlier window has enough; send labels "
            f"(`loopml feedback --input FILE`), lower monitor.min_labels or lengthen {window}"
        )
    return found


def _concept(
    profile: Profile | None,
    frame: pd.DataFrame,
    performance: dict[str, Any],
    span: pd.Timedelta,
    config: MonitorConfig,
) -> DriftResult | None:
    """Concept drift on the window of the realized performance (the latest with enough labels)."""
    if profile is None or performance.get("realized") is None:
        return None
    start = pd.Timestamp(performance["window_start"])
    rows = frame[(frame["time"] >= start) & (frame["time"] < start + span)]
    labels = pd.to_numeric(rows["label"], errors="coerce").to_numpy(dtype=float)
    scores = rows["score"].to_numpy(dtype=float)
    return concept_drift(
        profile,
        scores,
        labels,
        js_threshold=config.js_threshold,
        alpha=config.alpha,
        min_positives=config.min_positives,
    )


def _concept_alert(report: MonitorReport) -> list[dict[str, Any]]:
    found = report.concept_drift
    if found is None or not found.drifted:
        return []
    moved = found.top_bins[0]
    return [
        {
            "kind": AlertKind.CONCEPT_DRIFT,
            "subject": "prediction",
            "message": f"concept drift: labelled positives now score differently (Jensen-Shannon "
            f"{found.js:.3f}, p={found.p_value:.2g}); positives in {moved['bin']}: "
            f"{moved['reference']:.0%} -> {moved['current']:.0%}",
            "window_start": report.performance["window_start"],
        }
    ]


def _alerts(report: MonitorReport, config: MonitorConfig, start: pd.Timestamp) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if report.drifted_features:
        found.append(
            {
                "kind": AlertKind.DRIFT,
                "subject": ",".join(report.drifted_features[:10]),
                "message": f"{len(report.drifted_features)} feature(s) drifted: "
                f"{', '.join(report.drifted_features[:5])}",
            }
        )
    found += _concept_alert(report)
    realized_start = pd.Timestamp(report.performance.get("window_start", start))
    evidence = report.performance.get("positives", config.min_positives) >= config.min_positives
    realized = (report.performance.get("realized") or {}) if evidence else {}
    for metric, floor in config.performance_floor.items():
        value = realized.get(metric)
        if value is not None and np.isfinite(value) and value < floor:
            found.append(
                {
                    "kind": AlertKind.PERFORMANCE,
                    "subject": metric,
                    "message": f"performance {metric} = {value:.4f} is under {floor} "
                    f"(window from {realized_start})",
                    "window_start": realized_start,
                }
            )
    found += estimate_alerts(report.estimate, config.estimated_floor, start)
    return [{**a, "window_start": pd.Timestamp(a.get("window_start", start)).to_pydatetime()} for a in found]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and np.isfinite(value) else None


def _estimate_summary(estimate: dict[str, Any]) -> dict[str, Any]:
    """The estimate's intervals and how far to trust it, for the dashboard."""
    if not estimate:
        return {}
    return {
        "intervals": estimate["intervals"],
        "reliable": bool(estimate["reliable"]),
        "reasons": list(estimate["reasons"]),
        "calibration": (estimate.get("calibration") or {}).get("used"),
    }


def _pass_summary(report: MonitorReport, frame: pd.DataFrame) -> dict[str, Any]:
    """The pass in numbers for the Prometheus gauges and the dashboard (see
    :func:`loopml.store.record_monitor_pass`): drift per column with its level (the colour),
    importance and impact, performance, and the estimate's intervals and reliability."""
    performance = report.performance
    return {
        "window_start": str(report.window["start"]),
        "drift": {
            d.column: {k: _number(getattr(d, k)) for k in ("psi", "js", "statistic", "p_value", "impact")}
            | {"drifted": bool(d.drifted), "level": d.level, "importance": d.importance, "source": d.source}
            for d in report.drift
        },
        "estimate": _estimate_summary(report.estimate),
        "realized": {k: _number(v) for k, v in (performance.get("realized") or {}).items()},
        "estimated": {k: _number(v) for k, v in report.estimated_performance.items()},
        "label_coverage": _number(performance.get("label_coverage")),
        "waiting_labels": int(frame["label"].isna().sum()) if "label" in frame else 0,
    }


def _drift(
    store: Store,
    version: ModelVersion,
    profile: Profile | None,
    frame: pd.DataFrame,
    current: pd.DataFrame,
    span: tuple[pd.Timestamp, pd.Timestamp],
    config: MonitorConfig,
) -> tuple[list[DriftResult], list[str]]:
    """Drift of the window's inputs as the model saw them (:func:`~loopml.monitor.inputs.model_inputs`:
    request columns, window and derived features) and its predictions, ranked by impact."""
    if profile is None or len(current) < config.min_rows:
        return [], []
    seen, notes = model_inputs(store, version, profile, frame, current, *span)
    found = compare(
        profile,
        seen,
        psi_threshold=config.psi_threshold,
        js_threshold=config.js_threshold,
        alpha=config.alpha,
        min_rows=config.min_rows,
        window=config.window,
    )
    return found, notes


def run_monitor(
    store: Store,
    name: str,
    config: MonitorConfig,
    *,
    ref: str | int = "champion",
    record: bool = True,
    on_alert: OnWrite | None = None,
) -> MonitorReport:
    """Drift of the latest window against the version's reference profile; realized performance and
    concept drift on the latest window with enough labels (labels arrive late), with its label
    coverage; the label-free estimate; and alerts (recorded once per window, with
    ``on_alert`` run in the same transaction: see :func:`loopml.actions.enqueue_for_alerts`)."""
    version = resolve(store.engine, name, ref)
    sig = version.signature
    frame = load_predictions(store.engine, name, event_time=sig.get("event_time"))
    start, end = _window(frame, config.window)
    current = frame[(frame["time"] >= start) & (frame["time"] < end)]
    profile = reference_profile(store, version)
    drift, notes = _drift(store, version, profile, frame, current, (start, end), config)
    freq = pd.Timedelta(milliseconds=parse_duration(config.window))
    task, threshold = version.task, sig.get("threshold")
    calibrator = reference_calibrator(store, profile)
    history = windowed_performance(
        frame,
        task=task,
        window=freq,
        threshold=threshold,
        min_labels=config.min_labels,
        calibrator=calibrator,
        intervals=True,
    )
    now = summarize(
        current, task=task, threshold=threshold, min_labels=config.min_labels, calibrator=calibrator
    )
    performance = _realized(now, start, freq, history)
    concept = _concept(profile, frame, performance, freq, config)
    honest = None
    if "estimated" in now:  # a classifier with a positive class
        honest = honest_estimate(
            frame,
            current,
            profile,
            calibrator,
            version=version.version,
            window=freq,
            threshold=float(threshold if threshold is not None else 0.5),
            min_labels=config.min_labels,
            min_positives=config.min_positives,
            concept=concept,
        )
    report = MonitorReport(
        name,
        version.version,
        {"start": start, "end": end, "length": config.window, "predictions": len(current)},
        drift,
        performance,
        dict(honest.estimate.values if honest else now.get("estimated") or {}),
        history,
        concept_drift=concept,
        no_verdict=_no_verdict(config, profile, frame, current, performance) + notes,
        estimate=honest.to_dict() if honest else {},
    )
    alerts = _alerts(report, config, start)
    if record and alerts:
        details = {"window": str(start), "model_version": version.version}
        record_alerts(store.engine, name, alerts, details, on_alert=on_alert)
    if record:  # what /metrics exposes, read there with one lookup
        record_monitor_pass(store.engine, name, version.version, _pass_summary(report, frame))
    return MonitorReport(**{**report.__dict__, "alerts": alerts})
