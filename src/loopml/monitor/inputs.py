"""A window's predictions as the model saw them: the logged request columns, the entity window
features and the preprocessor's outputs, recomputed from the logged inputs the way serving does.

Drift of the derived inputs needs their values for the logged traffic. Logging them with each
prediction would cost every request (dozens of floats serialised per call, on the path where a
millisecond counts), so they are recomputed here, once per monitoring pass, for the window's rows
only, through the same code that scored them: a :class:`~loopml.scoring.LoadedModel` with a window
history (:meth:`~loopml.scoring.LoadedModel.coerce`, :meth:`~loopml.scoring.LoadedModel.features`),
then the pipeline's own preprocessor. The history holds what serving's did for those rows: the
latest data snapshot and the logged inputs from one window reach (the longest window plus its label
delay) before the window's start, with each prediction's label as feedback brought it. A window
over the target reads only labels older than its delay; labels that arrived later than that delay
would make the recomputed value differ from the served one, which is the point-in-time value
training would have computed.
"""

from __future__ import annotations

import pandas as pd

from loopml.errors import LoopMLError
from loopml.features import EntityHistory
from loopml.registry import ModelVersion, read_artifact
from loopml.scoring import LoadedModel, WindowState
from loopml.store import Store
from loopml.train.reference import model_input_frame
from loopml.validate import load_snapshot
from loopml.validate.profile import Profile

__all__ = ["current_inputs", "model_inputs"]


def current_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The logged inputs of predictions, with the score as the ``prediction`` column."""
    inputs = pd.DataFrame.from_records(frame["inputs"].map(lambda i: i or {}).tolist(), index=frame.index)
    return inputs.assign(prediction=frame["score"].to_numpy())


def _naive(times: pd.Series) -> pd.Series:
    found = pd.to_datetime(times, errors="coerce", utc=True)
    return found.dt.tz_localize(None)


def _history(
    store: Store, model: LoadedModel, frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp
) -> EntityHistory:
    """The window history serving had for rows from ``start`` to ``end``: the latest snapshot's and
    the logged events from one reach before ``start``, each logged one with its label (if any)."""
    sig = model.version.signature
    event_time, target = sig["event_time"], sig["target"]
    history = EntityHistory(model.windows, event_time, sig.get("id_column"))
    since = start - pd.Timedelta(milliseconds=history.reach_ms)
    _, snapshot = load_snapshot(store, model.name)
    times = _naive(snapshot[event_time])
    known = snapshot[((times >= since) & (times < end)).to_numpy()]
    if len(known):
        events = model.coerce(known)
        if target in known.columns:
            events = events.assign(**{target: known[target].to_numpy()})
        history.extend(events)
    logged = frame[(frame["time"] >= since) & (frame["time"] < end)]
    if len(logged):
        raw = pd.DataFrame.from_records(logged["inputs"].map(lambda i: i or {}).tolist())
        events = model.coerce(raw).assign(
            **{target: pd.to_numeric(logged["label"], errors="coerce").to_numpy()}
        )
        history.extend(events)
    return history


def model_inputs(
    store: Store,
    version: ModelVersion,
    profile: Profile,
    frame: pd.DataFrame,
    rows: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> tuple[pd.DataFrame, list[str]]:
    """``rows`` (the window's predictions, from ``frame``, the whole log) as the model saw them: the
    logged request columns and ``prediction`` (:func:`current_inputs`), plus every window and
    derived column of ``profile``; and what could not be computed, said in one line each."""
    current = current_inputs(rows)
    wanted = [c for c, p in profile.columns.items() if p.source in ("window", "derived")]
    if not wanted or rows.empty:
        return current, []
    try:
        model = LoadedModel(version, read_artifact(store, version))
        if model.windows:
            history = _history(store, model, frame, start, end)
            model = LoadedModel(version, model.pipeline, WindowState(history))
        features = model.features(model.coerce(current.drop(columns=["prediction"])))
        matrix = model_input_frame(model.pipeline, features)
    except (LoopMLError, ValueError, KeyError, TypeError) as exc:
        why = " ".join(str(exc).split())[:200]
        return current, [
            f"no drift verdict on the model's derived inputs: they could not be recomputed from the logged "
            f"inputs ({type(exc).__name__}: {why}); the request columns and the prediction are judged"
        ]
    found: dict[str, pd.Series] = {}
    for column in wanted:
        source = profile.columns[column].source
        if source == "window" and column in features.columns:
            found[column] = features[column]
        elif matrix is not None and column in matrix.columns:
            found[column] = matrix[column]
    derived = pd.DataFrame(found, index=current.index)
    missing = [c for c in wanted if c not in derived.columns]
    notes = (
        [f"no drift verdict on {', '.join(missing[:5])}: the model no longer produces them from its inputs"]
        if missing
        else []
    )
    return pd.concat(
        [current.drop(columns=[c for c in derived.columns if c in current.columns]), derived], axis=1
    ), notes
