"""Training through :class:`loopml.project.Project`, for real: binary (the fraud example), multiclass and
regression projects written here, with tuning, cross-validation, segments, the champion comparison,
the HTML report, reloading in a new process and the artifact checksum."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from sklearn.datasets import make_classification, make_regression

from loopml.errors import ArtifactIntegrityError, ConfigError
from loopml.examples import write_example
from loopml.project import Project, TrainOutcome
from loopml.registry import get_alias
from loopml.registry.serialize import dumps, loads
from loopml.scoring import load_model
from loopml.tasks import TASKS, get_task
from loopml.validate import load_snapshot

METRIC_KEYS = {"metric", "score", "baseline_score", "holdout_ci", "holdout", "baseline", "rows_holdout"}


def open_project(directory: Path) -> Project:
    """Open a project ignoring LOOPML_* variables of the environment (the stores stay in the directory)."""
    return Project.open(directory, environ={})


def edit_train(directory: Path, **keys: Any) -> None:
    """Set keys of the ``train`` section of loopml.yaml (dicts are merged one level deep)."""
    config = directory / "loopml.yaml"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    train = data.setdefault("train", {})
    for key, value in keys.items():
        train[key] = {**train.get(key, {}), **value} if isinstance(value, dict) else value
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def write_synthetic(
    directory: Path,
    task: str,
    model: str,
    params: dict[str, Any],
    *,
    n: int = 800,
    extra: str = "",
    refit: bool = False,
) -> Path:
    """A CSV project: six numbers, a categorical ``region``, an event time ``ts`` and the target ``y``."""
    directory.mkdir(parents=True, exist_ok=True)
    if task == "regression":
        X, y = make_regression(n_samples=n, n_features=6, n_informative=4, noise=10.0, random_state=0)
    else:
        classes = 3 if task == "multiclass" else 2
        X, y = make_classification(
            n_samples=n, n_features=6, n_informative=4, n_classes=classes, flip_y=0.05, random_state=0
        )
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    frame.insert(0, "row_id", np.arange(n))
    frame["region"] = np.random.default_rng(1).choice(["north", "south", "east"], n)
    frame["ts"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(n) * 600, unit="s")
    frame["y"] = np.array(["red", "green", "blue"])[y] if task == "multiclass" else y
    frame.to_csv(directory / "data.csv", index=False)
    write_config(directory, task, model, params, extra, refit=refit)
    return directory


def write_config(
    directory: Path, task: str, model: str, params: dict[str, Any], extra: str = "", *, refit: bool = False
) -> None:
    (directory / "loopml.yaml").write_text(
        f"name: syn-{task}\n"
        f"task: {task}\n"
        "source: {kind: csv, path: data.csv}\n"
        "target: y\n"
        "id_column: row_id\n"
        "event_time: ts\n"
        # Without refit the version serves the judged fit, so its holdout numbers are reproducible
        # from the loaded model; the fraud and tuned projects cover the refit.
        f"retrain: {{refit: {str(refit).lower()}}}\n"
        "train:\n"
        f"  model: {model}\n"
        f"  params: {json.dumps(params)}\n"
        "  bootstrap: 30\n" + extra,
        encoding="utf-8",
    )


def beats_baseline(metrics: dict[str, Any]) -> bool:
    score, baseline = metrics["score"], metrics["baseline_score"]
    return bool(score > baseline) if metrics["greater_is_better"] else bool(score < baseline)


def holdout_rows(project: Project, version: Any) -> tuple[pd.DataFrame, np.ndarray]:
    """The registered version's holdout rows (raw) and labels, rebuilt from the snapshot it was trained on."""
    _, frame = load_snapshot(project.store, project.name, version.signature["dataset_version"])
    times = pd.to_datetime(frame[project.settings.event_time])
    rows = frame[times >= pd.Timestamp(version.metrics["holdout_start"])].reset_index(drop=True)
    assert len(rows) == version.metrics["rows_holdout"]
    labels = get_task(project.settings.task).labels(rows[project.settings.target])
    return rows, labels


