"""LoadedModel: the one scoring function shared by the API and batch jobs, and its window state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from loopml.errors import InputError
from loopml.features import EntityHistory, WindowSpec, event_millis
from loopml.registry import ModelVersion, read_artifact, resolve
from loopml.scoring.compiled import SMALL_BATCH, CompiledScorer, compile_pipeline, row_values
from loopml.scoring.explain import DEFAULT_TOP_K, Explainer, Explanation, check_top_k, dense
from loopml.store import Store, tables
from loopml.tasks import Task, get_task
from loopml.validate import DataContract, coerce_column, load_snapshot

__all__ = ["LoadedModel", "WindowState", "load_history", "load_model"]

_HISTORY_LOG_LIMIT = 1_000_000


class WindowState:
    """The entity window history a model's window features are read from, and how far the labels
    sent as feedback have reached it.

    Mutable by nature (every scored event and every label moves it), so it lives apart from the
    immutable :class:`LoadedModel` that reads it; a model swap builds a new model with a new state.
    """

    def __init__(self, history: EntityHistory, feedback_cursor: int = 0) -> None:
        self.history = history
        self.feedback_cursor = feedback_cursor  # the newest feedback row whose label reached the history

    def learn_feedback(self, store: Store, model: LoadedModel) -> int:
        """Labels sent as feedback since the last call reach the history (see
        :meth:`LoadedModel.learn_feedback`)."""
        newest, rows = _feedback_since(store, model.name, self.feedback_cursor, model.contract)
        target = model.version.signature["target"]
        changed = self.history.learn(rows.rename(columns={"label": target})) if len(rows) else 0
        self.feedback_cursor = newest  # only once learnt: a failure is retried on the next call
        return changed


@dataclass(frozen=True)
class LoadedModel:
    """A registered version, verified and loaded, ready to score. Immutable: serving a new version
    means a new object.

    Real-time and batch scoring both go through :meth:`coerce`, :meth:`features` and :meth:`score`,
    so they give identical results for identical rows. A model with entity window features carries
    a :class:`WindowState`: scored events are added to its history with :meth:`observe`.
    """

    version: ModelVersion
    pipeline: Any = field(repr=False)
    state: WindowState | None = field(default=None, repr=False, compare=False)

    @property
    def history(self) -> EntityHistory | None:
        """The window history (None for a model without window features, or loaded without it)."""
        return self.state.history if self.state is not None else None

    @property
    def name(self) -> str:
        return self.version.name

    @cached_property
    def contract(self) -> DataContract:
        return DataContract.model_validate(self.version.signature["contract"])

    @cached_property
    def input_columns(self) -> list[str]:
        """Raw columns a request must carry."""
        return list(self.version.signature["input_columns"])

    @cached_property
    def windows(self) -> list[WindowSpec]:
        specs = self.version.signature.get("windows", [])
        return [WindowSpec(**{**s, "aggs": tuple(s["aggs"]), "windows": tuple(s["windows"])}) for s in specs]

    @cached_property
    def threshold(self) -> float:
        value = self.version.signature.get("threshold")
        return float(value) if value is not None else 0.5

    def coerce(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Select the input columns (and the id and the event time, when present: the prediction log
        keeps them, and the monitor windows by the event time) and coerce each to its contract type."""
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            raise InputError(
                f"input is missing column(s) {', '.join(missing)} that model '{self.name}' needs."
            )
        contract = self.contract
        extra = [c for c in (contract.id_column, contract.event_time) if c and c in frame.columns]
        keep = [*extra, *self.input_columns]
        return pd.DataFrame(
            {c: coerce_column(frame[c], contract.column(c)) for c in dict.fromkeys(keep)}, index=frame.index
        )

    def features(self, coerced: pd.DataFrame) -> pd.DataFrame:
        """Coerced inputs plus the point-in-time window features from the history."""
        if not self.windows:
            return coerced
        if self.history is None:
            raise InputError(f"model '{self.name}' uses window features; load it with its history.")
        return pd.concat([coerced, self.history.features(coerced)], axis=1)

    def observe(self, coerced: pd.DataFrame) -> None:
        """Add scored events to the window history (ids already known are skipped)."""
        if self.history is not None:
            self.history.extend(coerced)

    @cached_property
    def label_windows(self) -> bool:
        """Whether a window aggregates the target (a terminal's fraud rate): labels feed the history."""
        return any(spec.column == self.version.signature.get("target") for spec in self.windows)

    def learn_feedback(self, store: Store) -> int:
        """Labels sent as feedback since the last call reach the window history, so windows over the
        target (with their label delay) keep up between versions, as the next snapshot would have
        them. Returns how many history values changed (0 without such windows)."""
        if self.state is None or not self.label_windows:
            return 0
        return self.state.learn_feedback(store, self)

    @cached_property
    def compiled(self) -> CompiledScorer | None:
        """The compiled scoring path for this pipeline, or None when only the generic one applies."""
        return compile_pipeline(self.pipeline, self.contract, [n for s in self.windows for n in s.names])

    @cached_property
    def task(self) -> Task:
        """The task this version was trained for (its scoring and response shape)."""
        return get_task(self.version.task)

    def score(self, features: pd.DataFrame) -> np.ndarray:
        """The task's output for each row of :meth:`features`' output: the positive-class probability
        (binary), the class-probability matrix (multiclass) or the predicted value (regression)."""
        compiled = self.compiled
        if compiled is not None:
            return compiled.predict(compiled.frame_matrix(features))
        return self.score_generic(features)

    def score_generic(self, features: pd.DataFrame) -> np.ndarray:
        """:meth:`score` through the scikit-learn pipeline itself (the reference of the compiled path)."""
        return self._estimate(self.pipeline[:-1].transform(features))

    def _estimate(self, matrix: Any) -> np.ndarray:
        """The task's output from the estimator alone, given its input matrix."""
        model = self.pipeline[-1]
        small = len(matrix) < SMALL_BATCH and type(model).__module__.startswith("lightgbm")
        return self.task.predict(model, matrix, **({"num_threads": 1} if small else {}))

    @cached_property
    def explainer(self) -> Explainer:
        """How this version's predictions are explained (an InputError for a model that cannot be)."""
        return Explainer(self.pipeline, self.name)

    def matrix(self, features: pd.DataFrame) -> np.ndarray:
        """The estimator's input matrix for :meth:`features`' output, as :meth:`score` builds it."""
        compiled = self.compiled
        if compiled is not None:
            return compiled.frame_matrix(features)
        return dense(self.pipeline[:-1].transform(features))

    def explain(self, features: pd.DataFrame, k: int = DEFAULT_TOP_K) -> list[Explanation]:
        """Each row's feature contributions, top ``k`` (see :mod:`loopml.scoring.explain`)."""
        return self.explainer.explain(self.matrix(features), k)

    def score_explained(
        self, features: pd.DataFrame, k: int = DEFAULT_TOP_K
    ) -> tuple[np.ndarray, list[Explanation]]:
        """:meth:`score` and each row's explanation, both from the one matrix that scored the row."""
        explainer = self.explainer  # a model that cannot be explained fails before any work
        check_top_k(k)
        matrix = self.matrix(features)
        return self._score_matrix(matrix), explainer.explain(matrix, k)

    def _score_matrix(self, matrix: np.ndarray) -> np.ndarray:
        compiled = self.compiled
        return compiled.predict(matrix) if compiled is not None else self._estimate(matrix)

    def predict_frame(self, frame: pd.DataFrame, *, observe: bool = True) -> np.ndarray:
        """Score a frame of raw rows, adding them (by default) to the window history first.

        As in training, a row's windows then hold every earlier event, the request's own earlier rows
        included; a window ends before its own event, so no row sees itself.
        """
        coerced = self.coerce(frame)
        if observe:
            self.observe(coerced)
        return self.score(self.features(coerced))

    def predict_records(self, records: Sequence[Mapping[str, Any]], *, observe: bool = True) -> np.ndarray:
        """Score JSON-like records (dicts of column -> value)."""
        if len(records) < SMALL_BATCH:
            scores = self._predict_rows(records, observe)
            if scores is not None:
                return scores
        return self.predict_frame(pd.DataFrame.from_records(list(records)), observe=observe)

    def predict_records_explained(
        self, records: Sequence[Mapping[str, Any]], k: int = DEFAULT_TOP_K, *, observe: bool = True
    ) -> tuple[np.ndarray, list[Explanation]]:
        """:meth:`predict_records` with each record's explanation, from the matrix that scored it."""
        explainer = self.explainer  # refusals first: nothing is observed for a request that fails
        check_top_k(k)
        matrix = self._row_matrix(records, observe) if len(records) < SMALL_BATCH else None
        if matrix is None:
            coerced = self.coerce(pd.DataFrame.from_records(list(records)))
            if observe:
                self.observe(coerced)
            matrix = self.matrix(self.features(coerced))
        return self._score_matrix(matrix), explainer.explain(matrix, k)

    @cached_property
    def _row_columns(self) -> list[str]:
        id_column = self.history.id_column if self.history is not None else None
        return [
            *([id_column] if id_column and id_column not in self.input_columns else []),
            *self.input_columns,
        ]

    def _predict_rows(self, records: Sequence[Mapping[str, Any]], observe: bool) -> np.ndarray | None:
        """The compiled path for a few records (no pandas), or None where it does not apply."""
        matrix = self._row_matrix(records, observe)
        return None if matrix is None else self._score_matrix(matrix)

    def _row_matrix(self, records: Sequence[Mapping[str, Any]], observe: bool) -> np.ndarray | None:
        """The compiled path's matrix for a few records (no pandas), or None where it does not apply."""
        compiled = self.compiled
        if compiled is None or not records or (self.windows and self.history is None):
            return None
        rows = [row_values(r, self._row_columns, self.contract) for r in records]
        if any(row is None for row in rows):
            return None
        coerced: list[dict[str, Any]] = rows  # type: ignore[assignment]
        history, windows, times = self.history, None, None
        if history is not None:
            keyed = [
                history.event_time,
                *(s.entity for s in self.windows),
                *([history.id_column] if history.id_column else []),
            ]
            if any(_missing(row.get(c)) for row in coerced for c in keyed if c):
                return None
            times = event_millis([row[history.event_time] for row in coerced])
            if observe:  # first, as in predict_frame and in training
                history.extend_rows(times, coerced)
            windows = history.feature_rows(
                times, {s.entity: [r[s.entity] for r in coerced] for s in self.windows}
            )
        return compiled.row_matrix(coerced, windows)

    def outputs(self, scores: np.ndarray) -> list[dict[str, Any]]:
        """The response shape of each scored row (see :meth:`loopml.tasks.Task.outputs`)."""
        classes = getattr(self.pipeline, "classes_", None)
        return self.task.outputs(scores, classes=classes, threshold=self.threshold)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def load_history(store: Store, version: ModelVersion, specs: list[WindowSpec]) -> EntityHistory:
    """The window history: the latest data snapshot plus every event logged since by the API or batch."""
    sig = version.signature
    history = EntityHistory(specs, sig["event_time"], sig.get("id_column"))
    _, snapshot = load_snapshot(store, version.name)
    history.extend(snapshot)
    logged = _logged_inputs(store, version.name)
    if len(logged):
        contract = DataContract.model_validate(sig["contract"])
        present = [c for c in history.columns if c in logged.columns]
        history.extend(pd.DataFrame({c: coerce_column(logged[c], contract.column(c)) for c in present}))
    return history


