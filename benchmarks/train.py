"""Benchmark: ``loopml train`` with a fixed tuning budget against a default LightGBM and FLAML.

On several offline data sets (the simulated fraud example and data sets bundled with
scikit-learn, nothing downloaded), each contender gets the same time budget, the same features and
is scored on exactly the same holdout rows with the same metric:

- ``loopml``: ``Project.train()`` with ``train.tune.trials`` large and ``train.tune.timeout_s`` = budget;
- ``lgbm-default``: ``LGBMClassifier()`` / ``LGBMRegressor()`` with LightGBM's default parameters;
- ``flaml``: ``flaml.AutoML(time_budget=budget)``, installed in its own virtual environment
  (``benchmarks/.venv-flaml``, created on first use) and run there in a subprocess, never a
  dependency of loopml.

Besides, ``loopml-default`` is the default ``Project.train()`` without tuning (the same project with
``train.tune`` removed), judged against a default LightGBM fitted on the same training rows and its
own features: each data set prints ``default_vs_lgbm_default=<delta>`` (positive: loopml better),
which must never be negative.

The holdout is loopml's own split (``loopml.tasks.time_split`` with the arguments ``fit`` uses),
checked against the registered model: its score recomputed here on those rows must equal the score
loopml recorded. The features given to the default LightGBM and to FLAML are loopml's
preprocessed features (window features included), produced by the registered pipeline's fitted
preprocessor, so the comparison is of model fitting and tuning, not of feature engineering.

Usage::

    .venv/bin/python benchmarks/train.py [--budget 30] [--datasets fraud,breast_cancer,...]
        [--contenders loopml,lgbm-default,flaml]

The last line is ``wins_vs_flaml=<k>/<n> mean_score_delta_vs_flaml=<d>``; a delta is positive when
loopml is better (higher average precision / macro F1, lower RMSE), in the metric's own units.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DEFAULT_VENV = HERE / ".venv-flaml"
FLAML_PACKAGES = ("flaml[automl]", "lightgbm", "pandas", "pyarrow", "scikit-learn")
FLAML_IMPORTS = "import flaml, lightgbm, pandas, pyarrow, sklearn"
# loopml's metric name -> FLAML's name for the same metric.
FLAML_METRIC = {"average_precision": "ap", "f1_macro": "macro_f1", "rmse": "rmse"}
LOWER_IS_BETTER = frozenset({"rmse"})
TARGET = "target"
CONTENDERS = ("loopml", "lgbm-default", "flaml")


# --------------------------------------------------------------------------------------------------
# The registered model is the fit on the training rows, not refitted on every row (loopml's default,
# retrain.refit): every contender is judged on holdout rows none of them has seen.
NO_REFIT = {"refit": False}

# Data sets: each writes a loopml project (loopml.yaml + a Parquet source) into a directory.


@dataclass(frozen=True)
class DataSet:
    name: str
    task: str
    metric: str
    describe: str
    write: Callable[[Path, argparse.Namespace], None]


def _tune_section(args: argparse.Namespace) -> dict[str, Any]:
    """The train section every project gets: LightGBM, tuned for ``budget`` seconds, same threads."""
    return {
        "model": "lightgbm",
        "holdout_fraction": 0.2,
        "params": {"n_jobs": args.threads},
        "tune": {"trials": 100_000, "timeout_s": float(args.budget)},
        "seed": args.seed,
    }


def _sklearn_project(
    name: str, task: str, metric: str, loader: Callable[[], Any]
) -> Callable[[Path, argparse.Namespace], None]:
    """A project over one of scikit-learn's bundled data sets (files inside the package)."""

    def write(directory: Path, args: argparse.Namespace) -> None:
        import yaml

        bunch = loader()
        frame = pd.DataFrame(
            np.asarray(bunch.data, dtype=float),
            columns=[_column_name(c) for c in bunch.feature_names],
        )
        frame[TARGET] = np.asarray(bunch.target)
        (directory / "data").mkdir(parents=True)
        frame.to_parquet(directory / "data" / "source.parquet", index=False)
        settings = {
            "name": name,
            "task": task,
            "source": {"kind": "parquet", "path": "data/source.parquet"},
            "target": TARGET,
            "train": {**_tune_section(args), "metric": metric},
            "retrain": NO_REFIT,
        }
        (directory / "loopml.yaml").write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")

    return write


def _column_name(raw: Any) -> str:
    text = "".join(ch if ch.isalnum() else "_" for ch in str(raw).strip().lower())
    return text.strip("_") or "column"