def task_output(model: Any, rows: pd.DataFrame) -> np.ndarray:
    """The task's raw output for raw rows, through the loaded model's coerce and features."""
    task = get_task(model.version.signature["task"])
    return task.predict(model.pipeline, model.features(model.coerce(rows)))


def study_trials(project: Project, model: str) -> optuna.Study:
    return optuna.load_study(study_name=f"loopml-{project.name}-{model}", storage=project.settings.db_url)


# --- projects, trained once per module ---------------------------------------------------------


FAST_LIGHTGBM = {"n_estimators": 20, "learning_rate": 0.05, "n_jobs": 1}


@pytest.fixture(scope="module")
def fraud(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The fraud example (40 days, 20 trees), trained once."""
    directory = tmp_path_factory.mktemp("fraud") / "proj"
    write_example("fraud", directory, days=40)
    edit_train(directory, params=FAST_LIGHTGBM, bootstrap=30)
    project = open_project(directory)
    rows = project.ingest().dataset.rows
    return {"project": project, "rows": rows, "outcome": project.train()}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A synthetic binary LightGBM project with 3 tuning trials per train(), trained twice."""
    directory = tmp_path_factory.mktemp("tuned") / "proj"
    write_synthetic(directory, "binary", "lightgbm", FAST_LIGHTGBM, extra="  tune: {trials: 3}\n", refit=True)
    project = open_project(directory)
    project.ingest()
    first = project.train()
    study = study_trials(project, "lightgbm")
    after_first = (len(study.trials), study.best_trial.params)
    second = project.train()
    study = study_trials(project, "lightgbm")
    after_second = (len(study.trials), study.best_trial.params)
    return {
        "project": project,
        "first": first,
        "second": second,
        "after_first": after_first,
        "after_second": after_second,
    }


@pytest.fixture(scope="module")
def binary_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, list[TrainOutcome]]:
    """A synthetic binary project: logistic (v1), HistGradientBoosting (v2) and LightGBM (v3) versions."""
    directory = write_synthetic(tmp_path_factory.mktemp("binary") / "proj", "binary", "logistic", {})
    open_project(directory).ingest()
    outcomes = []
    for model, params in [
        ("logistic", {}),
        ("hist_gradient_boosting", {"max_iter": 30}),
        ("lightgbm", {"n_estimators": 20, "n_jobs": 1}),
    ]:
        write_config(directory, "binary", model, params)
        outcomes.append(open_project(directory).train())
    return open_project(directory), outcomes


SEGMENTS = "  cv_folds: 2\n  segments: [region]\n"


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, list[TrainOutcome]]:
    directory = tmp_path_factory.mktemp("multiclass") / "proj"
    write_synthetic(directory, "multiclass", "lightgbm", {"n_estimators": 20, "n_jobs": 1}, extra=SEGMENTS)
    project = open_project(directory)
    project.ingest()
    return project, [project.train(), project.train()]


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, list[TrainOutcome]]:
    directory = tmp_path_factory.mktemp("regression") / "proj"
    write_synthetic(directory, "regression", "ridge", {"alpha": 1.0}, extra=SEGMENTS)
    project = open_project(directory)
    project.ingest()
    return project, [project.train(), project.train()]


# --- binary: the fraud example -----------------------------------------------------------------


