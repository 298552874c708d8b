"""Training a version end to end: fit, compare with the champion on the same holdout, write the
report and the reference profile, register, and make the first version champion.

The Python API (:mod:`loopml.project`) and the retraining loop both train through it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopml.config import Settings
from loopml.features import window_specs
from loopml.registry import ModelVersion, get_alias, register, set_alias
from loopml.store import Store, sha256_bytes
from loopml.train.compare import champion_on
from loopml.train.fit import HoldoutAfter, TrainResult, fit
from loopml.train.report import holdout_contributions, holdout_curves
from loopml.train.runs import finish_run, start_run
from loopml.train.sanity import SanityWarning
from loopml.validate import load_snapshot

__all__ = ["TrainOutcome", "train_and_register"]


@dataclass(frozen=True)
class TrainOutcome:
    """A registered version, whether it became the champion, its report's artifact key, and the
    sanity warnings of its training (:mod:`loopml.train.sanity`)."""

    version: ModelVersion
    promoted: bool
    dataset_version: int
    report: str | None = None
    companions: tuple[TrainOutcome, ...] = ()  # models trained beside it (Project.train)
    warnings: tuple[SanityWarning, ...] = ()  # sanity warnings (also in version.metrics["warnings"])


def train_and_register(
    settings: Settings,
    store: Store,
    dataset_version: int | None = None,
    *,
    promote_if_first: bool = True,
    refit: bool | None = None,
    holdout_after: HoldoutAfter | None = None,
) -> TrainOutcome:
    """Fit on a snapshot (the latest by default), compare with the champion on the holdout rows it
    never learned from (:mod:`loopml.train.compare`), write the report, register the version, and
    make it champion if there is none.

    ``refit`` (default ``retrain.refit``): the registered pipeline is refitted on every row, the
    holdout included, once judged (see ``fit``); its metrics stay the judged fit's, ``refit`` and
    ``cutoff`` record the rows and the newest time it learned from. ``holdout_after``: a challenger's
    holdout holds only rows newer than the champion's training data."""
    refit = settings.retrain.refit if refit is None else refit
    dataset, frame = load_snapshot(store, settings.name, dataset_version)
    contract = _contract_for(settings, dataset.contract_version)
    run_id = start_run(store.engine, settings.name, dataset.id, {"model": settings.train.model})
    try:
        result = fit(
            frame, contract, settings, storage=settings.db_url, refit=refit, holdout_after=holdout_after
        )
        champion = champion_on(settings, store, result)
        contributions = holdout_contributions(result)
        report = _write_report(settings, store, result, run_id, dataset.version, champion, contributions)
        profile = _write_profile(settings, store, result, run_id)
    except Exception as exc:
        finish_run(store.engine, run_id, error=f"{type(exc).__name__}: {exc}")
        raise
    metrics = {
        **result.metrics,
        "dataset_version": dataset.version,
        "champion": champion,
        "report": report,
        # derived figures kept to compare versions side by side (the dashboard's model page)
        "curves": holdout_curves(result),
        "top_features": dict(list((contributions or result.importance).items())[:15]),
        "top_features_kind": "mean |contribution|" if contributions else "share of gain",
    }
    finish_run(store.engine, run_id, metrics=metrics, params=result.params)
    version = register(
        store,
        settings.name,
        result.pipeline,
        metrics=metrics,
        signature={
            **_signature(settings, result, contract, dataset.version),
            "event_time_span": _event_time_span(frame, settings.event_time),
            "profile": profile,
        },
        run_id=run_id,
    )
    promoted = promote_if_first and get_alias(store.engine, settings.name, "champion") is None
    if promoted:
        set_alias(
            store,
            settings.name,
            "champion",
            version.version,
            reason="first registered version",
            actor="loopml train",
        )
    return TrainOutcome(version, promoted, dataset.version, report, warnings=result.warnings)


def _event_time_span(frame: pd.DataFrame, event_time: str | None) -> list[str] | None:
    """The first and last event time of the training data (ISO 8601, naive UTC), or None: serving
    refuses event times long before the first (``contract.event_time_before``)."""
    if event_time is None or event_time not in frame.columns:
        return None
    times = pd.to_datetime(frame[event_time], errors="coerce")
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    times = times.dropna()
    if times.empty:
        return None
    return [times.min().isoformat(), times.max().isoformat()]


