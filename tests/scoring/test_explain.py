"""Explanations, on models trained for real through :class:`loopml.project.Project`: each row's
contributions add up to the model's raw score (to 1e-6), are named by the user's columns (datetime
parts and encoded categories summed back, window features by their own names), keep the top k and sum
the rest; and the TreeSHAP written for HistGradientBoosting equals LightGBM's own, value by value."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline

from loopml.errors import InputError
from loopml.project import Project
from loopml.scoring import LoadedModel
from loopml.scoring.explain import REST, Explainer, contribution_importance
from loopml.scoring.treeshap import Tree, expected_value, tree_shap
from loopml.validate import load_snapshot

TEMPERATURE, TORQUE = "Air temperature [K]", "Torque [Nm]"  # units in brackets, as real sensor data has
ROWS = 40  # explained rows per model


def sensor_frame(n: int = 1200, seed: int = 0) -> pd.DataFrame:
    """Machines over 50 days: two readings with units, a speed, a product type, a time, three targets."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "udi": np.arange(n),
            "machine": rng.integers(0, 30, n),
            "ts": pd.Timestamp("2026-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 50 * 86400, n)), "s"),
            "Type": rng.choice(["L", "M", "H"], n, p=[0.5, 0.3, 0.2]),
            TEMPERATURE: rng.normal(300.0, 2.0, n).round(1),
            TORQUE: rng.normal(40.0, 10.0, n).round(1),
            "rpm": rng.normal(1500.0, 150.0, n).round(0),
        }
    )
    frame.loc[rng.random(n) < 0.05, TORQUE] = np.nan  # missing readings: trees route them
    hot, torque = frame[TEMPERATURE] - 300.0, frame[TORQUE].fillna(40.0) - 40.0
    risk = 0.8 * hot + 0.15 * torque + (frame["Type"] == "L") * 1.2 + (frame["ts"].dt.hour < 6) * 0.8
    frame["failure"] = (risk + rng.normal(0, 1.0, n) > 2.0).astype(int)
    frame["wear"] = (50 + 3 * hot + 0.8 * torque + 10 * (frame["Type"] == "H") + rng.normal(0, 2, n)).round(3)
    frame["mode"] = np.where(risk > 2.0, "overstrain", np.where(torque > 5, "heat", "none"))
    return frame


TARGETS = {"binary": "failure", "regression": "wear", "multiclass": "mode"}


def write_project(directory: Path, task: str, model: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = TARGETS[task]
    frame = sensor_frame()
    frame.drop(columns=[t for t in TARGETS.values() if t != target]).to_csv(
        directory / "data.csv", index=False
    )
    params = {"n_estimators": 40, "n_jobs": 1} if model == "lightgbm" else {}
    params = {"max_iter": 30} if model == "hist_gradient_boosting" else params
    config = {
        "name": f"sensor-{task}-{model}".replace("_", "-"),
        "task": task,
        "source": {"kind": "csv", "path": "data.csv"},
        "target": target,
        "id_column": "udi",
        "event_time": "ts",
        "features": {
            "datetime_parts": ["hour", "dayofweek"],
            "categorical": ["Type"],
            "windows": [{"entity": "machine", "column": "rpm", "aggs": ["mean", "count"], "windows": ["7d"]}],
            "drop": ["machine"],
        },
        "train": {"model": model, "params": params, "bootstrap": 0, "report": False},
    }
    (directory / "loopml.yaml").write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return directory


CASES = [
    ("binary", "lightgbm"),
    ("binary", "logistic"),
    ("binary", "hist_gradient_boosting"),
    ("regression", "lightgbm"),
    ("regression", "ridge"),
    ("regression", "hist_gradient_boosting"),
    ("multiclass", "lightgbm"),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], tuple[Project, LoadedModel]]:
    """Train (once per module) the project of a task and a model; its champion, loaded."""
    cache: dict[tuple[str, str], tuple[Project, LoadedModel]] = {}

    def get(task: str, model: str) -> tuple[Project, LoadedModel]:
        if (task, model) not in cache:
            directory = write_project(tmp_path_factory.mktemp(f"{task}-{model}") / "proj", task, model)
            project = Project.open(directory, environ={})
            project.ingest()
            project.train()
            cache[task, model] = (project, project.models.load())
        return cache[task, model]

    return get


def newest_rows(project: Project, n: int = ROWS) -> pd.DataFrame:
    _, frame = load_snapshot(project.store, project.name)
    return frame.tail(n).reset_index(drop=True)


