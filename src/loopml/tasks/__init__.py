"""Tasks: what a model predicts and how it is judged (metrics, splits, candidates, baselines)."""

from __future__ import annotations

from loopml.tasks import binary

__all__ = ["binary"]