def _signature(
    settings: Settings, result: TrainResult, contract: Any, dataset_version: int
) -> dict[str, Any]:
    """What serving needs to score this version, plus its lineage."""
    return {
        "task": settings.task,
        "target": settings.target,
        "id_column": settings.id_column,
        "event_time": settings.event_time,
        "input_columns": result.input_columns,
        "contract": contract.model_dump(),
        "threshold": result.threshold,
        "dataset_version": dataset_version,
        "windows": [asdict(spec) for spec in window_specs(settings.features)],
        "classes": _classes(result),
        "forecast": settings.forecast.model_dump() if settings.forecast is not None else None,
        "params": result.params,
        "code_version": _code_version(),
    }


def _write_profile(settings: Settings, store: Store, result: TrainResult, run_id: int) -> str:
    """Profile the holdout's inputs, window features, the model's derived inputs and predictions,
    with their importance: monitoring's reference (:mod:`loopml.train.reference`); the estimate's
    calibrator, when the scores need one, goes beside it in the registry's safe format."""
    from loopml.registry import dumps
    from loopml.train.reference import build_reference

    profile, calibrator = build_reference(settings, result, _flat_output(result.holdout_output))
    found = profile.to_dict()
    if calibrator is not None:
        blob = dumps(calibrator)
        digest = sha256_bytes(blob)
        where = f"profiles/{settings.name}/run-{run_id}-calibrator-{digest[:12]}.skops"
        store.artifacts.put_bytes(where, blob)
        found["calibration"] = {**found["calibration"], "artifact": where, "sha256": digest}
    data = json.dumps(found).encode()
    key = f"profiles/{settings.name}/run-{run_id}-{sha256_bytes(data)[:12]}.json"
    store.artifacts.put_bytes(key, data)
    return key


def _write_report(
    settings: Settings,
    store: Store,
    result: TrainResult,
    run_id: int,
    dataset_version: int,
    champion: dict[str, Any] | None,
    contributions: dict[str, float],
) -> str | None:
    """Render the HTML report into the artifact store; returns its key."""
    if not settings.train.report:
        return None
    from loopml.train.report import render_report

    refit = result.metrics.get("refit")
    learned = f", then refitted on all {refit['rows']:,} rows through {refit['through']}" if refit else ""
    waiting = (
        f"; no comparison with the champion: {champion['waiting']}"
        if champion and "waiting" in champion
        else ""
    )
    page = render_report(
        result,
        title=f"{settings.name}: training run {run_id}",
        champion=champion if champion and "holdout" in champion else None,  # scored on unseen rows only
        contributions=contributions,
        subtitle=f"task {settings.task}, model {result.params.get('model', settings.train.model)}, "
        f"data set version {dataset_version}, {result.metrics['rows_train']:,} training rows"
        f"{learned}{waiting}",
    )
    data = page.encode()
    key = f"reports/{settings.name}/run-{run_id}-{sha256_bytes(data)[:12]}.html"
    store.artifacts.put_bytes(key, data)
    return key


def _flat_output(output: np.ndarray) -> np.ndarray:
    """One value per row: the score, or the most likely class index for class probabilities."""
    return output if output.ndim == 1 else np.argmax(output, axis=1)


def _classes(result: TrainResult) -> list[Any] | None:
    classes = getattr(result.pipeline, "classes_", None)
    return None if classes is None else [c.item() if hasattr(c, "item") else c for c in classes]


def _code_version() -> dict[str, str | None]:
    """loopml's version and, when run from a git checkout, its commit."""
    import subprocess

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
    return {"loopml": version("loopml"), "git_commit": commit}


def _contract_for(settings: Settings, version: int | None) -> Any:
    from loopml.validate import contracts_dir, latest_contract, load_contract

    directory = contracts_dir(settings.project_dir)
    path = directory / f"{settings.name}.v{version}.yaml"
    return load_contract(path) if version and path.exists() else latest_contract(directory, settings.name)
