"""The default training's choices on the validation slice (:mod:`loopml.train.select`): LightGBM with
its own defaults is a candidate and the default is never worse on the holdout than it; datetime
parts are kept only when they help; choices written in loopml.yaml are left alone; tuning and
training emit no library warnings.

Real projects on real data: scikit-learn's bundled breast-cancer measurements (with a datetime
column of noise) and a synthetic ledger whose target depends on the hour of day.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer, make_classification, make_regression

from loopml.project import Project, TrainOutcome
from loopml.tasks import get_task, time_split
from loopml.train import fit, fit_served
from loopml.validate import infer_contract, load_snapshot


def cells_frame() -> pd.DataFrame:
    """Breast-cancer cell measurements (names with units in brackets), a datetime column of pure
    noise (``measured_at``), and the 0/1 target ``malignant``."""
    bunch = load_breast_cancer()
    frame = pd.DataFrame(bunch.data, columns=[f"{c} [au]" for c in bunch.feature_names])
    rng = np.random.default_rng(0)
    minutes = rng.integers(0, 365 * 24 * 60, len(frame))
    frame["measured_at"] = pd.Timestamp("2025-01-01") + pd.to_timedelta(minutes, unit="min")
    frame["malignant"] = 1 - bunch.target
    return frame


def night_frame(n: int = 3000) -> pd.DataFrame:
    """Payments whose target depends mostly on the hour of ``opened_at`` (nights are risky)."""
    rng = np.random.default_rng(1)
    opened = pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 90 * 24 * 60, n), unit="min")
    night = np.asarray(opened.hour < 6)
    amount = rng.gamma(2.0, 40.0, n)
    risky = rng.random(n) < np.where(night, 0.7, 0.05)
    return pd.DataFrame({"amount": amount, "opened_at": opened, "flagged": risky.astype(int)})


def write_project(
    directory: Path, frame: pd.DataFrame, target: str, *, ingest: bool = True, **sections: Any
) -> Project:
    """A CSV project over ``frame`` (task binary unless ``task`` is given), ingested."""
    directory.mkdir(parents=True, exist_ok=True)
    frame.to_csv(directory / "data.csv", index=False)
    config: dict[str, Any] = {
        "name": "proj",
        "task": sections.pop("task", "binary"),
        "source": {"kind": "csv", "path": "data.csv"},
        "target": target,
        "train": {"bootstrap": 20, "report": True},
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    (directory / "loopml.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    project = Project.open(directory, environ={})
    if ingest:
        project.ingest()
    return project


@pytest.fixture(scope="module")
def cells(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, TrainOutcome]:
    project = write_project(tmp_path_factory.mktemp("cells") / "proj", cells_frame(), "malignant")
    return project, project.train()


def plain_lightgbm_holdout(project: Project, outcome: TrainOutcome) -> tuple[float, float]:
    """loopml's holdout score and that of ``LGBMClassifier()`` (LightGBM's defaults) fitted on the
    same training rows and the same features (the registered pipeline's preprocessor)."""
    import lightgbm as lgb

    settings, task = project.settings, get_task(project.settings.task)
    _, frame = load_snapshot(project.store, project.name, outcome.dataset_version)
    frame = frame.reset_index(drop=True)
    y = task.labels(frame[settings.target])
    cfg = settings.train
    train, holdout = time_split(frame, settings.event_time, cfg.holdout_fraction, y, cfg.seed)
    pipeline = project.models.load(outcome.version.version).pipeline
    features = pipeline[:-1]
    plain = lgb.LGBMClassifier(verbose=-1, n_jobs=1).fit(features.transform(frame.iloc[train]), y[train])
    ours = task.metrics(y[holdout], task.predict(pipeline, frame.iloc[holdout]))["average_precision"]
    theirs = task.metrics(y[holdout], task.predict(plain, features.transform(frame.iloc[holdout])))
    assert ours == pytest.approx(outcome.version.metrics["score"], rel=1e-12)  # the same holdout rows
    return ours, theirs["average_precision"]


def test_the_default_is_not_worse_on_the_holdout_than_lightgbms_defaults(
    cells: tuple[Project, TrainOutcome],
) -> None:
    project, outcome = cells
    ours, plain = plain_lightgbm_holdout(project, outcome)
    assert ours >= plain
    selection = outcome.version.metrics["selection"]
    assert {c["candidate"] for c in selection["candidates"]} == {"lightgbm", "lightgbm_default"}
    chosen = [c for c in selection["candidates"] if c["chosen"]]
    assert len(chosen) == 1 and chosen[0]["candidate"] == selection["chosen"]
    assert outcome.version.signature["params"]["model"] == selection["chosen"]
    # The margin is the winner's validation score over the best rival on the same features.
    rivals = [c["validation"] for c in selection["candidates"] if not c["chosen"]]
    rivals = [
        c["validation"]
        for c in selection["candidates"]
        if not c["chosen"] and c["features"] == selection["features"]
    ] or rivals
    assert selection["margin"] == pytest.approx(chosen[0]["validation"] - max(rivals))
    assert selection["chosen"] in selection["summary"] or "LightGBM" in selection["summary"]


def test_datetime_parts_that_do_not_help_are_dropped_and_said(cells: tuple[Project, TrainOutcome]) -> None:
    project, outcome = cells
    selection = outcome.version.metrics["selection"]
    assert selection["features"] == "without datetime parts"
    (dropped,) = selection["dropped"]
    assert dropped["columns"] == ["measured_at"] and dropped["setting"] == "features.datetime_parts"
    assert "measured_at_hour" in dropped["features"] and "did not help" in dropped["reason"]
    # No longer an input: a request need not carry it, and the model never sees it.
    assert "measured_at" not in outcome.version.signature["input_columns"]
    names = list(project.models.load(outcome.version.version).pipeline[:-1].get_feature_names_out())
    assert not any(n.startswith("measured_at") for n in names)
    page = (Path(project.settings.artifacts_url) / outcome.report).read_text(encoding="utf-8")
    assert "<h2>Model selection (validation slice)</h2>" in page and "measured_at_hour" in page


def test_datetime_parts_that_help_are_kept(tmp_path: Path) -> None:
    project = write_project(tmp_path / "proj", night_frame(), "flagged")
    outcome = project.train()
    selection = outcome.version.metrics["selection"]
    assert selection["dropped"] == []
    assert selection["features"] == "all"
    full = next(c for c in selection["candidates"] if "parts_win_share" in c)
    assert full["features"] == "all" and full["parts_win_share"] >= 0.9
    assert "opened_at" in outcome.version.signature["input_columns"]


def test_choices_written_in_the_project_file_are_kept(tmp_path: Path) -> None:
    """Datetime parts listed in loopml.yaml and a fixed model parameter are the user's choice:
    nothing is compared, nothing dropped."""
    project = write_project(
        tmp_path / "proj",
        cells_frame(),
        "malignant",
        features={"datetime_parts": ["hour", "dayofweek"]},
        train={"params": {"n_estimators": 40, "n_jobs": 1}},
    )
    outcome = project.train()
    metrics = outcome.version.metrics
    assert "selection" not in metrics
    assert outcome.version.signature["params"] == {"model": "lightgbm", "n_estimators": 40, "n_jobs": 1}
    assert "measured_at" in outcome.version.signature["input_columns"]


def test_fit_served_makes_the_same_choice_as_fit(tmp_path: Path) -> None:
    """The served-only fit runs the same comparison: the very same trees as ``fit``."""
    frame = cells_frame()
    settings = write_project(tmp_path / "proj", frame, "malignant", ingest=False).settings
    contract = infer_contract(frame, settings.name, target="malignant")
    judged = fit(frame, contract, settings)
    assert judged.metrics["selection"]["dropped"]
    served = fit_served(frame, contract, settings)
    assert served[-1].booster_.model_to_string() == judged.pipeline[-1].booster_.model_to_string()


def synthetic(task: str, n: int = 600) -> pd.DataFrame:
    if task == "regression":
        X, y = make_regression(n_samples=n, n_features=5, noise=5.0, random_state=0)
    else:
        classes = 3 if task == "multiclass" else 2
        X, y = make_classification(
            n_samples=n, n_features=5, n_informative=3, n_classes=classes, random_state=0
        )
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    frame["when"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(n) * 3600, unit="s")
    frame["y"] = np.array(["a", "b", "c"])[y] if task == "multiclass" else y
    return frame


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_tuning_and_training_emit_no_warnings(tmp_path: Path, task: str) -> None:
    """A tuned default training (LightGBM trials with early stopping, the comparison with LightGBM's
    defaults, datetime parts compared, threshold, report) warns about nothing."""
    project = write_project(
        tmp_path / "proj",
        synthetic(task),
        "y",
        task=task,
        event_time="when",
        features={"include": ["x0", "x1", "x2", "x3", "x4", "when"]},
        train={"params": {"n_jobs": 1}, "tune": {"trials": 3, "timeout_s": 60}},
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = project.train()
    assert [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught] == []
    selection = outcome.version.metrics["selection"]
    tuned = [c for c in selection["candidates"] if "tuned_trials" in c]
    assert len(tuned) == 1 and tuned[0]["tuned_trials"] >= 3
    assert any(c["candidate"] == "lightgbm_default" for c in selection["candidates"])
    assert outcome.version.metrics["tuning"]["trials"] >= 3