def test_binary_version_records_metrics_threshold_confusion_and_calibration(fraud: dict[str, Any]) -> None:
    m = fraud["outcome"].version.metrics
    assert set(m) >= METRIC_KEYS | {"threshold", "confusion", "calibration"}
    assert m["metric"] == "average_precision" and m["task"] == "binary"
    assert beats_baseline(m), (m["score"], m["baseline_score"])
    assert m["score"] > 2 * m["baseline_score"]
    assert m["rows_train"] + m["rows_holdout"] == fraud["rows"]
    assert 0.0 < m["threshold"] < 1.0
    assert m["threshold"] == fraud["outcome"].version.signature["threshold"]
    assert sum(m["confusion"].values()) == m["rows_holdout"]
    assert sum(b["count"] for b in m["calibration"]) == m["rows_holdout"]
    lo, hi = m["holdout_ci"]["average_precision"]
    assert 0.0 <= lo <= hi <= 1.0
    assert m["rows_holdout"] == pytest.approx(0.2 * fraud["rows"], rel=0.05)
    assert fraud["outcome"].promoted


def test_the_loaded_version_reproduces_its_holdout_numbers(
    binary_models: tuple[Project, list[TrainOutcome]],
) -> None:
    # A version that serves its judged fit (retrain.refit false): the LightGBM one. A refitted
    # version learned the holdout too, so only its judged fit's numbers are honest (test below).
    project, version = binary_models[0], binary_models[1][-1].version
    assert "refit" not in version.metrics or not version.metrics["refit"]
    rows, y = holdout_rows(project, version)
    model = load_model(project.store, project.name, version.version)
    served = model.predict_frame(rows, observe=False)
    m = version.metrics
    assert get_task("binary").metrics(y, served, k=100)["average_precision"] == pytest.approx(
        m["score"], rel=1e-12
    )
    flagged = served >= m["threshold"]
    assert int(np.sum(flagged & (y == 1))) == m["confusion"]["tp"]
    assert int(np.sum(flagged & (y == 0))) == m["confusion"]["fp"]


def test_tuning_keeps_its_study_in_the_store_and_warm_starts(tuned: dict[str, Any]) -> None:
    first_count, first_best = tuned["after_first"]
    second_count, second_best = tuned["after_second"]
    assert first_count >= 3
    assert second_count >= first_count + 3  # the second train() added to the same study
    for outcome, best in ((tuned["first"], first_best), (tuned["second"], second_best)):
        params = outcome.version.signature["params"]
        # The best trial's searched values were used; fixed params override the search.
        searched = {k: v for k, v in best.items() if k not in FAST_LIGHTGBM}
        assert len(searched) >= 5 and {k: params[k] for k in searched} == searched
        assert {k: params[k] for k in FAST_LIGHTGBM} == FAST_LIGHTGBM and params["model"] == "lightgbm"
        assert outcome.version.metrics["tuning"]["study"] == "loopml-syn-binary-lightgbm"
    assert tuned["second"].version.metrics["tuning"]["trials"] == second_count


def test_second_train_compares_with_the_champion_on_the_same_holdout(tuned: dict[str, Any]) -> None:
    first, second = tuned["first"].version, tuned["second"].version
    assert first.metrics.get("champion") is None
    champion = second.metrics["champion"]
    assert champion["version"] == 1
    # Same data: v1 was refitted on every row once judged, so no holdout row is unseen by it and no
    # score is compared on rows it learned from; the record says why.
    assert first.metrics["refit"]["rows"] == first.metrics["rows_train"] + first.metrics["rows_holdout"]
    assert champion["score"] is None and "holdout" not in champion
    assert champion["waiting"].startswith("0 holdout rows are newer than everything champion v1 learned")
    assert not tuned["second"].promoted
    assert get_alias(tuned["project"].store.engine, "syn-binary", "champion") == 1


def read_report(project: Project, outcome: TrainOutcome) -> str:
    assert outcome.report is not None and outcome.report == outcome.version.metrics["report"]
    path = Path(project.settings.artifacts_url) / outcome.report
    assert path.is_file() and path.suffix == ".html"
    return path.read_text(encoding="utf-8")


