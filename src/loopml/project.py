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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.actions import enqueue_for_alerts, enqueue_for_predictions
from loopml.batch import BatchResult, score_file, score_file_dask
from loopml.config import Settings, load_settings
from loopml.registry import LoadedModel, TrainOutcome, load_model, train_and_register
from loopml.store import Store, open_store
from loopml.validate import IngestResult, ingest

if TYPE_CHECKING:
    from fastapi import FastAPI

    from loopml.monitor import MonitorReport

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
        self, input_path: str | Path | None = None, *, progress: Callable[[str, int], None] | None = None
    ) -> IngestResult:
        """Read the source (or one ``input_path`` file of fixed rows) into a new data set version.

        ``progress(phase, rows)`` is called after each chunk.
        """
        path = Path(input_path) if input_path is not None else None
        return ingest(self.settings, self.store, input_path=path, progress=progress)

    def train(self, dataset_version: int | None = None, *, promote_if_first: bool = True) -> TrainOutcome:
        """Fit on a snapshot (the latest by default), compare with the champion on the same holdout,
        write the report and reference profile, register the version, and make it champion if there
        is none."""
        return train_and_register(
            self.settings, self.store, dataset_version, promote_if_first=promote_if_first
        )

    def load_model(self, ref: str | int = "champion") -> LoadedModel:
        """Load a version by number or alias, checking its SHA-256."""
        return load_model(self.store, self.name, ref)

    def predict_file(
        self,
        input_path: str | Path,
        output_path: str | Path,
        *,
        ref: str | int = "champion",
        progress: Callable[[int], None] | None = None,
        dask: Any = None,
    ) -> BatchResult:
        """Batch-score a CSV or Parquet file into another.

        With ``dask`` (a scheduler address, ``"local"`` for a new LocalCluster, or a
        ``distributed.Client``) a Parquet file or folder is scored on the cluster into a folder of
        Parquet partitions; the scores are the same, row by row.
        """
        model = self.load_model(ref)
        on_write = enqueue_for_predictions(self.settings)  # actions, in the log's transactions
        if dask is not None:
            return score_file_dask(
                self.store, model, input_path, output_path, address=dask, progress=progress, on_write=on_write
            )
        return score_file(self.store, model, input_path, output_path, progress=progress, on_write=on_write)

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
