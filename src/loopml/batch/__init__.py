"""Batch scoring: files in, files out, through the same LoadedModel as the API."""

from __future__ import annotations

from loopml.batch.score import BatchResult, score_file

__all__ = ["BatchResult", "score_file"]