def test_report_is_one_self_contained_html_page(fraud: dict[str, Any]) -> None:
    page = read_report(fraud["project"], fraud["outcome"])
    assert page.lstrip().lower().startswith("<!doctype html>") and page.count("<html") == 1
    # static SVG charts: opens offline, runs no script, loads nothing, stays small
    assert "<script" not in page and "<link " not in page and "<svg" in page
    assert len(page.encode()) < 1_000_000
    for section in ("Curves", "Calibration", "Confusion matrix at the threshold", "Feature importance"):
        assert f"<h2>{section}</h2>" in page, section
    assert "<h2>Residuals</h2>" not in page and "<h2>Tuning</h2>" not in page  # not tuned


def test_report_shows_mean_absolute_contributions_in_the_users_columns(fraud: dict[str, Any]) -> None:
    page = read_report(fraud["project"], fraud["outcome"])
    start = page.index("<h2>Feature contributions</h2>")
    section = page[start : page.index("<h2>", start + 1)]
    assert start < page.index("<h2>Feature importance</h2>")  # beside the gain importance, first
    assert "mean absolute contribution" in section and "holdout rows" in section
    assert ">tx_amount<" in section and ">customer_id__tx_amount__mean_1d<" in section  # windows by name
    assert "tx_datetime_hour" not in section
    gain = page[page.index("<h2>Feature importance</h2>") :]
    if "tx_datetime_hour" in gain:  # the event time's parts are features: summed into their column
        assert ">tx_datetime<" in section


def test_the_report_and_the_version_list_every_derived_feature_and_how_to_turn_it_off(
    fraud: dict[str, Any],
) -> None:
    metrics = fraud["outcome"].version.metrics
    derived = {row["feature"]: row for row in metrics["derived_features"]}
    assert derived["tx_datetime_hour"]["turn off"].startswith("leave features.datetime_parts out")
    assert derived["customer_id__tx_amount__mean_1d"]["from"] == "customer_id, tx_amount"
    assert (
        derived["customer_id__tx_amount__mean_1d"]["turn off"] == "features.windows[0] (its aggs and windows)"
    )
    ratios = [row for row in derived.values() if row["kind"] == "ratio to the relative_to window"]
    assert ratios and all(row["turn off"] == "features.windows[0].relative_to" for row in ratios)
    page = read_report(fraud["project"], fraud["outcome"])
    section = page[page.index("<h2>Derived features</h2>") :]
    assert "tx_datetime_is_night" in section and "features.windows[1] (its aggs and windows)" in section
    # `loopml train` judged the fit on the newest rows, then refitted on all of them
    assert metrics["refit"]["rows"] == fraud["rows"] == metrics["rows_train"] + metrics["rows_holdout"]


def test_tuned_report_has_tuning_and_the_champion(tuned: dict[str, Any]) -> None:
    page = read_report(tuned["project"], tuned["second"])
    assert "<h2>Tuning</h2>" in page and "loopml-syn-binary-lightgbm" in page
    champion = tuned["second"].version.metrics["champion"]
    if "waiting" in champion:  # every holdout row lies in what the refitted champion learned from
        assert f"no comparison with the champion: {champion['waiting']}" in page.replace("&#39;", "'")
    else:
        assert "current champion (version 1)" in page
    assert "<script" not in page


