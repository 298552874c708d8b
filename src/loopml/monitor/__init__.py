"""Monitoring: reference profiles, drift, realized and estimated performance, alerts."""

from __future__ import annotations

from loopml.monitor.drift import DriftResult, benjamini_hochberg, compare, psi
from loopml.monitor.performance import (
    estimate_binary,
    load_predictions,
    record_feedback,
    windowed_performance,
)
from loopml.monitor.run import MonitorReport, record_alerts, run_monitor
from loopml.validate.profile import ColumnProfile, Profile, bin_counts, build_profile

__all__ = [
    "ColumnProfile",
    "DriftResult",
    "MonitorReport",
    "Profile",
    "benjamini_hochberg",
    "bin_counts",
    "build_profile",
    "compare",
    "estimate_binary",
    "load_predictions",
    "psi",
    "record_alerts",
    "record_feedback",
    "run_monitor",
    "windowed_performance",
]
