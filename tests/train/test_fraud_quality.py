"""On the default fraud example, the champion beats the dummy and a default-parameter LightGBM on the
holdout's average precision (same training rows, same features, same holdout)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.metrics import average_precision_score

from loopml.examples import write_example
from loopml.features import build_preprocessor
from loopml.project import Project
from loopml.tasks import get_task
from loopml.train.fit import _prepare
from loopml.validate import DataContract, load_snapshot


@pytest.mark.slow
def test_fraud_champion_beats_dummy_and_default_lightgbm(tmp_path: Path) -> None:
    import lightgbm as lgb

    directory = tmp_path / "fraud"
    write_example("fraud", directory)
    project = Project.open(directory, environ={})
    project.ingest()
    outcome = project.train()
    assert outcome.promoted
    assert outcome.warnings == () and outcome.version.metrics["warnings"] == []  # no false alarm
    champion = outcome.version
    m = champion.metrics
    assert m["metric"] == "average_precision"
    assert m["score"] > m["baseline_score"]

    # The same rows and features the champion was trained and judged on, from fit's own preparation.
    _, frame = load_snapshot(project.store, project.name, champion.signature["dataset_version"])
    contract = DataContract.model_validate(champion.signature["contract"])
    data, columns = _prepare(frame, contract, project.settings, get_task("binary"))
    assert len(data.holdout) == m["rows_holdout"] and len(data.train) == m["rows_train"]
    features = build_preprocessor(columns, project.settings.features).fit(data.X.iloc[data.train])
    default = lgb.LGBMClassifier(verbose=-1).fit(
        features.transform(data.X.iloc[data.train]), data.y[data.train]
    )
    proba = default.predict_proba(features.transform(data.X.iloc[data.holdout]))[:, 1]
    default_ap = float(average_precision_score(data.y[data.holdout], proba))
    print(
        f"champion AP {m['score']:.4f}, default LightGBM AP {default_ap:.4f}, dummy {m['baseline_score']:.4f}"
    )
    assert m["score"] > default_ap, (m["score"], default_ap)
