"""``fit_served``: the pipeline ``fit`` serves, in one fit (the fraud demo's no-label-delay models)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from loopml.config import Settings, load_settings
from loopml.examples import write_example
from loopml.examples.fraud import simulate
from loopml.train import fit, fit_served
from loopml.validate import infer_contract


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return simulate(days=20, regime_change_day=None, n_customers=150, n_terminals=400)


def _settings(directory: Path) -> Settings:
    write_example("fraud", directory, days=2, n_customers=20, n_terminals=50, regime_change_day=None)
    base = load_settings(directory)
    train = base.train.model_copy(update={"params": {"n_estimators": 15, "n_jobs": 1}, "bootstrap": 0})
    return base.model_copy(update={"train": train})


def test_fit_served_is_the_pipeline_fit_serves(tmp_path: Path, rows: pd.DataFrame) -> None:
    settings = _settings(tmp_path)
    contract = infer_contract(rows, settings.name, id_column="transaction_id", event_time="tx_datetime")
    trees = {}
    for refit in (True, False):
        served = fit(rows, contract, settings, refit=refit).pipeline[-1].booster_.model_to_string()
        alone = fit_served(rows, contract, settings, refit=refit)[-1].booster_.model_to_string()
        assert alone == served  # the same rows, parameters and seed: the very same trees
        trees[refit] = alone
    assert trees[True] != trees[False]  # the refit learned the holdout's rows too


def test_train_window_fits_on_the_newest_rows_only(tmp_path: Path, rows: pd.DataFrame) -> None:
    """``train.window``: the fit sees only rows within the window of the newest training row; the
    holdout is the same; a cycle's challenger gets it from ``retrain.train_window``."""
    from loopml.retrain.cycle import challenger_settings

    settings = _settings(tmp_path)
    contract = infer_contract(rows, settings.name, id_column="transaction_id", event_time="tx_datetime")
    every = fit(rows, contract, settings).metrics
    windowed = settings.model_copy(update={"train": settings.train.model_copy(update={"window": "5d"})})
    recent = fit(rows, contract, windowed).metrics
    assert recent["rows_holdout"] == every["rows_holdout"]
    times = pd.to_datetime(rows["tx_datetime"]).sort_values().reset_index(drop=True)
    train_part = times.iloc[: every["rows_train"]]
    expected = int((train_part >= train_part.max() - pd.Timedelta("5d")).sum())
    assert recent["rows_train"] == expected < every["rows_train"]

    retrain = settings.retrain.model_copy(update={"train_window": "5d"})
    cycle = settings.model_copy(update={"retrain": retrain})
    assert challenger_settings(cycle).train.window == "5d" and challenger_settings(settings) is settings
