"""LoadedModel: the one scoring function shared by the API and batch jobs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import InputError
from loopml.registry.serialize import loads
from loopml.registry.versions import ModelVersion, resolve
from loopml.store import Store
from loopml.validate import DataContract, coerce_column

__all__ = ["LoadedModel", "load_model"]


@dataclass(frozen=True)
class LoadedModel:
    """A registered version, verified and loaded, ready to score.

    Real-time and batch scoring both go through :meth:`prepare` and :meth:`score`, so they give
    identical results for identical rows.
    """

    version: ModelVersion
    pipeline: Any = field(repr=False)

    @property
    def name(self) -> str:
        return self.version.name

    @property
    def contract(self) -> DataContract:
        return DataContract.model_validate(self.version.signature["contract"])

    @property
    def input_columns(self) -> list[str]:
        return list(self.version.signature["input_columns"])

    @property
    def threshold(self) -> float:
        return float(self.version.signature.get("threshold", 0.5))

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Select the input columns and coerce each to its contract type."""
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            raise InputError(
                f"input is missing column(s) {', '.join(missing)} that model '{self.name}' needs."
            )
        contract = self.contract
        return pd.DataFrame(
            {c: coerce_column(frame[c], contract.column(c)) for c in self.input_columns}, index=frame.index
        )

    def score(self, prepared: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class for each prepared row."""
        features, model = self.pipeline[:-1], self.pipeline[-1]
        matrix = features.transform(prepared)
        kwargs = (
            {"num_threads": 1}
            if len(prepared) < 256 and type(model).__module__.startswith("lightgbm")
            else {}
        )
        proba: np.ndarray = model.predict_proba(matrix, **kwargs)
        return proba[:, 1]

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Score a frame of raw rows."""
        return self.score(self.prepare(frame))

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Score JSON-like records (dicts of column -> value)."""
        return self.predict_frame(pd.DataFrame.from_records(list(records)))

    def outputs(self, scores: np.ndarray) -> list[dict[str, Any]]:
        """The response shape of each scored row: score and decision at the threshold."""
        cut = self.threshold
        return [{"score": float(s), "label": int(s >= cut)} for s in scores]


def load_model(store: Store, name: str, ref: str | int = "champion") -> LoadedModel:
    """Resolve ``ref`` (version number or alias), check the artifact's SHA-256, and load it."""
    version = resolve(store.engine, name, ref)
    data = store.artifacts.get_bytes(version.artifact_key, sha256=version.sha256)
    return LoadedModel(version=version, pipeline=loads(data))
