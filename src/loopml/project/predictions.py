"""``project.predictions``: single and batch predictions, labels (feedback), and the prediction log."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from loopml.actions import enqueue_for_predictions
from loopml.batch import BatchResult, score_file, score_file_dask
from loopml.batch.outputs import Output, is_url, open_output
from loopml.batch.score import open_input
from loopml.config import RetentionConfig
from loopml.enums import Origin
from loopml.errors import ConfigError, InputError
from loopml.features import EntityHistory
from loopml.monitor import load_predictions
from loopml.scoring import DEFAULT_TOP_K, Explanation, LoadedModel, WindowState
from loopml.sources import check_input_path
from loopml.store import (
    PruneResult,
    count_predictions,
    journal_dir,
    prune_predictions,
    record_feedback,
    replay_journal,
    utcnow,
    write_predictions,
)
from loopml.tasks import label_check
from loopml.validate import ScoringPolicy

if TYPE_CHECKING:
    from loopml.project.core import Project
    from loopml.project.explain import LoggedExplanation
    from loopml.project.forecasts import ForecastLabels
    from loopml.project.models import FittedModel

__all__ = ["FeedbackResult", "JournalReplay", "PointInTime", "Prediction", "Predictions"]


@dataclass(frozen=True)
class Prediction:
    """One scored record: the id it was given (its ``id_column`` value, None without one), the
    prediction id that labels and actions refer to, the version that made it, the score, the label
    (a class or the decision at the threshold; None for a regression), and the whole output; its
    feature contributions when they were asked for (``explain``)."""

    id: Any
    prediction_id: str
    model_version: int
    score: float
    label: Any
    output: dict[str, Any]
    explanation: Explanation | None = None


@dataclass(frozen=True)
class FeedbackResult:
    """Labels received, stored, and refused for an unknown prediction id."""

    received: int
    accepted: int
    unknown_ids: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class JournalReplay:
    """Predictions a killed API had journalled and that are now in the store."""

    replayed: int
    journal: Path


class Predictions:
    """``project.predictions``: scoring with the served model and what the log keeps of it."""

    def __init__(self, project: Project) -> None:
        self._project = project

    def predict_records(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        ref: str | int = "champion",
        model: LoadedModel | None = None,
        log: bool = True,
        explain: bool = False,
        explain_k: int = DEFAULT_TOP_K,
    ) -> list[Prediction]:
        """Score records (dicts of column -> value) with the version ``ref`` (or an already loaded
        ``model``), as the API does: the same coercion, window features and output. With ``log``
        each prediction is written to the prediction log (origin ``python``), with the actions it
        triggers in the same transaction, so monitoring and labels work as for the API's. With
        ``explain`` each carries its top ``explain_k`` feature contributions (as ``explain=true``
        on the API: see :mod:`loopml.scoring.explain`)."""
        project = self._project
        model = model if model is not None else project.models.load(ref)
        if explain:
            scores, explained = model.predict_records_explained(records, explain_k)
        else:
            scores, explained = model.predict_records(records), None
        outputs = model.outputs(scores)
        id_column = project.settings.id_column
        version = model.version.version
        found = [
            Prediction(
                id=record.get(id_column) if id_column else None,
                prediction_id=str(uuid.uuid4()),
                model_version=version,
                score=float(out["score"]),
                label=out.get("label"),
                output=out,
                explanation=explained[i] if explained is not None else None,
            )
            for i, (record, out) in enumerate(zip(records, outputs, strict=True))
        ]
        if log and found:
            self._log(model, records, found)
        return found

    def _log(self, model: LoadedModel, records: Sequence[Mapping[str, Any]], found: list[Prediction]) -> None:
        now = utcnow()
        rows = [
            {
                "id": p.prediction_id,
                "model_name": model.name,
                "model_version": p.model_version,
                "created_at": now,
                "origin": Origin.PYTHON,
                "inputs": _jsonable(record),
                "score": p.score,
                "output": {"prediction_id": p.prediction_id, **p.output},
            }
            for record, p in zip(records, found, strict=True)
        ]
        write_predictions(
            self._project.store.engine, rows, on_write=enqueue_for_predictions(self._project.settings.actions)
        )

    def predict_file(
        self,
        input_path: str | Path | None,
        output_path: str | Path,
        *,
        ref: str | int = "champion",
        progress: Callable[[int], None] | None = None,
        dask: Any = None,
        input_table: str | None = None,
        input_query: str | None = None,
        output_table: str | None = None,
        if_exists: str | None = None,
        log_predictions: bool = True,
        actions: bool = True,
        model: LoadedModel | None = None,
        explain: bool = False,
        explain_k: int = DEFAULT_TOP_K,
        online: bool = False,
    ) -> BatchResult:
        """Batch-score a CSV or Parquet file, or a table or query of a database, into a Parquet or CSV
        file or a database table, through the same scoring function as the API.

        A database is an SQLAlchemy URL (``sqlite:///data/x.db``: a relative path starts at the
        project; ``postgresql://user@host/db``) as ``input_path`` with ``input_table`` or
        ``input_query``, or as ``output_path`` with ``output_table``; ``if_exists`` (``fail``, the
        default, ``append`` or ``replace``) says what to do when that table is already there.

        With ``dask`` (a scheduler address, ``"local"`` for a new LocalCluster, or a
        ``distributed.Client``) a Parquet file or folder is scored on the cluster into a folder of
        Parquet partitions; the scores are the same, row by row. ``log_predictions=False`` scores
        without logging (and so without triggering actions): history, say, rather than live traffic;
        ``actions=False`` logs them without triggering actions (a replay, a backfill). An already
        loaded ``model`` (see :meth:`~loopml.project.models.Models.follow`) scores instead of version
        ``ref``, its window state going on from where it was. ``online`` reads and adds the window
        features in the state the API replicas share (``serve.online_store``): the file's events
        count in the API's windows at once, and theirs in the file's.

        A forecast model writes batch forecasts instead: the series listed in ``input_path``
        (``item``, optional ``group`` and ``horizon``), or with no input every series at every step,
        each equal to the forecast endpoint's.

        ``explain`` adds each row's top ``explain_k`` feature contributions as output columns
        (``explain_raw_score``, ``explain_base_value``, ``explain_class`` for a classifier, then
        ``explain_1_feature``, ``explain_1_contribution``, ... and ``explain_rest``; see
        :meth:`loopml.scoring.explain.Explainer.columns`); the prediction log does not keep them.
        """
        project = self._project
        if input_path is not None and not is_url(input_path):
            check_input_path(input_path)  # before the model loads; names --input, not source.path
        model = model if model is not None else project.models.load(ref, online=online)
        on_write = enqueue_for_predictions(project.settings.actions) if log_predictions and actions else None
        sql_in = bool(is_url(input_path or "") or input_table or input_query)
        if explain and model.task.scores_series:
            raise InputError(f"model '{model.name}' writes forecasts, not explained; leave out --explain.")
        top_k = explain_k if explain else None
        if top_k is not None:
            model.explainer  # noqa: B018 - a model that cannot be explained fails before any output
        if model.task.scores_series:
            if dask is not None:
                raise InputError("batch forecasts run locally (a row per series and step); leave out --dask.")
            if sql_in:
                raise InputError("batch forecasts read the series to forecast from a CSV or Parquet file.")
            output = self._output(output_path, output_table, if_exists)
            return self._forecast_file(model, input_path, output, on_write, log_predictions)
        if input_path is None:
            raise InputError(f"model '{model.name}' scores rows of a file: pass --input FILE.")
        if dask is not None and (sql_in or is_url(output_path) or output_table or if_exists):
            raise InputError("--dask scores Parquet into Parquet partitions; leave out --dask to use SQL.")
        if dask is not None:
            return score_file_dask(
                project.store,
                model,
                input_path,
                output_path,
                address=dask,
                progress=progress,
                on_write=on_write,
                log_predictions=log_predictions,
                policy=ScoringPolicy.of(project.settings),
                explain=top_k,
            )
        source = open_input(input_path, table=input_table, query=input_query, base_dir=project.directory)
        output = self._output(output_path, output_table, if_exists)
        return score_file(
            project.store,
            model,
            source,
            output,
            progress=progress,
            on_write=on_write,
            log_predictions=log_predictions,
            policy=ScoringPolicy.of(project.settings),
            explain=top_k,
        )

    def _output(self, output_path: str | Path, table: str | None, if_exists: str | None) -> Output:
        return open_output(output_path, table=table, if_exists=if_exists, base_dir=self._project.directory)

    def _forecast_file(
        self, model: LoadedModel, input_path: str | Path | None, output: Output, on_write: Any, log: bool
    ) -> BatchResult:
        from loopml.batch import forecast_file

        return forecast_file(
            self._project.store,
            model,
            output,
            input_path=input_path,
            stock=self._stock(),
            log_predictions=log,
            on_write=on_write,
        )

    def _stock(self) -> Path | None:
        forecast = self._project.settings.forecast
        stock = forecast.stock if forecast is not None else None
        return self._project.directory / stock if stock else None

    def forecast_table(self, ref: str | int = "champion") -> pd.DataFrame:
        """Every series' forecasts from the latest data version, as batch forecasts and the forecast
        endpoint give them (item, group, origin, period, horizon, forecast, on_hand, ...); not logged."""
        from loopml.scoring.forecast import forecast_source, forecast_table

        model = self._project.models.load(ref)
        return forecast_table(model, forecast_source(self._project.store, model, stock=self._stock()))

    def label_forecasts(self, ref: str | int = "champion") -> ForecastLabels:
        """Send the demand of every complete period of the latest data version as the labels of the
        logged forecasts of that period that have none yet (a forecast project's feedback comes
        from its own data: ingest the new lines, then call this)."""
        from loopml.project.forecasts import label_forecasts

        return label_forecasts(self._project, ref)

    def explain(
        self, prediction_id: str | None = None, k: int = DEFAULT_TOP_K, *, served: LoadedModel | None = None
    ) -> LoggedExplanation:
        """Why a logged prediction (the newest one when ``prediction_id`` is None) scored as it did:
        its inputs scored again by the version that made it, with the top ``k`` feature
        contributions (see :mod:`loopml.scoring.explain`). A :class:`~loopml.errors.NotFoundError`
        for an id the log does not hold. ``served``: a loaded model to use when it is that version
        (:meth:`served_model`), instead of loading the version again."""
        from loopml.project.explain import explain_logged

        return explain_logged(self._project, prediction_id, k, served=served)

    def served_model(self, app: Any) -> LoadedModel | None:
        """The model that ``app`` (from :meth:`Project.app` or ``loopml serve``) serves now, its
        window state kept current by the requests it answers; None when it serves none yet. Read
        as it is: the alias is not re-read and nothing is loaded (the requests do that)."""
        from loopml.serve.deps import server_state

        try:
            serving = server_state(app).holder.peek()
        except RuntimeError:  # not an app of create_app
            return None
        return serving.model if serving is not None else None

    def feedback(self, labels: Iterable[Mapping[str, Any]]) -> FeedbackResult:
        """Record ground truth for earlier predictions: ``{"prediction_id": ..., "label": ...}``
        items. Unknown prediction ids are counted, not stored; a label sent twice keeps the latest.
        Each label is checked against the version that made its prediction (binary: 0/1 or
        true/false; multiclass: one of its classes; regression: a finite number within the target's
        range): an :class:`~loopml.errors.InputError` naming the item and the prediction id
        otherwise, and nothing is stored."""
        return FeedbackResult(**record_feedback(self._project.store.engine, labels, label_check))

    def feedback_file(self, path: str | Path) -> FeedbackResult:
        """Record labels from a CSV or Parquet file with ``prediction_id`` and ``label`` columns."""
        file = Path(path)
        if not file.is_file():
            raise InputError(f"feedback file '{file}' does not exist.")
        frame = pd.read_csv(file) if file.suffix == ".csv" else pd.read_parquet(file)
        missing = {"prediction_id", "label"} - set(frame.columns)
        if missing:
            raise InputError(f"feedback file '{file}' lacks column(s) {', '.join(sorted(missing))}.")
        return self.feedback(
            {"prediction_id": p, "label": y}
            for p, y in zip(frame["prediction_id"], frame["label"], strict=True)
        )

    def logged(self, *, origin: Origin | None = None, event_time: bool = True) -> pd.DataFrame:
        """The prediction log of the project's model (one ``origin`` only when given; shadow
        predictions only when asked for): ``prediction_id``, ``time`` (the event time when the
        project has one and ``event_time``, else when it was made), ``model_version``, ``score``,
        ``label`` (the latest, NaN until one arrives) and ``inputs``."""
        project = self._project
        column = project.settings.event_time if event_time else None
        return load_predictions(project.store.engine, project.name, event_time=column, origin=origin)

    def count(self, origin: Origin | None = None) -> int:
        """How many predictions the log holds (made by ``origin`` when given)."""
        return count_predictions(self._project.store.engine, self._project.name, origin)

    def prune(self, older_than: str | None = None) -> PruneResult:
        """Delete predictions (and their labels) older than ``store.retention`` (or ``older_than``,
        a duration such as ``90d``)."""
        policy = self._project.settings.store.retention
        if older_than is not None:
            try:
                policy = RetentionConfig(predictions=older_than, labelled=policy.labelled)
            except ValueError:
                raise ConfigError(
                    f"--older-than '{older_than}' is not a duration; use e.g. 90d, 12w or 24h."
                ) from None
        if policy.predictions is None:
            raise ConfigError(
                "no retention policy: set store.retention.predictions in loopml.yaml (e.g. 90d), "
                "or pass --older-than 90d."
            )
        return prune_predictions(self._project.store.engine, policy)

    def replay_journal(self) -> JournalReplay:
        """Store what killed API processes journalled but had not written yet (ids already stored
        are skipped, so running it again is harmless)."""
        settings = self._project.settings
        folder = journal_dir(settings)
        count = replay_journal(
            self._project.store.engine, folder, on_write=enqueue_for_predictions(settings.actions)
        )
        return JournalReplay(count, folder)

    def point_in_time(self, history: pd.DataFrame, ref: str | int = "champion") -> PointInTime:
        """Score rows as of their event times with window features computed from ``history`` (the
        known events, with their labels where windows aggregate the target) instead of the live
        window state: a backtest, or a comparison of models on the same feature rows."""
        return PointInTime(self._project, history, ref)


class PointInTime:
    """Point-in-time scoring over a fixed history (see :meth:`Predictions.point_in_time`)."""

    def __init__(self, project: Project, history: pd.DataFrame, ref: str | int) -> None:
        self._project = project
        model = project.models.load(ref, history=False)
        settings = project.settings
        events = model.coerce(history)
        target = settings.target
        if target in history.columns:  # windows over the target (a terminal's fraud rate) read it
            events = events.assign(**{target: history[target].to_numpy()})
        window_history = EntityHistory(model.windows, settings.event_time or "", settings.id_column)
        window_history.extend(events)
        self._state = WindowState(window_history)

    def score(
        self, rows: pd.DataFrame, ref: str | int = "champion", others: Mapping[str, FittedModel] | None = None
    ) -> pd.DataFrame:
        """``rows`` scored by version ``ref`` (column ``score``) and by each of ``others`` (a column
        each, named by its key), all on the same point-in-time feature rows."""
        model = replace(self._project.models.load(ref, history=False), state=self._state)
        features = model.features(model.coerce(rows))
        scored = pd.DataFrame({"score": model.score(features)}, index=rows.index)
        for name, fitted in (others or {}).items():
            scored[name] = replace(model, pipeline=fitted.pipeline).score(features)
        return scored


def _jsonable(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as the prediction log keeps it (times as ISO text, NumPy numbers as Python's)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if hasattr(value, "isoformat"):
            value = value.isoformat()
        elif hasattr(value, "item"):
            value = value.item()
        out[str(key)] = value
    return out