def raw_score(model: LoadedModel, features: pd.DataFrame) -> np.ndarray:
    """The estimator's own raw score (log-odds, the predicted class's raw score, the value), computed
    apart from the explanation: LightGBM's ``raw_score``, ``decision_function`` or ``predict``."""
    estimator = model.pipeline[-1]
    matrix = model.pipeline[:-1].transform(features)
    if type(estimator).__module__.startswith("lightgbm"):
        raw = estimator.predict(matrix, raw_score=True)
    elif hasattr(estimator, "decision_function"):
        raw = estimator.decision_function(matrix)
    else:
        raw = estimator.predict(matrix)
    raw = np.asarray(raw, dtype=np.float64)
    return raw.max(axis=1) if raw.ndim == 2 else raw


@pytest.mark.parametrize(("task", "model_name"), CASES)
def test_base_value_plus_contributions_is_the_raw_score(
    trained: Callable[[str, str], tuple[Project, LoadedModel]], task: str, model_name: str
) -> None:
    project, model = trained(task, model_name)
    features = model.features(model.coerce(newest_rows(project)))
    scores, explained = model.score_explained(features, k=3)
    expected = raw_score(model, features)
    assert len(explained) == ROWS
    for explanation, raw in zip(explained, expected, strict=True):
        total = explanation.base_value + sum(c.contribution for c in explanation.contributions)
        assert abs(total - explanation.raw_score) <= 1e-6
        assert abs(explanation.raw_score - raw) <= 1e-6
    assert np.array_equal(scores, model.score(features))  # the same matrix scored them
    if task == "binary":  # the raw score is the log-odds of the score the API answers
        probability = 1 / (1 + np.exp(-np.array([e.raw_score for e in explained])))
        assert np.allclose(probability, scores, rtol=1e-9, atol=1e-12)
        assert {e.explained_class for e in explained} == {1}
    if task == "multiclass":  # the predicted class is the one explained
        labels = [out["label"] for out in model.outputs(scores)]
        assert [e.explained_class for e in explained] == labels
    bases = {(e.explained_class, round(e.base_value, 12)) for e in explained}
    assert len(bases) == len({e.explained_class for e in explained})  # one per model (per class)


@pytest.mark.parametrize(("task", "model_name"), [("binary", "lightgbm"), ("regression", "ridge")])
def test_contributions_are_named_by_the_users_columns(
    trained: Callable[[str, str], tuple[Project, LoadedModel]], task: str, model_name: str
) -> None:
    _, model = trained(task, model_name)
    names = model.explainer.names
    windows = [name for spec in model.windows for name in spec.names]
    assert windows == ["machine__rpm__mean_7d", "machine__rpm__count_7d"]
    assert set(windows) <= set(names)  # window features keep their own names
    assert {TEMPERATURE, TORQUE, "rpm", "Type"} <= set(names)
    assert set(names) <= set(model.input_columns) | set(windows)  # nothing else: no ts_hour, no codes
    assert len(names) == len(set(names))
    assert not any(n.startswith("ts_") for n in names)
    if "ts" in model.explainer.groups:  # the datetime parts, summed back into their column
        assert model.explainer.groups.count("ts") == 2 and names.count("ts") == 1


def test_top_k_then_the_rest_summed(trained: Callable[[str, str], tuple[Project, LoadedModel]]) -> None:
    project, model = trained("binary", "lightgbm")
    features = model.features(model.coerce(newest_rows(project, 10)))
    every = len(model.explainer.names)
    full = model.explain(features, k=every)
    for k in (1, 2, 4):
        for short, long in zip(model.explain(features, k=k), full, strict=True):
            entries = short.contributions
            assert len(entries) == k + 1 and entries[-1].feature == REST
            assert entries[-1].features == every - k
            top = sorted(long.contributions, key=lambda c: -abs(c.contribution))
            assert [c.feature for c in entries[:-1]] == [c.feature for c in top[:k]]
            magnitudes = [abs(c.contribution) for c in entries[:-1]]
            assert magnitudes == sorted(magnitudes, reverse=True)
            rest = sum(c.contribution for c in top[k:])
            assert entries[-1].contribution == pytest.approx(rest, abs=1e-9)
            assert short.raw_score == long.raw_score and short.base_value == long.base_value
    assert all(REST not in [c.feature for c in e.contributions] for e in full)  # nothing left over
    with pytest.raises(InputError, match="explain k must be from 1"):
        model.explain(features, k=0)