def _write_fraud(directory: Path, args: argparse.Namespace) -> None:
    """The fraud example (window features, time-ordered holdout), tuned like the others.

    The example's fixed ``n_estimators``/``learning_rate`` are dropped so that the tuner searches
    its whole space, as on the other data sets.
    """
    import yaml

    from loopml.examples import write_example

    project_file = write_example("fraud", directory, days=args.fraud_days)
    settings = yaml.safe_load(project_file.read_text(encoding="utf-8"))
    settings["train"] = {**settings.get("train", {}), **_tune_section(args)}
    settings["retrain"] = {**settings.get("retrain", {}), **NO_REFIT}
    project_file.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")


def _datasets() -> dict[str, DataSet]:
    from sklearn import datasets as sk

    sets = [
        DataSet(
            "fraud",
            "binary",
            "average_precision",
            "loopml's simulated card fraud, time-ordered holdout",
            _write_fraud,
        ),
        DataSet(
            "breast_cancer",
            "binary",
            "average_precision",
            "scikit-learn bundled, 569 x 30",
            _sklearn_project("breast_cancer", "binary", "average_precision", sk.load_breast_cancer),
        ),
        DataSet(
            "digits",
            "multiclass",
            "f1_macro",
            "scikit-learn bundled, 1797 x 64, 10 classes",
            _sklearn_project("digits", "multiclass", "f1_macro", sk.load_digits),
        ),
        DataSet(
            "wine",
            "multiclass",
            "f1_macro",
            "scikit-learn bundled, 178 x 13, 3 classes",
            _sklearn_project("wine", "multiclass", "f1_macro", sk.load_wine),
        ),
        DataSet(
            "diabetes",
            "regression",
            "rmse",
            "scikit-learn bundled, 442 x 10",
            _sklearn_project("diabetes", "regression", "rmse", sk.load_diabetes),
        ),
    ]
    return {s.name: s for s in sets}


# --------------------------------------------------------------------------------------------------
# Results.


@dataclass
class Entry:
    contender: str
    score: float
    seconds: float
    note: str = ""


@dataclass
class Outcome:
    dataset: DataSet
    rows_train: int
    rows_holdout: int
    n_features: int
    entries: list[Entry] = field(default_factory=list)
    # The untuned default training against a default LightGBM on its own features (+: loopml better).
    default_vs_lgbm_default: float | None = None
    default_note: str = ""

    def has(self, contender: str) -> bool:
        return any(e.contender == contender for e in self.entries)

    def score(self, contender: str) -> float:
        return next(e.score for e in self.entries if e.contender == contender)

    def seconds(self, contender: str) -> float:
        return next(e.seconds for e in self.entries if e.contender == contender)

    def delta_vs(self, contender: str) -> float:
        """loopml's score minus ``contender``'s, signed so that positive means loopml is better."""
        diff = self.score("loopml") - self.score(contender)
        return -diff if self.dataset.metric in LOWER_IS_BETTER else diff


# --------------------------------------------------------------------------------------------------
# The FLAML environment and worker.


def ensure_flaml_venv(venv: Path) -> Path:
    """The Python of a virtual environment with FLAML, created (and installed) if missing."""
    python = venv / "bin" / "python"
    if python.exists() and _imports_ok(python):
        return python
    if venv.exists() and any(venv.iterdir()) and not (venv / "pyvenv.cfg").exists():
        raise SystemExit(f"error: {venv} exists and is not a virtual environment; pass another --flaml-venv.")
    print(f"setting up FLAML's own virtual environment in {venv} (once; a few minutes)", flush=True)
    base = getattr(sys, "_base_executable", None) or sys.executable
    steps = [[str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *FLAML_PACKAGES]]
    if not python.exists():
        steps.insert(0, [base, "-m", "venv", str(venv)])
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(
                f"error: could not set up FLAML's virtual environment ({' '.join(step[:4])} ...):\n"
                f"{(done.stderr or done.stdout).strip()[-2000:]}\n"
                "No figures are printed without FLAML. Fix the install (network, disk) or pass "
                "--flaml-venv PATH to a virtual environment with: " + " ".join(FLAML_PACKAGES)
            )
    if not _imports_ok(python):
        raise SystemExit(f"error: {python} cannot import FLAML after installing it: no figures printed.")
    return python


def _imports_ok(python: Path) -> bool:
    done = subprocess.run([str(python), "-c", FLAML_IMPORTS], capture_output=True, text=True)
    return done.returncode == 0


