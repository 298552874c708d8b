"""Batch scoring's prediction log: a chunk's records serialized column by column, stored in bulk.

The per-row path (a dict per record, SQLAlchemy's JSON and datetime processing per value) cost
two thirds of batch time. Here each column becomes a Python list in one vectorised step, each
record one orjson document, and the chunk goes into ``predictions`` with the driver's bulk insert
(:func:`loopml.store.insert_serialized`), in the same transaction as the actions hook.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd

from loopml.scoring import LoadedModel
from loopml.store import OnWrite, Store, insert_serialized, utcnow

__all__ = ["column_values", "json_records", "write_log"]


def column_values(series: pd.Series) -> list[Any]:
    """A column as JSON-ready Python values: NaN/NaT/NA as None, datetimes as ISO 8601 text."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    if not isinstance(series.dtype, np.dtype) or series.dtype.kind not in "fiubM":
        return list(series.astype(object).where(series.notna(), None).tolist())  # nullable, text, ...
    values = series.to_numpy()
    if values.dtype.kind == "M":
        micros = values.astype("datetime64[us]")
        missing = np.isnat(micros)
        whole = bool((micros[~missing].astype(np.int64) % 1_000_000 == 0).all())
        text = np.datetime_as_string(micros, unit="s" if whole else "us").astype(object)
        text[missing] = None
        return list(text.tolist())
    return list(values.tolist())  # orjson writes a float NaN as null


def _json_texts(series: pd.Series) -> list[str]:
    """Each value of a column as JSON text; numbers and datetimes in one orjson call per column."""
    values = column_values(series)
    kind = series.dtype.kind if isinstance(series.dtype, np.dtype) else "O"
    if kind in "fiubM":  # no commas inside these values: split the encoded array
        text = orjson.dumps(values).decode()
        return text[1:-1].split(",") if values else []
    return [orjson.dumps(v, default=str).decode() for v in values]


def json_records(frame: pd.DataFrame) -> list[str]:
    """Each row of ``frame`` as one compact JSON object (keys: the column names as text).

    Values are encoded column by column and each row is one ``%`` formatting of a template,
    instead of a dict and an encoder call per row (8x less time on a 100,000-row chunk). The
    text is what ``orjson.dumps(row_dict)`` gives, floats with their shortest exact digits.
    """
    if frame.empty:
        return []
    keys = [orjson.dumps(str(c)).decode().replace("%", "%%") for c in frame.columns]
    template = "{" + ",".join(f"{key}:%s" for key in keys) + "}"
    columns = [_json_texts(frame[c]) for c in frame.columns]
    return [template % row for row in zip(*columns, strict=True)]


def _output_frame(model: LoadedModel, coerced: pd.DataFrame, scored: pd.DataFrame) -> pd.DataFrame:
    id_column = model.contract.id_column
    skip = {"prediction_id", "model_version"} | ({id_column} if id_column in coerced.columns else set())
    # explanations (``explain_*`` columns) are for the output only: the log keeps what was predicted
    return scored[[c for c in scored.columns if c not in skip and not str(c).startswith("explain_")]]


def write_log(
    store: Store,
    model: LoadedModel,
    coerced: pd.DataFrame,
    scored: pd.DataFrame,
    *,
    on_write: OnWrite | None = None,
) -> None:
    """Record each scored row in the prediction log (origin ``batch``) in one transaction.

    ``on_write(connection, rows)`` (the actions hook) runs in that transaction with every row as a
    dict of the ``predictions`` columns; rows are built only when there is a hook.
    """
    if scored.empty:
        return
    now, version = utcnow(), model.version.version
    ids = scored["prediction_id"].tolist()
    inputs, outputs = json_records(coerced), json_records(_output_frame(model, coerced, scored))
    scores = scored["score"].to_numpy(dtype=np.float64).tolist()
    with store.engine.begin() as connection:
        insert_serialized(
            connection,
            model_name=model.name,
            model_version=version,
            created_at=now,
            origin="batch",
            ids=ids,
            inputs=inputs,
            scores=scores,
            outputs=outputs,
        )
        if on_write is not None:
            rows = [
                {
                    "id": pid,
                    "model_name": model.name,
                    "model_version": version,
                    "created_at": now,
                    "origin": "batch",
                    "inputs": orjson.loads(inp),
                    "score": score,
                    "output": orjson.loads(out),
                }
                for pid, inp, score, out in zip(ids, inputs, scores, outputs, strict=True)
            ]
            on_write(connection, rows)
