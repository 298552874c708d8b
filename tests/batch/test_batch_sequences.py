"""Sequence window features in batch: an engine whose rows straddle a chunk boundary gets the same
features (and RUL) as scored all at once, and as the maintenance endpoint answers for its last cycle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from loopml.batch import score_file
from loopml.batch.score import SequenceCarry
from loopml.errors import InputError
from loopml.project import Project
from maintenance_support import maintenance_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    directory = tmp_path_factory.mktemp("maintenance-batch")
    return maintenance_project(directory, trees=20, engines=6)[0]


def test_chunks_cut_inside_engines_score_as_the_whole_file_and_the_api(
    project: Project, tmp_path: Path
) -> None:
    test = pd.read_parquet(project.settings.project_dir / "data" / "test_cycles.parquet")
    test = test.sort_values(["engine", "cycle"]).reset_index(drop=True)
    source = tmp_path / "test.parquet"
    test.to_parquet(source, index=False)
    model = project.models.load()
    whole = model.predict_frame(test, observe=False)
    for chunk_rows in (7, 45, 100_000):  # 7 and 45: every engine (31..198 cycles) straddles chunks
        out = tmp_path / f"scored-{chunk_rows}.parquet"
        score_file(project.store, model, source, out, chunk_rows=chunk_rows, log_predictions=False)
        np.testing.assert_array_equal(pd.read_parquet(out)["score"].to_numpy(), whole)
    with TestClient(project.app()) as client:
        for engine in (1, 3):
            rows = test[test["engine"] == engine].tail(30)
            body = {"cycles": [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
                               for r in rows.to_dict("records")]}  # fmt: skip
            answer = client.post("/v1/models/maintenance/rul", json=body)
            assert answer.status_code == 200, answer.text
            last = whole[rows.index[-1]]
            assert answer.json()["rul"] == min(max(float(last), 0.0), 125.0)


def test_without_the_carry_a_straddling_engine_would_differ(project: Project) -> None:
    """The check above can fail: the rows after a cut, scored alone, lose their engine's history."""
    test = pd.read_parquet(project.settings.project_dir / "data" / "test_cycles.parquet")
    engine = test[test["engine"] == 3].sort_values("cycle").reset_index(drop=True)
    model = project.models.load()
    whole = model.predict_frame(engine, observe=False)
    alone = model.predict_frame(engine.iloc[50:], observe=False)
    assert not np.allclose(alone[:5], whole[50:55])


def test_a_unit_out_of_order_across_chunks_is_a_one_line_error(project: Project) -> None:
    carry = SequenceCarry.for_model(project.models.load())
    assert carry is not None and (carry.entity, carry.order, carry.keep) == ("engine", "cycle", 29)
    frame = pd.DataFrame({"engine": [1, 1, 2], "cycle": [5, 6, 1], "s2": [1.0, 2.0, 3.0]})
    assert carry.with_context(frame)[1] == 0  # the first chunk has no context
    more, skip = carry.with_context(pd.DataFrame({"engine": [1], "cycle": [7], "s2": [4.0]}))
    assert skip == 2 and more["cycle"].tolist() == [5, 6, 7]
    with pytest.raises(InputError, match=r"engine 1 are out of order.*sort the input by engine, cycle"):
        carry.with_context(pd.DataFrame({"engine": [1], "cycle": [3], "s2": [0.0]}))
