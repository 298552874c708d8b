"""Drift, LightGBM training and Optuna tuning on a real Dask LocalCluster of two workers.

Threads rather than processes (``processes=False``) keep the cluster cheap to start; the workers
are still separate Dask workers with their own addresses, and LightGBM's Dask training still
connects two LightGBM "machines" over TCP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from sklearn.datasets import make_classification

from loopml.errors import InputError
from loopml.monitor import build_profile, compare, profile_counts
from loopml.monitor.cluster import drift_counts_dask, drift_dask
from loopml.project import Project, TrainOutcome

pytest.importorskip("distributed")
pytest.importorskip("lightgbm")


# --- drift over partitions -----------------------------------------------------------------------


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    x = rng.normal(shift, 1, n)
    x[rng.random(n) < 0.05] = np.nan
    cat = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2] if not shift else [0.2, 0.3, 0.5])
    return pd.DataFrame({"x": x, "cat": cat, "k": rng.integers(0, 9, n), "ignored": rng.random(n)})


def test_drift_over_parquet_partitions_equals_drift_of_the_whole(dask_client: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    profile = build_profile(_frame(rng, 3_000), ["x", "k"], ["cat"])
    parts = [_frame(rng, n, shift=0.5) for n in (700, 0, 1_300, 45)]  # uneven, one empty
    for i, part in enumerate(parts):  # nested Hive-style folders are partitions too
        folder = tmp_path / "window" / f"day={i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        part.to_parquet(folder / f"part-{i}.parquet", row_group_size=200)
    (tmp_path / "window" / "notes.txt").write_text("not data")
    whole = pd.concat(parts, ignore_index=True)

    counts = drift_counts_dask(profile, str(tmp_path / "window"), address=dask_client, batch_rows=128)
    expected = profile_counts(whole, profile)
    assert counts.rows == len(whole) == 2_045
    assert set(counts.counts) == {"x", "k", "cat"}
    for column, values in expected.counts.items():
        assert np.array_equal(counts.counts[column], values), column

    results = drift_dask(profile, str(tmp_path / "window"), address=dask_client, batch_rows=128)
    assert [r.__dict__ for r in results] == [r.__dict__ for r in compare(profile, whole)]
    # x moved by half a standard deviation: PSI 0.2496, a warning (0.1 to 0.25); cat drifted.
    assert {r.column for r in results if r.drifted} == {"cat"}
    assert {r.column: r.level for r in results}["x"] == "warn"


def test_drift_on_dask_of_a_folder_without_parquet_is_a_one_line_error(
    dask_client: Any, tmp_path: Path
) -> None:
    profile = build_profile(_frame(np.random.default_rng(0), 200), ["x"], [])
    with pytest.raises(InputError, match=r"no \.parquet files under .*point to a Parquet file"):
        drift_dask(profile, str(tmp_path), address=dask_client)


# --- training: LightGBM on Dask, Optuna trials over the workers ------------------------------------


def _binary_project(directory: Path, train: dict[str, Any], n: int = 700) -> Project:
    X, y = make_classification(n_samples=n, n_features=5, n_informative=3, flip_y=0.03, random_state=0)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    frame.insert(0, "row_id", np.arange(n))
    frame["region"] = np.random.default_rng(1).choice(["north", "south"], n)
    frame["ts"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(n) * 600, unit="s")
    frame["y"] = y
    directory.mkdir(parents=True)
    frame.to_csv(directory / "data.csv", index=False)
    config = {
        "name": "dask-binary",
        "task": "binary",
        "source": {"kind": "csv", "path": "data.csv"},
        "target": "y",
        "id_column": "row_id",
        "event_time": "ts",
        "train": {"model": "lightgbm", "bootstrap": 10, "report": False, **train},
    }
    (directory / "loopml.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    project = Project.open(directory, environ={})
    project.ingest()
    return project


@pytest.fixture(scope="module")
def tuned_on_dask(
    dask_cluster: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Project, TrainOutcome]:
    train = {
        "dask": dask_cluster.scheduler_address,
        "params": {"n_estimators": 15},
        "tune": {"trials": 2, "timeout_s": 120},
    }
    project = _binary_project(tmp_path_factory.mktemp("dask") / "proj", train)
    return project, project.train()


def test_train_dask_fits_lightgbm_over_both_workers_and_serves_like_a_local_model(
    tuned_on_dask: tuple[Project, TrainOutcome],
) -> None:
    project, outcome = tuned_on_dask
    metrics = outcome.version.metrics
    assert metrics["score"] > metrics["baseline_score"] + 0.2, metrics  # average precision
    assert metrics["holdout"]["roc_auc"] > 0.85
    model = project.models.load()
    booster = model.pipeline[-1].booster_
    # The registered model is LightGBM's plain classifier, trained by two LightGBM machines.
    assert type(model.pipeline[-1]).__name__ == "LGBMClassifier"
    assert booster.params["num_machines"] == 2 and booster.params["tree_learner"] == "data"
    assert booster.num_trees() == 15
    rows = pd.read_csv(Path(project.settings.state_dir).parent / "data.csv").tail(50)
    scores = model.score(model.features(model.coerce(rows)))
    assert scores.shape == (50,) and np.all((scores >= 0) & (scores <= 1))


def test_optuna_trials_ran_on_both_workers_in_one_study_in_the_store(
    tuned_on_dask: tuple[Project, TrainOutcome], dask_client: Any
) -> None:
    project, outcome = tuned_on_dask
    study = optuna.load_study(study_name="loopml-dask-binary-lightgbm", storage=project.settings.db_url)
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 2 == outcome.version.metrics["tuning"]["trials"]
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert workers == set(dask_client.scheduler_info()["workers"])  # both workers ran trials
    assert study.trials[0].params["num_leaves"] == 31  # the enqueued defaults went first
    best = max((t for t in finished if t.value is not None), key=lambda t: t.value)
    params = outcome.version.signature["params"]
    assert {k: params[k] for k in best.params} == best.params


def test_an_unreachable_scheduler_is_a_one_line_config_error() -> None:
    from loopml._dask import dask_client
    from loopml.errors import ConfigError
    from loopml.serve import free_port

    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    expected = r"cannot reach the Dask scheduler at 'tcp://127\.0\.0\.1:\d+'"
    with pytest.raises(ConfigError, match=expected), dask_client(address, timeout_s=1):
        pass
