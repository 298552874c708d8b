"""Batch forecasts: every series' forecasts (or the listed series') into a file, as the API gives them.

A forecast model scores feature rows built from the latest data version, not rows of an input file,
so ``loopml predict`` on one takes an optional list of series (``item``, and optionally ``group`` and
``horizon``) instead. The rows come from :func:`~loopml.scoring.forecast.forecast_source` and
:func:`~loopml.scoring.forecast.select_steps` and are scored by the same :class:`LoadedModel`, so each
forecast equals the endpoint's for the same series and step; each step is logged as the endpoint logs
it (origin ``batch``), so actual demand sent later as feedback is joined to it by the monitor.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopml.batch.outputs import Output, open_output
from loopml.batch.score import BatchResult, new_ids
from loopml.errors import DataError, InputError, LoopMLError
from loopml.scoring import LoadedModel
from loopml.scoring.forecast import (
    ForecastRequest,
    ForecastSource,
    forecast_outputs,
    forecast_record,
    forecast_source,
    select_steps,
)
from loopml.sources.files import CsvSource, ParquetSource
from loopml.store import OnWrite, Store, utcnow, write_predictions

__all__ = ["forecast_file"]

COLUMNS = [
    "prediction_id", "item", "group", "origin", "period", "horizon", "forecast", "on_hand", "model_version",
]  # fmt: skip
REQUEST = "_request"  # the number of the input row that asked for a feature row (see _requested)


def forecast_file(
    store: Store,
    model: LoadedModel,
    output_path: str | Path | Output,
    *,
    input_path: str | Path | None = None,
    stock: Path | None = None,
    log_predictions: bool = True,
    on_write: OnWrite | None = None,
) -> BatchResult:
    """Write forecasts to ``output_path`` (.parquet or .csv, or an opened
    :func:`~loopml.batch.outputs.open_output` writer such as a database table): every series and every
    step of the model's horizon, or the series listed in ``input_path`` (CSV or Parquet with ``item``
    and optional ``group`` and ``horizon`` columns). ``stock``: the ``forecast.stock`` CSV of stock on
    hand."""

    output = open_output(output_path) if isinstance(output_path, str | Path) else output_path
    version = model.version.version
    try:
        source = forecast_source(store, model, stock=stock)
        rows = source.rows if input_path is None else _requested(source, Path(input_path))
        rows = rows.reset_index(drop=True)
        # Each request is answered on its own (running totals, shortfall), even a series listed twice;
        # every series once when there is no input.
        if REQUEST in rows:
            requests = rows.pop(REQUEST)
        else:
            requests = rows.groupby(["item", "group"], sort=False, dropna=False).ngroup()
        values = model.score(rows)
        ids = new_ids(len(rows))
        table = rows.assign(prediction_id=ids, forecast=values, model_version=version)[COLUMNS]
        if log_predictions:
            records = _records(model, rows, requests, values, ids)
            write_predictions(store.engine, records, on_write=on_write)
        output.write(table)
    finally:
        output.close()
    return BatchResult(rows=len(table), output=output.target, model_version=version, table=output.table)


def _requested(source: ForecastSource, path: Path) -> pd.DataFrame:
    """The feature rows of each listed series, in the file's order, checked as the endpoint checks;
    column ``REQUEST`` holds the number of the file's row that asked for each."""
    from pydantic import ValidationError

    if not path.is_file() or path.suffix not in {".csv", ".parquet"}:
        raise InputError(f"input '{path}' must be an existing .csv or .parquet file of series to forecast.")
    frame = _read_input(path)
    if "item" not in frame.columns:
        raise InputError(
            f"input '{path}' needs an 'item' column (optional: 'group', 'horizon'); "
            "leave --input out to forecast every series."
        )
    parts = []
    for number, row in enumerate(frame.to_dict("records"), start=1):
        request = {
            "item": str(row["item"]),
            "group": None if pd.isna(row.get("group")) else str(row.get("group")),
            "horizon": source.config.horizon if pd.isna(row.get("horizon")) else row.get("horizon"),
        }
        try:
            steps = select_steps(source, ForecastRequest.model_validate(request))[0]
        except (ValidationError, LoopMLError) as exc:
            first = exc.errors()[0] if isinstance(exc, ValidationError) else None
            detail = f"field '{first['loc'][0]}': {first['msg']}" if first else str(exc)
            raise InputError(f"input '{path}' row {number}: {detail}.") from None
        parts.append(steps.assign(**{REQUEST: number}))
    return pd.concat(parts, ignore_index=True) if parts else source.rows.iloc[:0]


def _read_input(path: Path) -> pd.DataFrame:
    """The ``--input`` file read through the project's sources (item and group kept as text), so an
    empty, mis-delimited or corrupt file is a one-line :class:`InputError` naming it, not a traceback."""
    name = glob.escape(str(path))  # the sources expand globs; this names exactly this file
    try:
        if path.suffix == ".csv":
            frames = list(CsvSource(name, dtype={"item": str, "group": str}).iter_batches())
            return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        parquet = ParquetSource(name)
        file = parquet.files()[0]
        opened = parquet.open_file(file)
        try:
            return opened.read().to_pandas()
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            detail = " ".join(str(exc).split())
            raise DataError(f"cannot read Parquet file '{file}': {detail}") from None
    except DataError as exc:
        raise InputError(
            exc.message,
            hint=(
                "Fix the --input file: a comma-separated CSV with a header line, or a complete Parquet "
                "file, with an 'item' column (optional: 'group', 'horizon')."
            ),
        ) from None


def _records(
    model: LoadedModel, rows: pd.DataFrame, requests: pd.Series, values: np.ndarray, ids: list[str]
) -> list[dict[str, Any]]:
    """Each step's prediction-log record, the running totals and shortfall per request (``requests``:
    each row's request number) as the API's answer to that request."""

    now, records = utcnow(), []
    for positions in requests.groupby(requests.to_numpy(), sort=False).indices.values():
        series = rows.iloc[positions]
        outputs = forecast_outputs(series, values[positions])
        for position, row, output in zip(positions, series.to_dict("records"), outputs, strict=True):
            records.append(forecast_record(model, ids[position], row, output, now, origin="batch"))
    return records
