"""``loopml demo maintenance``'s pieces: the failure model's settings, the replay, the report."""

from __future__ import annotations

import pandas as pd
import pytest

from loopml.config import Settings, failure_settings, load_settings
from loopml.errors import ConfigError
from loopml.examples.maintenance import PUBLISHED
from loopml.examples.maintenance.demo import _replay_requests, render


def _settings() -> Settings:
    from importlib import resources

    with resources.as_file(resources.files("loopml.examples").joinpath("maintenance", "loopml.yaml")) as path:
        return load_settings(path, environ={})


def test_the_failure_model_predicts_the_label_without_seeing_the_rul() -> None:
    settings = _settings()
    failure = failure_settings(settings)
    assert (failure.name, failure.task, failure.target) == (
        "maintenance-failure",
        "binary",
        "fails_within_30",
    )
    assert "rul" in failure.features.drop  # the other target would leak the answer
    assert failure.train.metric is None  # the binary task's own metric, not the RUL's rmse
    with pytest.raises(ConfigError, match="maintenance"):
        failure_settings(settings.model_copy(update={"maintenance": None}))


def test_the_replay_runs_the_fleet_side_by_side() -> None:
    test = pd.DataFrame(
        {"engine": [1] * 5 + [2] * 3, "cycle": [1, 2, 3, 4, 5, 1, 2, 3], "s2": [float(i) for i in range(8)]}
    )
    requests = _replay_requests(test, window=3, cycles=2)
    assert [(engine, cycle) for engine, cycle, _ in requests] == [(1, 4), (2, 2), (1, 5), (2, 3)]
    body = requests[2][2]["cycles"]
    assert [r["cycle"] for r in body] == [3, 4, 5]  # the last three readings up to cycle 5
    assert [r["cycle"] for r in requests[1][2]["cycles"]] == [1, 2]  # a young engine: since cycle 1


def test_render_puts_the_run_next_to_the_published_figures(capsys: pytest.CaptureFixture[str]) -> None:
    published = [{k: p[k] for k in ("model", "rmse", "phm08_score", "checked")} for p in PUBLISHED]
    render(
        {"test_rmse": 12.43, "phm08_score": 240.6, "published": published, "retrain_reasons": ["rejected: x"]}
    )
    out = capsys.readouterr().out
    assert "12.43" in out and "240.6" in out and "16.14" in out and "DCNN" in out
    assert "as widely quoted" in out  # the CNN and DCNN figures were not checked against their papers
    assert "rejected: x" in out  # a list (the retraining reasons) is shown, joined