def test_the_compiled_record_path_explains_the_matrix_it_scored(
    trained: Callable[[str, str], tuple[Project, LoadedModel]],
) -> None:
    project, model = trained("binary", "lightgbm")
    assert model.compiled is not None  # numbers, an encoded category, datetime parts, windows
    rows = newest_rows(project, 12).drop(columns=["failure"])
    records = [
        {k: (v.to_pydatetime() if isinstance(v, pd.Timestamp) else v) for k, v in r.items()}
        for r in rows.to_dict("records")
    ]
    scores, explained = model.predict_records_explained(records, 3, observe=False)
    assert scores.tolist() == model.predict_records(records, observe=False).tolist()
    features = model.features(model.coerce(rows))
    generic = Explainer(model.pipeline).explain(model.pipeline[:-1].transform(features), 3)
    for fast, slow in zip(explained, generic, strict=True):
        assert fast.raw_score == pytest.approx(slow.raw_score, abs=1e-12)
        assert [c.feature for c in fast.contributions] == [c.feature for c in slow.contributions]


def test_global_importance_is_the_mean_absolute_contribution(
    trained: Callable[[str, str], tuple[Project, LoadedModel]],
) -> None:
    project, model = trained("regression", "lightgbm")
    features = model.features(model.coerce(newest_rows(project, 200)))
    importance = contribution_importance(model.pipeline, features)
    assert list(importance) == sorted(importance, key=lambda n: -importance[n])
    assert set(importance) == set(model.explainer.names)
    every = len(model.explainer.names)
    explained = model.explain(features, k=every)
    for name, value in importance.items():
        contributions = [c.contribution for e in explained for c in e.contributions if c.feature == name]
        assert value == pytest.approx(np.mean(np.abs(contributions)), rel=1e-9)
    assert next(iter(importance)) in (TEMPERATURE, TORQUE, "Type")  # what drives the wear


def test_a_model_without_contributions_is_a_one_line_input_error() -> None:
    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    pipeline = Pipeline(
        [("features", ColumnTransformer([("n", "passthrough", ["a"])])), ("model", DummyClassifier())]
    ).fit(frame, [0, 1, 0, 1])
    with pytest.raises(InputError) as info:
        Explainer(pipeline, "demo")
    assert (
        "\n" not in str(info.value) and "DummyClassifier" in str(info.value) and "'demo'" in str(info.value)
    )


# --- the TreeSHAP of HistGradientBoosting, against LightGBM's own ---------------------------------


def lightgbm_trees(booster: Any) -> list[Tree]:
    """A LightGBM booster's trees as :class:`Tree` arrays (from its JSON dump)."""
    trees = []
    for info in booster.dump_model()["tree_info"]:
        nodes: list[tuple[Any, ...]] = []
        _walk(info["tree_structure"], nodes)
        trees.append(Tree(*(np.asarray(column) for column in zip(*nodes, strict=True))))
    return trees


def _walk(node: dict[str, Any], nodes: list[tuple[Any, ...]]) -> int:
    """Append ``node`` and its subtree to ``nodes`` (left, right, feature, threshold, missing left,
    value, cover); returns its index."""
    index = len(nodes)
    nodes.append(())
    if "leaf_index" in node:
        nodes[index] = (-1, -1, 0, 0.0, False, node["leaf_value"], node["leaf_count"])
    else:
        left, right = _walk(node["left_child"], nodes), _walk(node["right_child"], nodes)
        split = (node["split_feature"], node["threshold"], node["default_left"])
        nodes[index] = (left, right, *split, 0.0, node["internal_count"])
    return index


def test_treeshap_equals_lightgbms_pred_contrib_value_by_value() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(3000, 6))
    y = (X[:, 0] + X[:, 1] * X[:, 2] - (X[:, 3] > 0.5) + rng.normal(0, 0.5, 3000) > 0).astype(int)
    model = lgb.LGBMClassifier(n_estimators=25, num_leaves=24, verbose=-1, n_jobs=1).fit(X, y)
    rows = rng.normal(size=(60, 6))
    expected = np.asarray(model.booster_.predict(rows, pred_contrib=True))
    phi, base = np.zeros((60, 6)), 0.0
    for tree in lightgbm_trees(model.booster_):
        tree_shap(tree, rows, phi)
        base += expected_value(tree)
    assert np.abs(phi - expected[:, :6]).max() < 1e-9
    assert abs(base - expected[0, 6]) < 1e-9