def _feedback_since(store: Store, name: str, after: int, contract: DataContract) -> tuple[int, pd.DataFrame]:
    """Feedback rows newer than id ``after`` for ``name``'s predictions: the newest id, and each
    labelled prediction's inputs (coerced to the contract) with its ``label``.

    The first read (``after`` 0, at load) takes at most the newest ``_HISTORY_LOG_LIMIT`` rows, as
    the history does of the logged inputs: a model loaded after years of feedback reads a bounded
    amount (``store.retention`` bounds the table itself); later reads take every newer row."""
    f, p = tables.feedback, tables.predictions
    query = (
        select(f.c.id, f.c.label, p.c.inputs)
        .join(p, p.c.id == f.c.prediction_id)
        .where(p.c.model_name == name, f.c.id > after)
        .order_by(f.c.id.desc())
    )
    if after == 0:
        query = query.limit(_HISTORY_LOG_LIMIT)
    with store.engine.connect() as conn:
        found = list(reversed(conn.execute(query).all()))
    if not found:
        return after, pd.DataFrame()
    inputs = pd.DataFrame.from_records([row.inputs for row in found])
    coerced = {c: coerce_column(inputs[c], contract.column(c)) for c in inputs.columns if c in contract.names}
    labels = pd.to_numeric(pd.Series([row.label for row in found]), errors="coerce")
    return int(found[-1].id), pd.DataFrame(coerced).assign(label=labels.to_numpy())


def _logged_inputs(store: Store, name: str) -> pd.DataFrame:
    p = tables.predictions
    query = select(p.c.inputs).where(p.c.model_name == name).order_by(p.c.created_at.desc())
    with store.engine.connect() as conn:
        rows = conn.execute(query.limit(_HISTORY_LOG_LIMIT)).scalars().all()
    return pd.DataFrame.from_records(list(reversed(rows))) if rows else pd.DataFrame()


def load_model(store: Store, name: str, ref: str | int = "champion", *, history: bool = True) -> LoadedModel:
    """Resolve ``ref`` (version number or alias), check the artifact's SHA-256, load it and its history.

    ``history=False``: without the window state (for a caller that brings its own, in ``replace``)."""
    version = resolve(store.engine, name, ref)
    model = LoadedModel(version=version, pipeline=read_artifact(store, version))
    if model.windows and history:
        model = LoadedModel(version, model.pipeline, WindowState(load_history(store, version, model.windows)))
        model.learn_feedback(store)  # labels that came back since the snapshot
    return model