# --- multiclass and regression -----------------------------------------------------------------


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_multiclass_and_regression_versions(task: str, request: pytest.FixtureRequest) -> None:
    project, (first, second) = request.getfixturevalue(task)
    m = first.version.metrics
    assert set(m) >= METRIC_KEYS
    assert m["metric"] == {"multiclass": "f1_macro", "regression": "rmse"}[task]
    assert beats_baseline(m), (m["score"], m["baseline_score"])
    assert "threshold" not in m and "confusion" not in m
    assert m["metric"] in m["holdout_ci"]
    # cv_folds: 2 gives two time-ordered folds.
    assert len(m["cv"]["folds"]) == 2 and all(np.isfinite(m["cv"]["folds"]))
    assert m["cv"]["mean"] == pytest.approx(np.mean(m["cv"]["folds"]))
    # Metrics per segment value, on the holdout rows of that value.
    segments = {row["value"]: row for row in m["segments"]["region"]}
    assert set(segments) == {"north", "south", "east"}
    assert sum(row["rows"] for row in segments.values()) == m["rows_holdout"]
    rows, y = holdout_rows(project, first.version)
    output = task_output(load_model(project.store, project.name, 1), rows)
    classes = first.version.signature["classes"]
    metric = get_task(task).metrics
    kwargs = {"classes": np.asarray(classes)} if classes is not None else {}
    assert metric(y, output, **kwargs)[m["metric"]] == pytest.approx(m["score"], rel=1e-9)
    for value, row in segments.items():
        mask = (rows["region"] == value).to_numpy()
        assert row["rows"] == mask.sum()
        expected = metric(y[mask], output[mask], **kwargs)[m["metric"]]
        assert row[m["metric"]] == pytest.approx(expected, rel=1e-9), value
    # The second train() compares with the champion on the same holdout.
    champion = second.version.metrics["champion"]
    assert champion["version"] == 1
    assert champion["score"] == pytest.approx(m["score"], rel=1e-9)


def test_regression_report_has_residuals(regression: tuple[Project, list[TrainOutcome]]) -> None:
    project, (first, _) = regression
    page = (Path(project.settings.artifacts_url) / first.report).read_text(encoding="utf-8")
    assert "<h2>Residuals</h2>" in page and "<h2>Feature importance</h2>" in page
    assert "<h2>Curves</h2>" not in page and "<h2>Tuning</h2>" not in page
    assert "<h2>Metrics by region</h2>" in page
    assert "<script src=" not in page


def test_wrong_metric_is_a_one_line_config_error(tmp_path: Path) -> None:
    directory = write_synthetic(tmp_path / "proj", "binary", "logistic", {}, n=300, extra="  metric: rmse\n")
    project = open_project(directory)
    project.ingest()
    with pytest.raises(ConfigError) as info:
        project.train()
    message = str(info.value)
    assert "\n" not in message
    assert "'rmse'" in message and "average_precision" in message


def test_a_model_that_is_not_a_candidate_for_the_task_is_a_config_error(tmp_path: Path) -> None:
    directory = write_synthetic(tmp_path / "proj", "binary", "ridge", {}, n=300)
    project = open_project(directory)
    project.ingest()
    with pytest.raises(ConfigError, match=r"ridge.*valid: lightgbm, hist_gradient_boosting, logistic"):
        project.train()


# --- reloading in a new process, and the checksum ----------------------------------------------

RELOAD = """
import json, sys
import numpy as np, pandas as pd
from loopml.project import Project
from loopml.tasks import get_task
for case in json.loads(sys.argv[1]):
    model = Project.open(case["project"], environ={}).models.load(case["version"])
    rows = pd.read_parquet(case["rows"])
    task = get_task(model.version.signature["task"])
    np.save(case["out"], task.predict(model.pipeline, model.features(model.coerce(rows))))
    if task.name == "binary":
        np.save(case["served"], model.predict_frame(rows, observe=False))
"""


