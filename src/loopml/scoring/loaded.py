"""LoadedModel: the one scoring function shared by the API and batch jobs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import InputError
from loopml.features import EntityHistory, WindowSpec, event_millis
from loopml.features.events import Events
from loopml.features.online import OnlineState
from loopml.registry import ModelVersion, read_artifact, resolve
from loopml.scoring.compiled import SMALL_BATCH, CompiledScorer, compile_pipeline, row_values
from loopml.scoring.explain import DEFAULT_TOP_K, Explainer, Explanation, check_top_k, dense
from loopml.scoring.state import WindowState, load_history, open_window_state
from loopml.store import Store
from loopml.tasks import Task, get_task
from loopml.validate import DataContract, coerce_column

__all__ = ["LoadedModel", "Scored", "WindowState", "load_history", "load_model"]


@dataclass(frozen=True)
class Scored:
    """What scoring some records gave: each record's score (see :meth:`LoadedModel.score`), its
    explanation when asked for, and the window features it was scored with when asked for
    (feature name -> one value per record; NaN where a window held nothing to average)."""

    scores: np.ndarray
    explanations: list[Explanation] | None = None
    windows: dict[str, np.ndarray] | None = None

    def window_rows(self) -> list[dict[str, float | None]]:
        """The window features record by record, NaN as None (JSON's null)."""
        windows = self.windows or {}
        columns = {name: values.tolist() for name, values in windows.items()}
        return [
            {name: (None if v != v else v) for name, v in ((n, c[i]) for n, c in columns.items())}
            for i in range(len(self.scores))
        ]


@dataclass(frozen=True)
class LoadedModel:
    """A registered version, verified and loaded, ready to score. Immutable: serving a new version
    means a new object.

    Real-time and batch scoring both go through :meth:`coerce`, :meth:`features` and :meth:`score`,
    so they give identical results for identical rows. A model with entity window features carries
    a :class:`WindowState`: its online state (in process, or shared in Redis) gives the features and
    takes the scored events (:meth:`features` with ``observe``).
    """

    version: ModelVersion
    pipeline: Any = field(repr=False)
    state: WindowState | None = field(default=None, repr=False, compare=False)

    @property
    def history(self) -> EntityHistory | None:
        """The in-process window history (None for a model without window features, loaded without
        it, or whose state is shared: see :attr:`online`)."""
        return self.state.history if self.state is not None else None

    @property
    def online(self) -> OnlineState | None:
        """The online state window features are read from (None without window features or state)."""
        return self.state.online if self.state is not None else None

    @cached_property
    def window_names(self) -> list[str]:
        """Every window feature name, in the model's order."""
        return [name for spec in self.windows for name in spec.names]

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
    def trained_from(self) -> datetime | None:
        """The first event time of the data this version was trained on (naive UTC; None when the
        project has no event time, or the version was registered before it was recorded)."""
        span = self.version.signature.get("event_time_span")
        return datetime.fromisoformat(span[0]) if span else None

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

    def features(self, coerced: pd.DataFrame, *, observe: bool = False) -> pd.DataFrame:
        """Coerced inputs plus the point-in-time window features from the online state; with
        ``observe`` the rows are added to it first, in the same step (as :meth:`predict_frame` does)."""
        if not self.windows:
            return coerced
        online = self.online
        if online is None:
            raise InputError(f"model '{self.name}' uses window features; load it with its history.")
        found = online.features(online.events_of(coerced), observe=observe)
        windows = pd.DataFrame({name: found[name] for name in self.window_names}, index=coerced.index)
        return pd.concat([coerced, windows], axis=1)

    def observe(self, coerced: pd.DataFrame) -> None:
        """Add scored events to the window state (ids already known are skipped)."""
        online = self.online
        if online is not None:
            online.observe(online.events_of(coerced))

    @cached_property
    def label_windows(self) -> bool:
        """Whether a window aggregates the target (a terminal's fraud rate): labels feed the history."""
        return any(spec.column == self.version.signature.get("target") for spec in self.windows)

    def learn_feedback(self, store: Store) -> int:
        """Labels sent as feedback since the last call reach the window history, so windows over the
        target (with their label delay) keep up between versions, as the next snapshot would have
        them. Returns how many history values changed (0 without such windows)."""
        if self.state is None:
            return 0
        if not self.label_windows:
            self.state.online.refresh()  # a shared state emptied meanwhile is warmed again
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
        """Score a frame of raw rows, adding them (by default) to the window state first.

        As in training, a row's windows then hold every earlier event, the request's own earlier rows
        included; a window ends before its own event, so no row sees itself.
        """
        return self.score(self.features(self.coerce(frame), observe=observe))

    def predict_records(self, records: Sequence[Mapping[str, Any]], *, observe: bool = True) -> np.ndarray:
        """Score JSON-like records (dicts of column -> value)."""
        return self.score_records(records, observe=observe).scores

    def predict_records_explained(
        self, records: Sequence[Mapping[str, Any]], k: int = DEFAULT_TOP_K, *, observe: bool = True
    ) -> tuple[np.ndarray, list[Explanation]]:
        """:meth:`predict_records` with each record's explanation, from the matrix that scored it."""
        scored = self.score_records(records, explain_k=k, observe=observe)
        assert scored.explanations is not None
        return scored.scores, scored.explanations

    def score_records(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        explain_k: int | None = None,
        windows: bool = False,
        observe: bool = True,
    ) -> Scored:
        """Score JSON-like records, adding them (by default) to the window state first: their scores,
        with ``explain_k`` each one's top-k explanation, with ``windows`` the window features each
        was scored with. The compiled path takes a few records without pandas; the rest go through
        :meth:`features` and :meth:`score`, with the same values."""
        explainer = self.explainer if explain_k is not None else None  # refusals before any observe
        if explain_k is not None:
            check_top_k(explain_k)
        found = self._row_matrix(records, observe) if len(records) < SMALL_BATCH else None
        matrix: np.ndarray | None
        if found is not None:
            matrix, window_values = found
            scores = self._score_matrix(matrix)
        else:
            features = self.features(self.coerce(pd.DataFrame.from_records(list(records))), observe=observe)
            matrix = self.matrix(features) if explainer is not None else None
            scores = self._score_matrix(matrix) if matrix is not None else self.score(features)
            names = self.window_names
            window_values = {n: features[n].to_numpy(dtype=np.float64, na_value=np.nan) for n in names}
        explained = None
        if explainer is not None and matrix is not None and explain_k is not None:
            explained = explainer.explain(matrix, explain_k)
        return Scored(scores, explained, window_values if windows else None)

    @cached_property
    def _row_columns(self) -> list[str]:
        id_column = self.version.signature.get("id_column") if self.windows else None
        return [
            *([id_column] if id_column and id_column not in self.input_columns else []),
            *self.input_columns,
        ]

    def _row_matrix(
        self, records: Sequence[Mapping[str, Any]], observe: bool
    ) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
        """The compiled path's matrix for a few records (no pandas) and their window features, or None
        where it does not apply."""
        compiled, online = self.compiled, self.online
        if compiled is None or not records or (self.windows and online is None):
            return None
        rows = [row_values(r, self._row_columns, self.contract) for r in records]
        if any(row is None for row in rows):
            return None
        coerced: list[dict[str, Any]] = rows  # type: ignore[assignment]
        windows: dict[str, np.ndarray] = {}
        if online is not None:
            keyed = [
                online.event_time,
                *(s.entity for s in self.windows),
                *([online.id_column] if online.id_column else []),
            ]
            if any(_missing(row.get(c)) for row in coerced for c in keyed if c):
                return None
            times = event_millis([row[online.event_time] for row in coerced])
            events = Events.from_rows(times, coerced, online.specs, online.id_column)
            windows = online.features(events, observe=observe)  # added first, as in training
        return compiled.row_matrix(coerced, windows or None), windows

    def outputs(self, scores: np.ndarray) -> list[dict[str, Any]]:
        """The response shape of each scored row (see :meth:`loopml.tasks.Task.outputs`)."""
        classes = getattr(self.pipeline, "classes_", None)
        return self.task.outputs(scores, classes=classes, threshold=self.threshold)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def load_model(
    store: Store,
    name: str,
    ref: str | int = "champion",
    *,
    history: bool = True,
    online_url: str | None = None,
) -> LoadedModel:
    """Resolve ``ref`` (version number or alias), check the artifact's SHA-256, load it and its window
    state: in process, warmed from the store (``online_url`` None), or the state shared in the Redis
    at ``online_url`` (warmed from the store once, if it is empty).

    ``history=False``: without the window state (for a caller that brings its own, in ``replace``)."""
    version = resolve(store.engine, name, ref)
    model = LoadedModel(version=version, pipeline=read_artifact(store, version))
    if model.windows and history:
        state = open_window_state(store, version, model.windows, online_url)
        model = LoadedModel(version, model.pipeline, state)
        model.learn_feedback(store)  # labels that came back since the snapshot
    return model
