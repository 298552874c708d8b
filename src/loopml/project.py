"""The Python API: open a project, then ingest, train, predict and serve.

The CLI is a thin layer over this module, so notebooks and orchestrators (Airflow, Prefect,
Dagster, cron) call the same steps.

Examples
--------
>>> import loopml, tempfile
>>> project = loopml.init_project(tempfile.mkdtemp(), example="fraud", days=20)  # doctest: +SKIP
>>> project.ingest().dataset.rows  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.actions import enqueue_for_alerts, enqueue_for_predictions
from loopml.batch import BatchResult, score_file, score_file_dask
from loopml.batch.outputs import Output, is_url, open_output
from loopml.batch.score import open_input
from loopml.config import Settings, failure_settings, load_settings
from loopml.errors import InputError
from loopml.scoring import LoadedModel, load_model
from loopml.store import Store, open_store
from loopml.train import TrainOutcome, train_and_register
from loopml.validate import IngestResult, ingest

if TYPE_CHECKING:
    from fastapi import FastAPI

    from loopml.monitor import MonitorReport
    from loopml.retrain import CycleResult

__all__ = ["Project", "TrainOutcome"]


class Project:
    """One ML system: its settings (``loopml.yaml``) and its stores."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    @classmethod
    def open(cls, path: str | os.PathLike[str] = ".", environ: Mapping[str, str] | None = None) -> Project:
        """Read ``<path>/loopml.yaml`` and open the stores it names."""
        settings = load_settings(path, environ=environ)
        return cls(
            settings, open_store(settings.db_url, settings.artifacts_url, settings.store.artifacts_options)
        )

    @property
    def name(self) -> str:
        return self.settings.name

    def ingest(
        self,
        input_path: str | Path | None = None,
        *,
        progress: Callable[[str, int], None] | None = None,
        dask: Any = None,
    ) -> IngestResult:
        """Read the source (or one ``input_path`` file of fixed rows) into a new data set version.

        ``progress(phase, rows)`` is called after each chunk. With ``dask`` (a scheduler address,
        ``"local"`` or a ``distributed.Client``) the rows of a Parquet source are checked on the cluster.
        """
        path = Path(input_path) if input_path is not None else None
        result = ingest(self.settings, self.store, input_path=path, progress=progress, dask=dask)
        for companion in self.companions:  # the same rows, under the companion model's own name
            ingest(companion, self.store, input_path=path, dask=dask)
        return result

    @property
    def companions(self) -> list[Settings]:
        """The settings of the models trained beside the project's own from the same data: with a
        ``maintenance:`` section, the failure model (``fails within N cycles``) beside the RUL model."""
        return [failure_settings(self.settings)] if self.settings.maintenance is not None else []

    def train(self, dataset_version: int | None = None, *, promote_if_first: bool = True) -> TrainOutcome:
        """Fit on a snapshot (the latest by default), compare with the champion on the same holdout,
        write the report and reference profile, register the version, and make it champion if there
        is none.

        Each companion model (:attr:`companions`) is trained the same way on its latest snapshot;
        their outcomes are the returned outcome's ``companions``.
        """
        outcome = train_and_register(
            self.settings, self.store, dataset_version, promote_if_first=promote_if_first
        )
        others = tuple(self._train_companion(c, promote_if_first) for c in self.companions)
        return replace(outcome, companions=others) if others else outcome

    def _train_companion(self, settings: Settings, promote_if_first: bool) -> TrainOutcome:
        from loopml.validate.datasets import latest_version

        if latest_version(self.store, settings.name) is None:  # ingested before it was configured
            ingest(settings, self.store)
        return train_and_register(settings, self.store, promote_if_first=promote_if_first)

    def retrain(self, *, force: bool = False, dry_run: bool = False) -> list[CycleResult]:
        """One retraining cycle (policy, challenger, gate, promotion) for the project's model, then for
        each companion model, each judged on its own labels, triggers and holdout."""
        from loopml.retrain import run_cycle

        return [
            run_cycle(settings, self.store, force=force, dry_run=dry_run)
            for settings in (self.settings, *self.companions)
        ]

    def load_model(self, ref: str | int = "champion") -> LoadedModel:
        """Load a version by number or alias, checking its SHA-256."""
        return load_model(self.store, self.name, ref)

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
    ) -> BatchResult:
        """Batch-score a CSV or Parquet file, or a table or query of a database, into a Parquet or CSV
        file or a database table.

        A database is an SQLAlchemy URL (``sqlite:///data/x.db``: a relative path starts at the
        project; ``postgresql://user@host/db``) as ``input_path`` with ``input_table`` or
        ``input_query``, or as ``output_path`` with ``output_table``; ``if_exists`` (``fail``, the
        default, ``append`` or ``replace``) says what to do when that table is already there.

        With ``dask`` (a scheduler address, ``"local"`` for a new LocalCluster, or a
        ``distributed.Client``) a Parquet file or folder is scored on the cluster into a folder of
        Parquet partitions; the scores are the same, row by row.

        A forecast model writes batch forecasts instead (:func:`loopml.batch.forecast_file`): the
        series listed in ``input_path`` (``item``, optional ``group`` and ``horizon``), or with no
        input every series at every step, each equal to the forecast endpoint's.
        """
        model = self.load_model(ref)
        on_write = enqueue_for_predictions(self.settings)  # actions, in the log's transactions
        sql_in = bool(is_url(input_path or "") or input_table or input_query)
        if model.task.scores_series:
            if dask is not None:
                raise InputError("batch forecasts run locally (a row per series and step); leave out --dask.")
            if sql_in:
                raise InputError("batch forecasts read the series to forecast from a CSV or Parquet file.")
            output = self._output(output_path, output_table, if_exists)
            return self._forecast_file(model, input_path, output, on_write)
        if input_path is None:
            raise InputError(f"model '{model.name}' scores rows of a file: pass --input FILE.")
        if dask is not None and (sql_in or is_url(output_path) or output_table or if_exists):
            raise InputError("--dask scores Parquet into Parquet partitions; leave out --dask to use SQL.")
        if dask is not None:
            return score_file_dask(
                self.store, model, input_path, output_path, address=dask, progress=progress, on_write=on_write
            )
        base = self.settings.project_dir
        source = open_input(input_path, table=input_table, query=input_query, base_dir=base)
        output = self._output(output_path, output_table, if_exists)
        return score_file(self.store, model, source, output, progress=progress, on_write=on_write)

    def _output(self, output_path: str | Path, table: str | None, if_exists: str | None) -> Output:
        return open_output(output_path, table=table, if_exists=if_exists, base_dir=self.settings.project_dir)

    def _forecast_file(
        self,
        model: LoadedModel,
        input_path: str | Path | None,
        output: Output,
        on_write: Any,
    ) -> BatchResult:
        from loopml.batch import forecast_file

        stock = self.settings.forecast.stock if self.settings.forecast is not None else None
        return forecast_file(
            self.store,
            model,
            output,
            input_path=input_path,
            stock=self.settings.project_dir / stock if stock else None,
            on_write=on_write,
        )

    def monitor(self, ref: str | int = "champion", *, record: bool = True) -> MonitorReport:
        """Drift and performance of the latest window, alerts recorded (see ``monitor:`` in loopml.yaml)."""
        from loopml.monitor import run_monitor
        from loopml.store import journal_dir, replay_journal

        # predictions a killed API acknowledged but had not written yet count too
        replay_journal(
            self.store.engine, journal_dir(self.settings), on_write=enqueue_for_predictions(self.settings)
        )
        on_alert = enqueue_for_alerts(self.settings)  # alert actions, in the alerts' transaction
        return run_monitor(
            self.store, self.name, self.settings.monitor, ref=ref, record=record, on_alert=on_alert
        )

    def feedback(self, path: str | Path) -> dict[str, int]:
        """Record labels from a CSV or Parquet file with ``prediction_id`` and ``label`` columns."""
        import pandas as pd

        from loopml.errors import InputError
        from loopml.monitor import record_feedback

        file = Path(path)
        if not file.is_file():
            raise InputError(f"feedback file '{file}' does not exist.")
        frame = pd.read_csv(file) if file.suffix == ".csv" else pd.read_parquet(file)
        missing = {"prediction_id", "label"} - set(frame.columns)
        if missing:
            raise InputError(f"feedback file '{file}' lacks column(s) {', '.join(sorted(missing))}.")
        records = [
            {"prediction_id": p, "label": y}
            for p, y in zip(frame["prediction_id"], frame["label"], strict=True)
        ]
        return record_feedback(self.store.engine, records)

    def app(self) -> FastAPI:
        """The prediction API for this project (``uvicorn.run(project.app())``)."""
        from loopml.serve import create_app

        return create_app(self.settings, self.store)