def flaml_worker(argv: Sequence[str]) -> int:
    """Runs inside FLAML's venv: fit AutoML on a Parquet file, write holdout predictions."""
    parser = argparse.ArgumentParser(prog="train.py _flaml-worker")
    parser.add_argument("--train", required=True)
    parser.add_argument("--holdout", required=True)
    parser.add_argument("--task", required=True, choices=("binary", "multiclass", "regression"))
    parser.add_argument("--metric", required=True)
    parser.add_argument("--budget", type=float, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--estimators", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    from flaml import AutoML

    train = pd.read_parquet(args.train)
    holdout = pd.read_parquet(args.holdout)
    y = train.pop(TARGET)
    automl = AutoML()
    estimators: Any = "auto" if args.estimators == "auto" else args.estimators.split(",")
    started = time.perf_counter()
    automl.fit(
        train,
        y,
        task="regression" if args.task == "regression" else "classification",
        metric=args.metric,
        time_budget=args.budget,
        estimator_list=estimators,
        n_jobs=args.threads,
        seed=args.seed,
        verbose=0,
    )
    fitted = time.perf_counter() - started
    if args.task == "regression":
        output = np.asarray(automl.predict(holdout), dtype=float)
        classes: list[Any] | None = None
    else:
        output = np.asarray(automl.predict_proba(holdout), dtype=float)
        classes = [c.item() if hasattr(c, "item") else c for c in automl.classes_]
    seconds = time.perf_counter() - started
    np.save(Path(args.out) / "output.npy", output)
    info = {
        "seconds": seconds,
        "fit_seconds": fitted,
        "classes": classes,
        "best_estimator": automl.best_estimator,
        "best_config": automl.best_config,
        "trials": len(automl.config_history),
    }
    (Path(args.out) / "info.json").write_text(json.dumps(info, default=str), encoding="utf-8")
    return 0


# --------------------------------------------------------------------------------------------------
# One data set.


def _quiet() -> contextlib.AbstractContextManager[Any]:
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def run_dataset(ds: DataSet, args: argparse.Namespace, python: Path | None, workdir: Path) -> Outcome:
    from loopml.features import select_columns, window_features, window_specs
    from loopml.project import Project
    from loopml.tasks import get_task, time_split
    from loopml.validate import load_snapshot

    directory = workdir / ds.name
    ds.write(directory, args)
    project = Project.open(directory)
    settings = project.settings
    task = get_task(settings.task)
    started = time.perf_counter()
    ingested = project.ingest()
    ingest_seconds = time.perf_counter() - started
    print(f"  ingested {ingested.dataset.rows:,} rows in {ingest_seconds:.1f}s; loopml train ...", flush=True)

    # -- loopml train, tuned for the budget.
    with _quiet():
        started = time.perf_counter()
        trained = project.train()
        loopml_seconds = time.perf_counter() - started
    metrics = trained.version.metrics
    if metrics["metric"] != ds.metric:
        raise SystemExit(f"error: loopml ranked {ds.name} by {metrics['metric']}, expected {ds.metric}")

    # -- loopml's holdout, rebuilt with the arguments fit() uses, then checked against its score.
    model = project.models.load(trained.version.version)
    _, frame = load_snapshot(project.store, settings.name, trained.dataset_version)
    frame = frame.reset_index(drop=True)
    specs = window_specs(settings.features)
    if specs:
        assert settings.event_time is not None
        frame = pd.concat(
            [frame, window_features(frame, specs, settings.event_time, settings.id_column)], axis=1
        )
    columns = select_columns(model.contract, settings.features)
    y = task.labels(frame[settings.target])
    cfg = settings.train
    train_rows, holdout_rows = time_split(
        frame, settings.event_time, cfg.holdout_fraction, y if task.stratify else None, cfg.seed
    )
    if len(holdout_rows) != metrics["rows_holdout"] or len(train_rows) != metrics["rows_train"]:
        raise SystemExit(f"error: {ds.name}: the rebuilt split does not match loopml's row counts")
    X = frame[columns.all]
    pipeline = model.pipeline
    classes = getattr(pipeline, "classes_", None)

    def score(output: np.ndarray) -> float:
        return float(task.metrics(y[holdout_rows], output, k=cfg.precision_at_k, classes=classes)[ds.metric])

    with _quiet():
        loopml_score = score(task.predict(pipeline, X.iloc[holdout_rows]))
    if not math.isclose(loopml_score, float(metrics["score"]), rel_tol=1e-9, abs_tol=1e-12):
        raise SystemExit(
            f"error: {ds.name}: loopml's score on the rebuilt holdout ({loopml_score}) differs from the "
            f"recorded one ({metrics['score']}): the holdout rows are not the same"
        )
    tuning = metrics.get("tuning") or {}
    params = trained.version.signature.get("params", {})
    outcome = Outcome(ds, len(train_rows), len(holdout_rows), 0)
    outcome.entries.append(
        Entry(
            "loopml",
            loopml_score,
            loopml_seconds,
            f"{tuning.get('trials', 0)} trials; n_estimators={params.get('n_estimators')}, "
            f"learning_rate={_fmt(params.get('learning_rate'))}, num_leaves={params.get('num_leaves')}",
        )
    )

    # -- The same features for the others: loopml's fitted preprocessor over the same rows.
    with _quiet():
        features = pipeline[:-1]
        X_train = _matrix(features.transform(X.iloc[train_rows]))
        X_hold = _matrix(features.transform(X.iloc[holdout_rows]))
    outcome.n_features = X_train.shape[1]
    y_train = y[train_rows]

    # -- Default LightGBM.
    if "lgbm-default" in args.contenders:
        output, default_seconds = _lgbm_default(ds, args, task, X_train, y_train, X_hold, classes)
        outcome.entries.append(Entry("lgbm-default", score(output), default_seconds, "LightGBM defaults"))

    # -- The default loopml train (no tuning) against a default LightGBM on its features.
    print(f"  loopml {loopml_seconds:.1f}s; loopml train without tuning ...", flush=True)
    split = (X, y, train_rows, holdout_rows)
    outcome.entries.append(_untuned(ds, args, project, task, split, classes, score, outcome))

    # -- FLAML in its own venv, same rows, same budget.
    if python is not None:
        print(f"  FLAML ({args.budget:g}s budget) ...", flush=True)
        outcome.entries.append(
            _run_flaml(ds, args, python, workdir, X_train, y_train, X_hold, classes, score)
        )
    return outcome


def _lgbm_default(
    ds: DataSet,
    args: argparse.Namespace,
    task: Any,
    X_train: pd.DataFrame,
    y_train: np.ndarray,
    X_hold: pd.DataFrame,
    classes: np.ndarray | None,
) -> tuple[np.ndarray, float]:
    """``LGBMClassifier()`` / ``LGBMRegressor()`` (quiet, ``--threads`` threads): holdout output, seconds."""
    import lightgbm as lgb

    estimator: Any = (
        lgb.LGBMRegressor(n_jobs=args.threads, random_state=args.seed, verbose=-1)
        if ds.task == "regression"
        else lgb.LGBMClassifier(n_jobs=args.threads, random_state=args.seed, verbose=-1)
    )
    with _quiet():
        started = time.perf_counter()
        estimator.fit(X_train, y_train)
        output = task.predict(estimator, X_hold)
        seconds = time.perf_counter() - started
    if classes is not None and list(estimator.classes_) != list(classes):
        raise SystemExit(f"error: {ds.name}: default LightGBM's classes differ from loopml's")
    return output, seconds


def _untuned(
    ds: DataSet,
    args: argparse.Namespace,
    project: Any,
    task: Any,
    split: tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray],
    classes: np.ndarray | None,
    score: Callable[[np.ndarray], float],
    outcome: Outcome,
) -> Entry:
    """Train the same project without ``train.tune`` (a new version on the same snapshot and split),
    then fit a default LightGBM on the same training rows and that version's features; records
    ``outcome.default_vs_lgbm_default`` and returns the untuned version's entry."""
    import yaml

    from loopml.project import Project

    X, y, train_rows, holdout_rows = split
    config = project.settings.project_dir / "loopml.yaml"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["train"].pop("tune", None)
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    untuned = Project.open(project.settings.project_dir)
    with _quiet():
        started = time.perf_counter()
        trained = untuned.train()
        seconds = time.perf_counter() - started
    metrics = trained.version.metrics
    if metrics["rows_holdout"] != len(holdout_rows):
        raise SystemExit(f"error: {ds.name}: the untuned run's holdout differs from the tuned run's")
    pipeline = untuned.models.load(trained.version.version).pipeline
    with _quiet():
        mine = score(task.predict(pipeline, X.iloc[holdout_rows]))
        features = pipeline[:-1]
        X_train = _matrix(features.transform(X.iloc[train_rows]))
        X_hold = _matrix(features.transform(X.iloc[holdout_rows]))
    if not math.isclose(mine, float(metrics["score"]), rel_tol=1e-9, abs_tol=1e-12):
        raise SystemExit(f"error: {ds.name}: the untuned run's rebuilt holdout score differs from its own")
    output, _ = _lgbm_default(ds, args, task, X_train, y[train_rows], X_hold, classes)
    plain = score(output)
    delta = mine - plain
    outcome.default_vs_lgbm_default = (-delta if ds.metric in LOWER_IS_BETTER else delta) + 0.0  # no -0.0
    selection = metrics.get("selection") or {}
    chosen = selection.get("chosen", trained.version.signature.get("params", {}).get("model"))
    shares = [
        f"{c['candidate']} better on {c['win_share']:.0%}"
        for c in selection.get("candidates", [])
        if "win_share" in c
    ]
    outcome.default_note = (
        f"loopml default {mine:.4f} ({chosen} chosen on validation, features: "
        f"{selection.get('features', 'all')}; {', '.join(shares) or 'no comparison'} of resamples); "
        f"LGBM defaults on its features {plain:.4f}"
    )
    return Entry("loopml-default", mine, seconds, f"no tuning; {chosen} chosen on validation")


