"""One monitoring pass: drift and performance for the latest window, alerts recorded in the store."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, insert, select

from loopml.config import MonitorConfig
from loopml.features import parse_duration
from loopml.monitor.drift import DriftResult, compare
from loopml.monitor.performance import load_predictions, summarize, windowed_performance
from loopml.registry import ModelVersion, resolve
from loopml.store import Store, tables, utcnow
from loopml.validate.profile import Profile

__all__ = ["MonitorReport", "current_inputs", "record_alerts", "reference_profile", "run_monitor"]


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

    @property
    def drifted_features(self) -> list[str]:
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
        }


def reference_profile(store: Store, version: ModelVersion) -> Profile | None:
    """The reference profile saved with a version (None for versions trained before profiles)."""
    key = version.signature.get("profile")
    if not key:
        return None
    return Profile.from_dict(json.loads(store.artifacts.get_bytes(key)))


def current_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The logged inputs of predictions, with the score as the ``prediction`` column."""
    inputs = pd.DataFrame.from_records(frame["inputs"].map(lambda i: i or {}).tolist(), index=frame.index)
    return inputs.assign(prediction=frame["score"].to_numpy())


def _window(frame: pd.DataFrame, length: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The window of the given length (aligned on its own multiples) that holds the latest prediction."""
    end = frame["time"].max() if len(frame) else pd.Timestamp(utcnow()).tz_localize(None)
    span = pd.Timedelta(milliseconds=parse_duration(length))
    start = end.floor(span)
    return start, start + span


def _alerts(report: MonitorReport, config: MonitorConfig, start: pd.Timestamp) -> list[dict[str, Any]]:
    found = []
    if report.drifted_features:
        found.append(
            {
                "kind": "drift",
                "subject": ",".join(report.drifted_features[:10]),
                "message": f"{len(report.drifted_features)} feature(s) drifted: "
                f"{', '.join(report.drifted_features[:5])}",
            }
        )
    for kind, values, floors in (
        ("performance", report.performance.get("realized") or {}, config.performance_floor),
        ("estimated_performance", report.estimated_performance, config.estimated_floor),
    ):
        for metric, floor in floors.items():
            value = values.get(metric)
            if value is not None and np.isfinite(value) and value < floor:
                found.append(
                    {
                        "kind": kind,
                        "subject": metric,
                        "message": f"{kind.replace('_', ' ')} {metric} = {value:.4f} is under {floor}",
                    }
                )
    return [{**a, "window_start": start.to_pydatetime()} for a in found]


def record_alerts(engine: Engine, model: str, alerts: list[dict[str, Any]], details: dict[str, Any]) -> int:
    """Store alerts not already recorded for the same model, kind, subject and window; returns how many."""
    a = tables.alerts
    new = 0
    with engine.begin() as conn:
        for alert in alerts:
            exists = conn.execute(
                select(a.c.id).where(
                    a.c.model_name == model,
                    a.c.kind == alert["kind"],
                    a.c.subject == alert["subject"],
                    a.c.window_start == alert["window_start"],
                )
            ).first()
            if exists is None:
                conn.execute(
                    insert(a), {**alert, "model_name": model, "details": details, "created_at": utcnow()}
                )
                new += 1
    return new


def run_monitor(
    store: Store,
    name: str,
    config: MonitorConfig,
    *,
    ref: str | int = "champion",
    record: bool = True,
) -> MonitorReport:
    """Drift of the latest window against the version's reference profile, realized performance
    with label coverage, the label-free estimate, and alerts (recorded once per window)."""
    version = resolve(store.engine, name, ref)
    sig = version.signature
    frame = load_predictions(store.engine, name, event_time=sig.get("event_time"))
    start, end = _window(frame, config.window)
    current = frame[(frame["time"] >= start) & (frame["time"] < end)]
    profile = reference_profile(store, version)
    drift = (
        []
        if profile is None or len(current) < config.min_rows
        else compare(
            profile,
            current_inputs(current),
            psi_threshold=config.psi_threshold,
            js_threshold=config.js_threshold,
            alpha=config.alpha,
            min_rows=config.min_rows,
        )
    )
    freq = pd.Timedelta(milliseconds=parse_duration(config.window))
    task, threshold = sig.get("task", "binary"), sig.get("threshold")
    history = windowed_performance(
        frame, task=task, window=freq, threshold=threshold, min_labels=config.min_labels
    )
    now = summarize(current, task=task, threshold=threshold, min_labels=config.min_labels)
    performance = {k: now.get(k) for k in ("predictions", "labels", "label_coverage", "realized")}
    report = MonitorReport(
        name,
        version.version,
        {"start": start, "end": end, "length": config.window},
        drift,
        performance,
        dict(now.get("estimated") or {}),
        history,
    )
    alerts = _alerts(report, config, start)
    if record and alerts:
        record_alerts(store.engine, name, alerts, {"window": str(start), "model_version": version.version})
    return MonitorReport(**{**report.__dict__, "alerts": alerts})
