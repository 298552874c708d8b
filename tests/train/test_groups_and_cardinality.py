from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from loopml.project import Project
from loopml.tasks import time_split


def test_group_split_keeps_each_group_on_one_side() -> None:
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 40, 1_000)
    train, holdout = time_split(pd.DataFrame(index=range(1_000)), None, 0.25, seed=3, groups=groups)
    assert set(groups[train]).isdisjoint(groups[holdout])
    assert len(train) + len(holdout) == 1_000 and 0.1 < len(holdout) / 1_000 < 0.4


def _project(root: Path, rows: int = 3_000) -> Project:
    rng = np.random.default_rng(1)
    customer = rng.integers(0, 300, rows)
    city = np.where(rng.random(rows) < 0.9, rng.choice(["a", "b", "c"], rows), [f"c{i}" for i in range(rows)])
    shop = np.array([f"shop-{i % 400}" for i in rng.integers(0, 10_000, rows)])  # 400 values: over the cap
    x = rng.normal(size=rows)
    y = ((x + (city == "a") + rng.normal(0, 0.5, rows)) > 1).astype(int)
    (root / "data").mkdir(parents=True)
    frame = pd.DataFrame(
        {"id": range(rows), "customer": customer, "city": city, "shop": shop, "x": x, "y": y}
    )
    frame.to_parquet(root / "data" / "d.parquet")
    config = {
        "name": "groups",
        "task": "binary",
        "target": "y",
        "id_column": "id",
        "source": {"kind": "parquet", "path": "data/d.parquet"},
        "features": {"drop": ["customer"], "rare_category_count": 5, "max_categories": 20},
        "train": {
            "params": {"n_estimators": 20},
            "group_column": "customer",
            "bootstrap": 0,
            "report": False,
        },
    }
    (root / "loopml.yaml").write_text(yaml.safe_dump(config))
    return Project.open(root)


def test_training_splits_by_group_and_groups_rare_categories(tmp_path: Path) -> None:
    project = _project(tmp_path / "p")
    project.ingest()
    outcome = project.train()
    model = project.models.load()
    steps = dict((name, step) for name, step, _ in model.pipeline[0].transformers_)
    # 'city' and 'shop' have more values than the contract's category cap: rare values share one code
    encoder = steps["high_cardinality"]
    assert list(encoder.feature_names_in_) == ["city", "shop"]
    assert all(rare is not None for rare in encoder.infrequent_categories_)
    shops = [f"shop-{i}" for i in range(400)] + ["never-seen"]
    codes = encoder.transform(pd.DataFrame({"city": ["a"] * len(shops), "shop": shops}))[:, 1]
    assert len(np.unique(codes)) <= 21 and codes[-1] == -1  # at most 20 codes, plus -1 for unseen values
    rows = pd.read_parquet(tmp_path / "p" / "data" / "d.parquet")
    assert outcome.version.metrics["rows_holdout"] + outcome.version.metrics["rows_train"] == len(rows)
    assert outcome.version.metrics["score"] > outcome.version.metrics["baseline_score"]
    # the compiled fast path steps aside for such pipelines: generic and served scores agree
    sample = rows.head(50)
    assert np.array_equal(
        model.predict_frame(sample, observe=False), model.score_generic(model.coerce(sample))
    )