def _matrix(values: Any) -> pd.DataFrame:
    array = np.asarray(values, dtype=float)
    return pd.DataFrame(array, columns=[f"f{i}" for i in range(array.shape[1])])


def _run_flaml(
    ds: DataSet,
    args: argparse.Namespace,
    python: Path,
    workdir: Path,
    X_train: pd.DataFrame,
    y_train: np.ndarray,
    X_hold: pd.DataFrame,
    classes: np.ndarray | None,
    score: Callable[[np.ndarray], float],
) -> Entry:
    out = workdir / f"{ds.name}-flaml"
    out.mkdir()
    train_file, holdout_file = out / "train.parquet", out / "holdout.parquet"
    X_train.assign(**{TARGET: y_train}).to_parquet(train_file, index=False)
    X_hold.to_parquet(holdout_file, index=False)
    command = [
        str(python),
        str(Path(__file__).resolve()),
        "_flaml-worker",
        f"--train={train_file}",
        f"--holdout={holdout_file}",
        f"--task={ds.task}",
        f"--metric={FLAML_METRIC[ds.metric]}",
        f"--budget={args.budget}",
        f"--threads={args.threads}",
        f"--estimators={args.flaml_estimators}",
        f"--seed={args.seed}",
        f"--out={out}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONWARNINGS": "ignore"}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"error: FLAML failed on {ds.name}:\n{(done.stderr or done.stdout)[-3000:]}")
    info = json.loads((out / "info.json").read_text(encoding="utf-8"))
    output = np.load(out / "output.npy")
    if classes is not None:
        if ds.task == "binary":
            output = output[:, list(info["classes"]).index(classes[1])]
        else:
            order = [list(info["classes"]).index(c.item() if hasattr(c, "item") else c) for c in classes]
            output = output[:, order]
    return Entry(
        "flaml",
        score(output),
        float(info["seconds"]),
        f"{info['trials']} configs; best {info['best_estimator']}{_config(info.get('best_config'))}; "
        f"process wall {wall:.1f}s",
    )


