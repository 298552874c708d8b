"""Training on a Dask cluster (``train.dask`` in ``loopml.yaml``).

Two things spread over the workers:

* **LightGBM's own distributed training** (``lightgbm.DaskLGBMClassifier`` / ``DaskLGBMRegressor``):
  the feature matrix is cut into one block of rows per worker, each worker holds its block, and the
  workers build every tree together over LightGBM's network. The fitted model comes back as the plain
  ``LGBMClassifier`` / ``LGBMRegressor`` (``to_local()``), so it is saved, loaded and served exactly
  like a model trained in process.
* **Optuna trials** (see :func:`loopml.train.tune.tune`): each worker runs its share of the trials
  against one study kept in the metadata store (Optuna's RDB storage on ``store.db_url``), so the
  sampler sees every worker's finished trials. On a multi-machine cluster the store must be a
  database the workers reach (PostgreSQL); a SQLite file only works for workers on one machine.

Other estimators (logistic, ridge, HistGradientBoosting, a user's class) have no distributed fit:
they are fitted in process, as without ``train.dask``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from loopml._dask import worker_count
from loopml._optional import require

__all__ = ["fit_estimator", "fit_pipeline", "is_lightgbm", "to_dask_lightgbm"]


def is_lightgbm(estimator: Any) -> bool:
    """Whether ``estimator`` is LightGBM's scikit-learn classifier or regressor (trainable on Dask)."""
    return type(estimator).__module__.startswith("lightgbm") and type(estimator).__name__ in (
        "LGBMClassifier",
        "LGBMRegressor",
    )


def to_dask_lightgbm(estimator: Any, client: Any) -> Any:
    """The ``lightgbm.dask`` twin of an unfitted LightGBM estimator, same parameters, on ``client``.

    ``n_jobs`` is dropped: on Dask each worker trains with its own thread count.
    """
    lgb = require("lightgbm", "training LightGBM on Dask")
    twin = lgb.DaskLGBMClassifier if type(estimator).__name__ == "LGBMClassifier" else lgb.DaskLGBMRegressor
    params = {k: v for k, v in estimator.get_params().items() if k != "n_jobs"}
    return twin(client=client, **params)


def _blocks(X: Any, y: np.ndarray, client: Any) -> tuple[Any, Any]:
    """``X`` and ``y`` as Dask arrays of one block of rows per worker, held by the workers."""
    import dask.array as da
    from scipy import sparse

    matrix = X.toarray() if sparse.issparse(X) else np.asarray(X, dtype=float)
    rows = max(1, -(-len(matrix) // worker_count(client)))  # ceil: one block per worker
    dX = da.from_array(matrix, chunks=(rows, matrix.shape[1]))
    dy = da.from_array(np.asarray(y), chunks=rows)
    return client.persist(dX), client.persist(dy)


def fit_estimator(estimator: Any, X: Any, y: np.ndarray, client: Any = None) -> Any:
    """Fit ``estimator`` on a ready feature matrix: on the Dask cluster of ``client`` when it is a
    LightGBM model and a client is given, in process otherwise. Returns the fitted local estimator."""
    if client is None or not is_lightgbm(estimator):
        return estimator.fit(X, y)
    dX, dy = _blocks(X, y, client)
    with warnings.catch_warnings():  # lightgbm.dask warns that it sets the thread count itself
        warnings.filterwarnings("ignore", message="Parameter (n_jobs|num_threads) will be ignored")
        return to_dask_lightgbm(estimator, client).fit(dX, dy).to_local()


def fit_pipeline(pipeline: Pipeline, X: Any, y: np.ndarray, client: Any = None) -> Pipeline:
    """Fit a ``features -> model`` pipeline: the feature steps in process (they are cheap and must see
    every row), the model on the Dask cluster (:func:`fit_estimator`). Same pipeline as ``fit``'s."""
    if client is None or not is_lightgbm(pipeline[-1]):
        return pipeline.fit(X, y)
    features = pipeline[:-1].fit(X, y)
    model = fit_estimator(pipeline[-1], features.transform(X), y, client)
    return Pipeline([*pipeline.steps[:-1], (pipeline.steps[-1][0], model)])