def test_every_model_type_reloads_in_a_new_process_with_identical_predictions(
    tmp_path: Path,
    fraud: dict[str, Any],
    binary_models: tuple[Project, list[TrainOutcome]],
    regression: tuple[Project, list[TrainOutcome]],
    multiclass: tuple[Project, list[TrainOutcome]],
) -> None:
    binary_project, binary_outcomes = binary_models
    models = [o.version.signature["params"]["model"] for o in binary_outcomes]
    assert models == ["logistic", "hist_gradient_boosting", "lightgbm"]
    versions = [
        ("fraud lightgbm with windows", fraud["project"], fraud["outcome"]),
        *((f"binary {m}", binary_project, o) for m, o in zip(models, binary_outcomes, strict=True)),
        ("regression ridge", *_first(regression)),
        ("multiclass lightgbm", *_first(multiclass)),
    ]
    cases, expected = [], {}
    for k, (name, project, outcome) in enumerate(versions):
        metrics, signature = outcome.version.metrics, outcome.version.signature
        model = load_model(project.store, project.name, outcome.version.version)
        rows, y = holdout_rows(project, outcome.version)
        # Loaded in this process, the version scores its holdout exactly as it did when it was trained
        # (a refitted one learned the holdout after it was judged: its score there is in-sample).
        classes = None if signature["classes"] is None else np.asarray(signature["classes"])
        task = get_task(signature["task"])
        again = task.metrics(y, task_output(model, rows), k=100, classes=classes)[metrics["metric"]]
        if not metrics.get("refit"):
            assert again == pytest.approx(metrics["score"], rel=1e-9), name
        rows = rows.sample(n=min(300, len(rows)), random_state=k).reset_index(drop=True)
        rows.to_parquet(tmp_path / f"rows{k}.parquet")
        served = model.predict_frame(rows, observe=False) if task.name == "binary" else None
        expected[name] = (task_output(model, rows), served)
        cases.append(
            {
                "project": str(project.settings.project_dir),
                "version": outcome.version.version,
                "rows": str(tmp_path / f"rows{k}.parquet"),
                "out": str(tmp_path / f"out{k}.npy"),
                "served": str(tmp_path / f"served{k}.npy"),
                "name": name,
            }
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_") or k.startswith("LOOPML_TEST_")}
    done = subprocess.run(
        [sys.executable, "-c", RELOAD, json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for case in cases:
        output, served = expected[case["name"]]
        reloaded = np.load(case["out"])
        assert reloaded.shape == output.shape and np.array_equal(reloaded, output), case["name"]
        if served is not None:
            assert np.array_equal(np.load(case["served"]), served), case["name"]
            assert np.allclose(served, output, rtol=0, atol=1e-12), case["name"]  # compiled path = pipeline


def _first(fixture: tuple[Project, list[TrainOutcome]]) -> tuple[Project, TrainOutcome]:
    return fixture[0], fixture[1][0]


# Tasks with their own trainer (forecast) fit rows of their own making: round-tripped in their own tests.
@pytest.mark.parametrize(
    ("task_name", "candidate"),
    [(t, c) for t in TASKS for c in TASKS[t].candidates if TASKS[t].trainer is None],
)
def test_every_candidate_survives_the_safe_format(task_name: str, candidate: str) -> None:
    """Each task's candidates, fitted, load back from skops bytes (trusting only loopml's list) unchanged."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120)})
    y = {
        "binary": (X["a"] > 0).astype(int).to_numpy(),
        "multiclass": np.array(["x", "y", "z"])[np.digitize(X["a"], [-0.5, 0.5])],
        "regression": X["a"].to_numpy() * 2,
    }[task_name]
    task = get_task(task_name)
    params = {"lightgbm": {"n_estimators": 5, "n_jobs": 1}, "hist_gradient_boosting": {"max_iter": 5}}
    model = task.candidate(candidate, params.get(candidate, {}), 0).fit(X, y)
    again = loads(dumps(model))
    assert np.array_equal(task.predict(again, X), task.predict(model, X))


def test_a_tampered_artifact_is_refused(tmp_path: Path) -> None:
    directory = write_synthetic(tmp_path / "proj", "binary", "logistic", {}, n=300)
    project = open_project(directory)
    project.ingest()
    version = project.train().version
    load_model(project.store, project.name, version.version)  # intact: loads
    path = Path(project.settings.artifacts_url) / version.artifact_key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError) as info:
        load_model(project.store, project.name, version.version)
    message = str(info.value)
    assert version.artifact_key in message and "SHA-256" in message and "\n" not in message