def _config(config: Any) -> str:
    """The main parameters of FLAML's best configuration, when it has them."""
    keys = ("n_estimators", "num_leaves", "max_leaves", "learning_rate")
    shown = [f"{k}={_fmt(config[k])}" for k in keys if isinstance(config, dict) and k in config]
    return f" ({', '.join(shown)})" if shown else ""


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------------------------------
# Report.


def print_table(outcome: Outcome) -> None:
    ds = outcome.dataset
    arrow = "lower is better" if ds.metric in LOWER_IS_BETTER else "higher is better"
    print(
        f"\n{ds.name} ({ds.task}; {ds.describe}): {outcome.rows_train:,} train / "
        f"{outcome.rows_holdout:,} holdout rows, {outcome.n_features} features; {ds.metric}, {arrow}"
    )
    print(f"  {'contender':<13} {ds.metric:>18} {'seconds':>9} {'loopml better by':>17}  notes")
    for entry in outcome.entries:
        delta = "" if entry.contender == "loopml" else f"{outcome.delta_vs(entry.contender):+.4f}"
        print(f"  {entry.contender:<13} {entry.score:>18.4f} {entry.seconds:>9.1f} {delta:>17}  {entry.note}")
    if outcome.default_vs_lgbm_default is not None:
        line = f"default_vs_lgbm_default={outcome.default_vs_lgbm_default:+.4f}"
        print(f"{line}  ({ds.name}: {outcome.default_note})")


