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
from loopml.scoring import load_model
from loopml.store import Store, sha256_bytes
from loopml.tasks import get_task, group_sides
from loopml.train.evaluate import segment_metrics
from loopml.train.fit import TrainResult, fit
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
    refit: bool = False,
) -> TrainOutcome:
    """Fit on a snapshot (the latest by default), compare with the champion on the same holdout,
    write the report, register the version, and make it champion if there is none.

    ``refit``: the registered pipeline is refitted on the holdout too, once judged (see ``fit``)."""
    dataset, frame = load_snapshot(store, settings.name, dataset_version)
    contract = _contract_for(settings, dataset.contract_version)
    run_id = start_run(store.engine, settings.name, dataset.id, {"model": settings.train.model})
    try:
        result = fit(frame, contract, settings, storage=settings.db_url, refit=refit)
        champion = _champion_on(settings, store, result)
        report = _write_report(settings, store, result, run_id, dataset.version, champion)
        profile = _write_profile(settings, store, result, run_id)
    except Exception as exc:
        finish_run(store.engine, run_id, error=f"{type(exc).__name__}: {exc}")
        raise
    metrics = {
        **result.metrics,
        "dataset_version": dataset.version,
        "champion": champion,
        "report": report,
    }
    finish_run(store.engine, run_id, metrics=metrics, params=result.params)
    version = register(
        store,
        settings.name,
        result.pipeline,
        metrics=metrics,
        signature={**_signature(settings, result, contract, dataset.version), "profile": profile},
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


def _champion_on(settings: Settings, store: Store, result: TrainResult) -> dict[str, Any] | None:
    """The current champion's metrics on the new holdout rows (None when there is no champion)."""
    version = get_alias(store.engine, settings.name, "champion")
    if version is None:
        return None
    champion = load_model(store, settings.name, version)
    if champion.task.name != settings.task:
        return None
    task = get_task(settings.task)
    if task.trainer is not None:
        return _custom_champion_on(task, champion, result, version)
    rows, y, mine = result.holdout, result.holdout_labels, result.holdout_output
    unseen = _unseen_groups(rows, champion.version.metrics)
    if unseen is None:
        unseen = _after_refit(rows, champion.version.metrics, settings.event_time)
    if unseen is not None:
        if not unseen.any():
            return None  # the champion trained on every holdout group: no fair comparison
        rows, y, mine = rows[unseen].reset_index(drop=True), y[unseen], mine[unseen]
    # The task's own output (LoadedModel.score gives a positive-class probability: binary only).
    output = task.predict(champion.pipeline, champion.features(champion.coerce(rows)))
    classes = champion.version.signature.get("classes")
    k, labels = settings.train.precision_at_k, None if classes is None else np.asarray(classes)

    def compute(y: np.ndarray, out: np.ndarray) -> dict[str, float]:
        return task.metrics(y, out, k=k, classes=labels)

    holdout = compute(y, output)
    metric = result.metrics["metric"]
    found: dict[str, Any] = {"version": version, "holdout": holdout, "score": holdout.get(metric)}
    if unseen is not None:  # judged on a subset: the challenger on the same rows
        found.update(rows=len(rows), challenger_score=compute(y, mine).get(metric))
    if settings.train.segments:
        found["segments"] = segment_metrics(rows, settings.train.segments, y, output, compute)
        if unseen is not None:  # the challenger's segments on the same rows, for the gate
            found["challenger_segments"] = segment_metrics(rows, settings.train.segments, y, mine, compute)
    return found


def _unseen_groups(holdout: pd.DataFrame, champion_metrics: dict[str, Any]) -> np.ndarray | None:
    """With a grouped split: which holdout rows belong to groups on the champion's holdout side, so
    that it never trained on them. None when the champion was not split by group.

    Groups sit on the side :func:`~loopml.tasks.base.group_sides` puts them (with the group the champion's
    split moved across, ``split["crossed"]``, when one did; older records lack it), so with the same seed
    and fraction every row qualifies; after a change of ``train.seed`` or ``holdout_fraction`` only
    the rows of groups the champion held out remain (a group it never saw but would have trained on
    is left out too: fewer rows, never a comparison biased toward the champion).
    """
    split = champion_metrics.get("split")
    if not split or split["group_column"] not in holdout.columns:
        return None
    values = holdout[split["group_column"]]
    return group_sides(values, split["holdout_fraction"], split["seed"], split.get("crossed"))


def _after_refit(
    holdout: pd.DataFrame, champion_metrics: dict[str, Any], event_time: str | None
) -> np.ndarray | None:
    """With a champion refitted on its own holdout: which holdout rows are newer than every row it
    learned from. None when it was not refitted or every row is newer; None too when no row is
    (then the whole holdout judges it, which can only favour the champion, never the challenger)."""
    through = (champion_metrics.get("refit") or {}).get("through")
    if through is None or event_time is None or event_time not in holdout.columns:
        return None
    newer = (pd.to_datetime(holdout[event_time]) > pd.Timestamp(through)).to_numpy()
    return newer if 0 < newer.sum() < len(newer) else None


def _custom_champion_on(task: Any, champion: Any, result: TrainResult, version: int) -> dict[str, Any] | None:
    """A task with its own trainer: its holdout rows are model inputs already (a forecast's backtest
    rows). With ``task.unseen``, both models are scored on the rows the champion never trained on."""
    rows, y, mine = result.holdout, result.holdout_labels, result.holdout_output
    if task.unseen is not None:
        mask = np.asarray(task.unseen(rows, champion.version.metrics), dtype=bool)
        if not mask.any():
            return None  # every holdout row lies in the champion's training data: no fair comparison
        rows, y, mine = rows[mask].reset_index(drop=True), y[mask], mine[mask]
    extra = {c: rows[c].to_numpy() for c in task.metric_inputs if c in rows}
    holdout = task.metrics(y, task.predict(champion.pipeline, rows), **extra)
    metric = result.metrics["metric"]
    return {
        "version": version,
        "holdout": holdout,
        "score": holdout.get(metric),
        "rows": len(rows),
        "challenger_score": task.metrics(y, mine, **extra).get(metric),
    }


def _write_profile(settings: Settings, store: Store, result: TrainResult, run_id: int) -> str:
    """Profile the holdout's inputs, window features and predictions: monitoring's reference."""
    from loopml.validate.profile import build_profile

    cols, task = result.columns, get_task(settings.task)
    frame = result.holdout.assign(prediction=_flat_output(result.holdout_output))
    predicted = {
        kind: ["prediction"] if task.profile_prediction == kind else [] for kind in ("numeric", "categorical")
    }
    numeric = [*cols.numeric, *cols.windows, *predicted["numeric"]]
    categorical = [*cols.categorical, *predicted["categorical"]]
    labels = np.asarray(result.holdout_labels)
    # The positives' score distribution, kept apart for concept drift.
    positives = labels == 1 if task.positive_class and labels.dtype.kind in "biuf" else None
    data = json.dumps(build_profile(frame, numeric, categorical, positives=positives).to_dict()).encode()
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
) -> str | None:
    """Render the HTML report into the artifact store; returns its key."""
    if not settings.train.report:
        return None
    from loopml.train.report import render_report

    page = render_report(
        result,
        title=f"{settings.name}: training run {run_id}",
        champion=champion,
        subtitle=f"task {settings.task}, model {result.params.get('model', settings.train.model)}, "
        f"data set version {dataset_version}, {result.metrics['rows_train']:,} training rows",
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
