"""Features: scikit-learn transformers, entity window features, and the pipeline built from config."""

from __future__ import annotations

from loopml.features.build import (
    FeatureColumns,
    build_preprocessor,
    event_time_is_feature,
    select_columns,
    window_specs,
)
from loopml.features.datetime import DatetimeParts
from loopml.features.sequences import CycleWindows
from loopml.features.windows import (
    EntityHistory,
    WindowSpec,
    event_millis,
    parse_duration,
    window_features,
)

__all__ = [
    "CycleWindows",
    "DatetimeParts",
    "EntityHistory",
    "FeatureColumns",
    "WindowSpec",
    "build_preprocessor",
    "event_millis",
    "event_time_is_feature",
    "parse_duration",
    "select_columns",
    "window_features",
    "window_specs",
]
