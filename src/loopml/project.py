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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.batch import BatchResult, score_file, score_file_dask
from loopml.config import Settings, load_settings
from loopml.features import window_specs
from loopml.registry import LoadedModel, ModelVersion, get_alias, load_model, register, set_alias
from loopml.store import Store, open_store
from loopml.train import finish_run, fit, start_run
from loopml.validate import IngestResult, ingest, load_snapshot

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["Project", "TrainOutcome"]


@dataclass(frozen=True)
class TrainOutcome:
    """A registered version and whether it became the champion."""

    version: ModelVersion
    promoted: bool
    dataset_version: int


class Project:
    """One ML system: its settings (``loopml.yaml``) and its stores."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    @classmethod
    def open(cls, path: str | os.PathLike[str] = ".", environ: Mapping[str, str] | None = None) -> Project:
        """Read ``<path>/loopml.yaml`` and open the stores it names."""
        settings = load_settings(path, environ=environ)
        return cls(settings, open_store(settings.db_url, settings.artifacts_url))

    @property
    def name(self) -> str:
        return self.settings.name

    def ingest(self) -> IngestResult:
        """Read the source into a new, contract-checked data set version."""
        return ingest(self.settings, self.store)

    def train(self, dataset_version: int | None = None) -> TrainOutcome:
        """Fit on a snapshot (the latest by default), register it, and make it champion if there is none."""
        dataset, frame = load_snapshot(self.store, self.name, dataset_version)
        contract = _contract_for(self.settings, dataset.contract_version)
        run_id = start_run(self.store.engine, self.name, dataset.id, {"model": self.settings.train.model})
        try:
            result = fit(frame, contract, self.settings)
        except Exception as exc:
            finish_run(self.store.engine, run_id, error=f"{type(exc).__name__}: {exc}")
            raise
        metrics = {**result.metrics, "dataset_version": dataset.version}
        finish_run(self.store.engine, run_id, metrics=metrics, params=result.params)
        signature = {
            "task": self.settings.task,
            "target": self.settings.target,
            "id_column": self.settings.id_column,
            "event_time": self.settings.event_time,
            "input_columns": result.input_columns,
            "contract": contract.model_dump(),
            "threshold": 0.5,
            "dataset_version": dataset.version,
            "windows": [asdict(spec) for spec in window_specs(self.settings.features)],
        }
        version = register(
            self.store, self.name, result.pipeline, metrics=metrics, signature=signature, run_id=run_id
        )
        promoted = get_alias(self.store.engine, self.name, "champion") is None
        if promoted:
            set_alias(
                self.store.engine,
                self.name,
                "champion",
                version.version,
                reason="first registered version",
                actor="loopml train",
            )
        return TrainOutcome(version, promoted, dataset.version)

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
        if dask is not None:
            return score_file_dask(
                self.store, model, input_path, output_path, address=dask, progress=progress
            )
        return score_file(self.store, model, input_path, output_path, progress=progress)

    def app(self) -> FastAPI:
        """The prediction API for this project (``uvicorn.run(project.app())``)."""
        from loopml.serve import create_app

        return create_app(self.settings, self.store)


def _contract_for(settings: Settings, version: int | None) -> Any:
    from loopml.validate import latest_contract, load_contract
    from loopml.validate.ingest import contracts_dir

    directory = contracts_dir(settings)
    path = directory / f"{settings.name}.v{version}.yaml"
    return load_contract(path) if version and path.exists() else latest_contract(directory, settings.name)
