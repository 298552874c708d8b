"""Features: scikit-learn transformers and the pipeline built from the contract and config."""

from __future__ import annotations

from loopml.features.build import FeatureColumns, build_preprocessor, select_columns
from loopml.features.datetime import DatetimeParts

__all__ = ["DatetimeParts", "FeatureColumns", "build_preprocessor", "select_columns"]
