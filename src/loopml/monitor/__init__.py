"""Monitoring: reference profiles, drift, realized and estimated performance, alerts."""

from __future__ import annotations

from loopml.monitor.alerts import Alert, alert_counts, list_alerts, record_alerts
from loopml.monitor.drift import (
    DriftResult,
    benjamini_hochberg,
    compare,
    compare_counts,
    concept_drift,
    psi,
)
from loopml.monitor.performance import (
    estimate_binary,
    load_predictions,
    prediction_times,
    record_feedback,
    windowed_performance,
)
from loopml.monitor.run import MonitorReport, current_inputs, reference_profile, run_monitor
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
    "Alert",
    "ColumnProfile",
    "DriftCounts",
    "DriftResult",
    "MonitorReport",
    "Profile",
    "alert_counts",
    "benjamini_hochberg",
    "bin_counts",
    "build_profile",
    "combine_counts",
    "compare",
    "compare_counts",
    "concept_drift",
    "current_inputs",
    "estimate_binary",
    "list_alerts",
    "load_predictions",
    "prediction_times",
    "profile_counts",
    "psi",
    "record_alerts",
    "record_feedback",
    "reference_profile",
    "run_monitor",
    "windowed_performance",
]
