"""Scoring: a registered version loaded and verified (:class:`LoadedModel`), its window state, the
compiled single-record path, explanations of its predictions, and forecasts as scoring. The API and
batch jobs score only through it, so real-time and batch predictions are the same function."""

from __future__ import annotations

from loopml.scoring.explain import DEFAULT_TOP_K, MAX_TOP_K, Contribution, Explanation
from loopml.scoring.loaded import LoadedModel, Scored, load_model
from loopml.scoring.state import WindowState, load_history, open_window_state

__all__ = [
    "DEFAULT_TOP_K",
    "MAX_TOP_K",
    "Contribution",
    "Explanation",
    "LoadedModel",
    "Scored",
    "WindowState",
    "load_history",
    "load_model",
    "open_window_state",
]