def summary(outcomes: Sequence[Outcome]) -> tuple[str, str]:
    defaults = [o.default_vs_lgbm_default for o in outcomes if o.default_vs_lgbm_default is not None]
    untuned = f"default_losses_vs_lgbm_default={sum(d < 0 for d in defaults)}/{len(defaults)}"
    if not all(o.has("flaml") for o in outcomes):  # --contenders without flaml: no FLAML figures
        wins = sum(o.delta_vs("lgbm-default") > 0 for o in outcomes if o.has("lgbm-default"))
        counted = sum(o.has("lgbm-default") for o in outcomes)
        detail = (
            f"wins_vs_lgbm_default={wins}/{counted} {untuned} "
            f"loopml_seconds_total={sum(o.seconds('loopml') for o in outcomes):.1f}"
        )
        return detail, "wins_vs_flaml=n/a mean_score_delta_vs_flaml=n/a (FLAML not run)"
    deltas = [o.delta_vs("flaml") for o in outcomes]
    relative = [
        d / abs(o.score("flaml")) if o.score("flaml") else 0.0 for o, d in zip(outcomes, deltas, strict=True)
    ]
    default_wins = sum(o.delta_vs("lgbm-default") > 0 for o in outcomes if o.has("lgbm-default"))
    wins = sum(d > 0 for d in deltas)
    detail = (
        f"wins_vs_lgbm_default={default_wins}/{sum(o.has('lgbm-default') for o in outcomes)} {untuned} "
        f"mean_relative_delta_vs_flaml={np.mean(relative):+.4f} "
        f"loopml_seconds_total={sum(o.seconds('loopml') for o in outcomes):.1f} "
        f"flaml_seconds_total={sum(o.seconds('flaml') for o in outcomes):.1f}"
    )
    return detail, f"wins_vs_flaml={wins}/{len(outcomes)} mean_score_delta_vs_flaml={np.mean(deltas):.4f}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_flaml-worker"]:
        return flaml_worker(argv[1:])
    available = _datasets()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--budget", type=float, default=30.0, help="seconds per data set for each tuner")
    parser.add_argument(
        "--datasets",
        default=",".join(available),
        help=f"comma-separated, from: {', '.join(available)} (default: all)",
    )
    parser.add_argument("--fraud-days", type=int, default=90, help="days simulated for the fraud set")
    parser.add_argument("--threads", type=int, default=1, help="threads for every contender (default 1)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--flaml-estimators",
        default="auto",
        help="FLAML's estimator_list: 'auto' (its default choice) or e.g. 'lgbm' or 'lgbm,xgboost'",
    )
    parser.add_argument("--flaml-venv", type=Path, default=DEFAULT_VENV, help="FLAML's own venv")
    parser.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help="comma-separated, from: loopml (always run), lgbm-default, flaml (default: all); without "
        "flaml no FLAML environment is set up and the last line says n/a",
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the projects in this directory")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        parser.error(f"unknown data set(s) {unknown}; choose from {', '.join(available)}")
    if args.budget <= 0:
        parser.error("--budget must be positive")
    args.contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    wrong = [c for c in args.contenders if c not in CONTENDERS]
    if wrong or "loopml" not in args.contenders:
        parser.error(f"--contenders: unknown {wrong} or loopml missing; choose from {', '.join(CONTENDERS)}")

    python = ensure_flaml_venv(args.flaml_venv) if "flaml" in args.contenders else None
    print(
        f"budget {args.budget:g}s per tuner per data set; {args.threads} thread(s) each; "
        f"contenders: {', '.join(args.contenders)}; FLAML estimators: {args.flaml_estimators}; "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="loopml-bench-train-", dir=args.keep))
    else:
        workdir = Path(tempfile.mkdtemp(prefix="loopml-bench-train-"))
    outcomes: list[Outcome] = []
    try:
        for name in names:
            print(f"\n[{name}]", flush=True)
            outcome = run_dataset(available[name], args, python, workdir)
            print_table(outcome)
            outcomes.append(outcome)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    detail, last = summary(outcomes)
    print()
    print(detail)
    print(last)
    return 0


if __name__ == "__main__":
    sys.exit(main())
