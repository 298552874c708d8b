"""Sanity warnings at training time (:mod:`loopml.train.sanity`): an id used as a feature, a
constant column, a single feature that alone nearly predicts the target (a leak), and a rare positive
class with 1:1 costs; each recorded with the version, in the report, and printed by ``loopml train``
(and in its ``--json``) with the setting that deals with it. Clean data gets none.

Real data: scikit-learn's bundled breast-cancer measurements and diabetes progression, with the
columns a new user's file tends to carry added to them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer, load_diabetes
from typer.testing import CliRunner

from loopml.cli import app
from loopml.config import Settings, load_settings
from loopml.project import Project, TrainOutcome
from loopml.train import fit
from loopml.train.sanity import LEAK_SCORE, SanityWarning, WarningKind
from loopml.validate import infer_contract

runner = CliRunner()
SITE = "Lab [site]"  # brackets: Rich markup must not swallow them


def write_config(directory: Path, frame: pd.DataFrame, target: str, **sections: Any) -> Path:
    """A CSV project over ``frame``; ``sections`` are merged over a binary task's defaults."""
    directory.mkdir(parents=True, exist_ok=True)
    frame.to_csv(directory / "data.csv", index=False)
    config: dict[str, Any] = {
        "name": "sane",
        "task": sections.pop("task", "binary"),
        "source": {"kind": "csv", "path": "data.csv"},
        "target": target,
        "train": {"bootstrap": 10, "params": {"n_jobs": 1}},
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    (directory / "loopml.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return directory


def cells_with_bookkeeping() -> pd.DataFrame:
    """Breast-cancer measurements (continuous, many values unique per row: not ids) plus a sample id
    (text, unique per row) and a lab column with one value."""
    bunch = load_breast_cancer()
    frame = pd.DataFrame(bunch.data, columns=list(bunch.feature_names))
    frame.insert(0, "sample_id", [f"S{i:05d}" for i in np.random.default_rng(2).permutation(len(frame))])
    frame[SITE] = "north"
    frame["malignant"] = 1 - bunch.target
    return frame


@pytest.fixture(scope="module")
def cells(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, TrainOutcome]:
    directory = write_config(tmp_path_factory.mktemp("cells") / "proj", cells_with_bookkeeping(), "malignant")
    project = Project.open(directory, environ={})
    project.ingest()
    return project, project.train()


def kinds(warnings: Any) -> dict[str, str]:
    """``{column: kind}`` of warnings given as objects or as their JSON entries."""
    entries = [w.to_dict() if isinstance(w, SanityWarning) else w for w in warnings]
    return {str(e["column"]): e["kind"] for e in entries}


def test_an_id_and_a_constant_column_used_as_features_are_warned_about(
    cells: tuple[Project, TrainOutcome],
) -> None:
    project, outcome = cells
    # Exactly these two: the 30 continuous measurements (mostly unique per row) are not ids.
    assert kinds(outcome.warnings) == {"sample_id": "id_like", SITE: "constant"}
    ident = next(w for w in outcome.warnings if w.kind is WarningKind.ID_LIKE)
    assert "569 rows" in ident.detail and ident.setting == "id_column, or add it to features.drop"
    constant = next(w for w in outcome.warnings if w.kind is WarningKind.CONSTANT)
    assert "'north'" in constant.detail and constant.setting == "features.drop"
    # Recorded with the version as structured entries, the same as the outcome's.
    recorded = outcome.version.metrics["warnings"]
    assert [SanityWarning.from_dict(w) for w in recorded] == list(outcome.warnings)
    assert set(recorded[0]) == {"kind", "column", "detail", "setting"}
    page = (Path(project.settings.artifacts_url) / outcome.report).read_text(encoding="utf-8")
    assert "<h2>Sanity warnings</h2>" in page and "sample_id" in page and "Lab [site]" in page


def test_loopml_train_prints_the_warnings_and_the_choice(cells: tuple[Project, TrainOutcome]) -> None:
    project, _ = cells
    directory = str(project.settings.project_dir)
    text = runner.invoke(app, ["train", "-p", directory])
    assert text.exit_code == 0, text.output
    said = " ".join(text.output.split())  # Rich wraps long lines
    lines = said.split("warning: ")[1:]
    assert len(lines) == 2, text.output
    assert any("'sample_id'" in line and "set id_column" in line for line in lines)
    assert any(f"'{SITE}'" in line and "set features.drop" in line for line in lines)  # brackets kept
    assert "Model: LightGBM with" in said and "chosen on the validation slice" in said

    result = runner.invoke(app, ["train", "-p", directory, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert kinds(payload["warnings"]) == {"sample_id": "id_like", SITE: "constant"}
    selection = payload["selection"]
    assert selection["chosen"] in {"lightgbm", "lightgbm_default"} and isinstance(selection["margin"], float)
    assert payload["metrics"]["selection"] == selection


def settings_for(directory: Path) -> Settings:
    return load_settings(directory, environ={})


def rare_failures(n: int = 4000) -> pd.DataFrame:
    """Breast-cancer-like sensor readings with 3% positives and a chargeback flag recorded after the
    outcome (the target with 0.3% of rows flipped): a leak."""
    rng = np.random.default_rng(5)
    reading = rng.normal(size=(n, 3))
    failed = (reading[:, 0] + rng.normal(0, 1.0, n) > 2.6).astype(int)
    flag = np.where(rng.random(n) < 0.003, 1 - failed, failed)
    frame = pd.DataFrame(reading, columns=["Torque [Nm]", "Speed [rpm]", "Wear [min]"])
    frame["chargeback [flag]"] = flag
    frame["failed"] = failed
    return frame


def test_a_leak_and_a_rare_target_with_equal_costs(tmp_path: Path) -> None:
    frame = rare_failures()
    assert 0.01 < frame["failed"].mean() < 0.05
    settings = settings_for(write_config(tmp_path / "proj", frame, "failed"))
    contract = infer_contract(frame, settings.name, target="failed")
    found = fit(frame, contract, settings).warnings
    assert kinds(found) == {"chargeback [flag]": "leak", "failed": "imbalanced"}
    leak = next(w for w in found if w.kind is WarningKind.LEAK)
    score = float(leak.detail.split("ROC AUC ")[1].split(":")[0])
    assert score >= LEAK_SCORE and leak.setting == "features.drop"
    rare = next(w for w in found if w.kind is WarningKind.IMBALANCED)
    assert "train.costs.false_negative" in rare.setting and "train.costs.false_positive" in rare.setting
    assert "% of the training rows are positive" in rare.detail

    # Costs that say what each mistake costs, and the flag dropped: nothing to warn about.
    costs = settings.train.costs.model_copy(update={"false_negative": 20.0})
    features = settings.features.model_copy(update={"drop": ["chargeback [flag]"]})
    fixed = settings.model_copy(
        update={"train": settings.train.model_copy(update={"costs": costs}), "features": features}
    )
    assert fit(frame, contract, fixed).warnings == ()


def test_a_regression_leak_is_judged_by_r2(tmp_path: Path) -> None:
    bunch = load_diabetes()
    frame = pd.DataFrame(bunch.data, columns=list(bunch.feature_names))
    rng = np.random.default_rng(0)
    frame["progression"] = bunch.target
    frame["progression next visit"] = bunch.target + rng.normal(0, 3.0, len(frame))  # known later
    settings = settings_for(write_config(tmp_path / "proj", frame, "progression", task="regression"))
    contract = infer_contract(frame, settings.name, target="progression")
    found = fit(frame, contract, settings).warnings
    assert kinds(found) == {"progression next visit": "leak"}
    assert "R² " in found[0].detail
