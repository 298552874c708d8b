"""Monitoring: reference profiles, drift, realized and estimated performance, alerts."""

from __future__ import annotations

from loopml.monitor.aggregates import WindowAggregates, log_totals, window_aggregates
from loopml.monitor.alerts import Alert, alert_counts, list_alerts, record_alerts
from loopml.monitor.drift import (
    LEVEL_COLOURS,
    PSI_ALERT,
    PSI_WARN,
    DriftLevel,
    DriftResult,
    benjamini_hochberg,
    compare,
    compare_counts,
    concept_drift,
    psi,
    psi_level,
)
from loopml.monitor.estimate import Estimate, expected_metrics, metrics_of_labels
from loopml.monitor.inputs import model_inputs
from loopml.monitor.performance import (
    estimate_binary,
    load_predictions,
    prediction_times,
    record_feedback,
    windowed_performance,
)
from loopml.monitor.reliability import HonestEstimate, backtest, honest_estimate, reference_calibrator
from loopml.monitor.run import MonitorReport, current_inputs, reference_profile, run_monitor
from loopml.monitor.windows import binned_binary_metrics, window_drift, window_summaries
from loopml.validate.profile import (
    ColumnProfile,
    DriftCounts,
    Profile,
    bin_counts,
    build_profile,
    combine_counts,
    profile_counts,
)

__all__ = [
    "LEVEL_COLOURS",
    "PSI_ALERT",
    "PSI_WARN",
    "Alert",
    "ColumnProfile",
    "DriftCounts",
    "DriftLevel",
    "DriftResult",
    "Estimate",
    "HonestEstimate",
    "MonitorReport",
    "Profile",
    "WindowAggregates",
    "alert_counts",
    "backtest",
    "benjamini_hochberg",
    "bin_counts",
    "binned_binary_metrics",
    "build_profile",
    "combine_counts",
    "compare",
    "compare_counts",
    "concept_drift",
    "current_inputs",
    "estimate_binary",
    "expected_metrics",
    "honest_estimate",
    "list_alerts",
    "load_predictions",
    "log_totals",
    "metrics_of_labels",
    "model_inputs",
    "prediction_times",
    "profile_counts",
    "psi",
    "psi_level",
    "record_alerts",
    "record_feedback",
    "reference_calibrator",
    "reference_profile",
    "run_monitor",
    "window_aggregates",
    "window_drift",
    "window_summaries",
    "windowed_performance",
]
