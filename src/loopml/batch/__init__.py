"""Batch scoring: files in, files out, through the same LoadedModel as the API, locally or on Dask."""

from __future__ import annotations

from loopml.batch.cluster import score_file_dask
from loopml.batch.forecast import forecast_file
from loopml.batch.score import BatchResult, score_file

__all__ = ["BatchResult", "forecast_file", "score_file", "score_file_dask"]
