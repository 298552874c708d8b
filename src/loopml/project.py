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

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.batch import BatchResult, score_file, score_file_dask
from loopml.config import Settings, load_settings
from loopml.features import window_specs
from loopml.registry import LoadedModel, ModelVersion, get_alias, load_model, register, set_alias
from loopml.store import Store, open_store, sha256_bytes
from loopml.tasks import get_task
from loopml.train import TrainResult, finish_run, fit, start_run
from loopml.validate import IngestResult, ingest, load_snapshot

if TYPE_CHECKING:
    from fastapi import FastAPI

    from loopml.monitor import MonitorReport

__all__ = ["Project", "TrainOutcome"]


@dataclass(frozen=True)
class TrainOutcome:
    """A registered version, whether it became the champion, and its report's artifact key."""

    version: ModelVersion
    promoted: bool
    dataset_version: int
    report: str | None = None


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

    def ingest(
        self, input_path: str | Path | None = None, *, progress: Callable[[str, int], None] | None = None
    ) -> IngestResult:
        """Read the source (or one ``input_path`` file of fixed rows) into a new data set version.

        ``progress(phase, rows)`` is called after each chunk.
        """
        path = Path(input_path) if input_path is not None else None
        return ingest(self.settings, self.store, input_path=path, progress=progress)

    def train(self, dataset_version: int | None = None) -> TrainOutcome:
        """Fit on a snapshot (the latest by default), compare with the champion on the same holdout,
        write the report, register the version, and make it champion if there is none."""
        dataset, frame = load_snapshot(self.store, self.name, dataset_version)
        contract = _contract_for(self.settings, dataset.contract_version)
        run_id = start_run(self.store.engine, self.name, dataset.id, {"model": self.settings.train.model})
        try:
            result = fit(frame, contract, self.settings, storage=self.settings.db_url)
            champion = self._champion_on(result)
            report = self._write_report(result, run_id, dataset.version, champion)
            profile = self._write_profile(result, run_id)
        except Exception as exc:
            finish_run(self.store.engine, run_id, error=f"{type(exc).__name__}: {exc}")
            raise
        metrics = {
            **result.metrics,
            "dataset_version": dataset.version,
            "champion": champion,
            "report": report,
        }
        finish_run(self.store.engine, run_id, metrics=metrics, params=result.params)
        version = register(
            self.store,
            self.name,
            result.pipeline,
            metrics=metrics,
            signature={**self._signature(result, contract, dataset.version), "profile": profile},
            run_id=run_id,
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
        return TrainOutcome(version, promoted, dataset.version, report)

    def _signature(self, result: TrainResult, contract: Any, dataset_version: int) -> dict[str, Any]:
        """What serving needs to score this version, plus its lineage."""
        return {
            "task": self.settings.task,
            "target": self.settings.target,
            "id_column": self.settings.id_column,
            "event_time": self.settings.event_time,
            "input_columns": result.input_columns,
            "contract": contract.model_dump(),
            "threshold": result.threshold,
            "dataset_version": dataset_version,
            "windows": [asdict(spec) for spec in window_specs(self.settings.features)],
            "classes": _classes(result),
            "params": result.params,
            "code_version": _code_version(),
        }

    def _champion_on(self, result: TrainResult) -> dict[str, Any] | None:
        """The current champion's metrics on the new holdout rows (None when there is no champion)."""
        version = get_alias(self.store.engine, self.name, "champion")
        if version is None:
            return None
        champion = load_model(self.store, self.name, version)
        if champion.version.signature.get("task", "binary") != self.settings.task:
            return None
        task = get_task(self.settings.task)
        # The task's own output (LoadedModel.score gives a positive-class probability: binary only).
        output = task.predict(champion.pipeline, champion.features(champion.coerce(result.holdout)))
        classes = champion.version.signature.get("classes")
        holdout = task.metrics(
            result.holdout_labels,
            output,
            k=self.settings.train.precision_at_k,
            classes=None if classes is None else np.asarray(classes),
        )
        return {"version": version, "holdout": holdout, "score": holdout.get(result.metrics["metric"])}

    def _write_profile(self, result: TrainResult, run_id: int) -> str:
        """Profile the holdout's inputs, window features and predictions: monitoring's reference."""
        from loopml.monitor.profile import build_profile

        cols = result.columns
        frame = result.holdout.assign(prediction=_flat_output(result.holdout_output))
        numeric = [
            *cols.numeric,
            *cols.windows,
            *([] if self.settings.task == "multiclass" else ["prediction"]),
        ]
        categorical = [*cols.categorical, *(["prediction"] if self.settings.task == "multiclass" else [])]
        data = json.dumps(build_profile(frame, numeric, categorical).to_dict()).encode()
        key = f"profiles/{self.name}/run-{run_id}-{sha256_bytes(data)[:12]}.json"
        self.store.artifacts.put_bytes(key, data)
        return key

    def _write_report(
        self, result: TrainResult, run_id: int, dataset_version: int, champion: dict[str, Any] | None
    ) -> str | None:
        """Render the HTML report into the artifact store; returns its key."""
        if not self.settings.train.report:
            return None
        from loopml.train.report import render_report

        page = render_report(
            result,
            title=f"{self.name}: training run {run_id}",
            champion=champion,
            subtitle=f"task {self.settings.task}, model {self.settings.train.model}, data set version "
            f"{dataset_version}, {result.metrics['rows_train']:,} training rows",
        )
        data = page.encode()
        key = f"reports/{self.name}/run-{run_id}-{sha256_bytes(data)[:12]}.html"
        self.store.artifacts.put_bytes(key, data)
        return key

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

    def monitor(self, ref: str | int = "champion", *, record: bool = True) -> MonitorReport:
        """Drift and performance of the latest window, alerts recorded (see ``monitor:`` in loopml.yaml)."""
        from loopml.monitor import run_monitor

        return run_monitor(self.store, self.name, self.settings.monitor, ref=ref, record=record)

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


def _flat_output(output: np.ndarray) -> np.ndarray:
    """One value per row: the score, or the most likely class index for class probabilities."""
    return output if output.ndim == 1 else np.argmax(output, axis=1)


def _classes(result: TrainResult) -> list[Any] | None:
    classes = getattr(result.pipeline, "classes_", None)
    return None if classes is None else [c.item() if hasattr(c, "item") else c for c in classes]


def _code_version() -> dict[str, str | None]:
    """loopml's version and, when run from a git checkout, its commit."""
    import subprocess

    from loopml import __version__

    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                cwd=Path(__file__).parent,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"loopml": __version__, "git_commit": commit}


def _contract_for(settings: Settings, version: int | None) -> Any:
    from loopml.validate import latest_contract, load_contract
    from loopml.validate.ingest import contracts_dir

    directory = contracts_dir(settings)
    path = directory / f"{settings.name}.v{version}.yaml"
    return load_contract(path) if version and path.exists() else latest_contract(directory, settings.name)
