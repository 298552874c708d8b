"""``project.models``: train, list, show, compare, promote and roll back model versions."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from loopml.errors import ConfigError
from loopml.project.compare import VersionComparison, compare_versions
from loopml.registry import (
    AliasChange,
    ModelVersion,
    alias_at,
    alias_history,
    get_alias,
    list_versions,
    resolve,
    rollback,
    set_alias,
)
from loopml.scoring import LoadedModel, load_model
from loopml.train import TrainOutcome, fit_served, train_and_register

if TYPE_CHECKING:
    from loopml.project.core import Project

__all__ = ["FittedModel", "ModelDiff", "Models"]


@dataclass(frozen=True)
class ModelDiff:
    """What differs between two versions: each changed field (metrics, parameters, data, inputs)
    as ``[value in a, value in b]``."""

    a: int
    b: int
    changed: dict[str, list[Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "changed": self.changed}


@dataclass(frozen=True)
class FittedModel:
    """A pipeline fitted by the project's training procedure but not registered: a yardstick for
    comparisons (see :meth:`Models.fit` and :meth:`loopml.project.predictions.Predictions.score_as_of`)."""

    pipeline: Any


class Models:
    """``project.models``: the registry of the project's model, and training into it."""

    def __init__(self, project: Project) -> None:
        self._project = project

    @property
    def _engine(self) -> Any:
        return self._project.store.engine

    def train(self, dataset_version: int | None = None, *, promote_if_first: bool = True) -> TrainOutcome:
        """Fit on a snapshot (the latest by default), compare with the champion on the same holdout,
        write the report and reference profile, register the version, and make it champion if there
        is none.

        Each companion model (:attr:`Project.companions`) is trained the same way on its latest
        snapshot; their outcomes are the returned outcome's ``companions``. First the project file
        is checked against the data set's columns (:meth:`Project.check` with ``against="data"``).
        """
        project = self._project
        for checked in (project, *project.companions):  # a misspelled column stops here, not mid-fit
            checked.check(against="data")
        outcome = train_and_register(
            project.settings, project.store, dataset_version, promote_if_first=promote_if_first
        )
        others = tuple(self._train_companion(c, promote_if_first) for c in project.companions)
        return replace(outcome, companions=others) if others else outcome

    @staticmethod
    def _train_companion(companion: Project, promote_if_first: bool) -> TrainOutcome:
        if companion.data.latest() is None:  # ingested before it was configured
            companion.data.ingest()
        return train_and_register(companion.settings, companion.store, promote_if_first=promote_if_first)

    def versions(self) -> list[ModelVersion]:
        """Every version of the project's model, newest first."""
        return list_versions(self._engine, self._project.name)

    def get(self, ref: str | int = "champion") -> ModelVersion:
        """A version by number or alias (its metrics, signature and lineage; nothing loaded)."""
        return resolve(self._engine, self._project.name, ref)

    def load(self, ref: str | int = "champion", *, history: bool = True, online: bool = False) -> LoadedModel:
        """Load a version by number or alias, checking its SHA-256, with its window state (unless
        ``history`` is False): one of its own, warmed from the store, or with ``online`` the state the
        API replicas share (``serve.online_store``; a :class:`~loopml.errors.ConfigError` when unset)."""
        url = None
        if online:
            url = self._project.settings.serve.online_store
            if url is None:
                raise ConfigError(
                    "scoring online needs the shared online state: set serve.online_store in loopml.yaml "
                    "(or LOOPML_ONLINE_URL), e.g. redis://127.0.0.1:6379/0."
                )
        return load_model(self._project.store, self._project.name, ref, history=history, online_url=url)

    def alias(self, alias: str = "champion") -> int | None:
        """The version ``alias`` points at, or None."""
        return get_alias(self._engine, self._project.name, alias)

    def follow(self, model: LoadedModel | None = None, alias: str = "champion") -> LoadedModel:
        """The version ``alias`` points at, kept current as the API keeps its served model: ``model``
        itself while it still holds ``alias`` (with the labels sent as feedback since the last call
        learnt by its window state), else that version newly loaded. Call it between batches that
        stand in for live traffic, passing what it returned the last time."""
        version = self.alias(alias)
        if model is not None and model.version.version == version:
            model.learn_feedback(self._project.store)
            return model
        return self.load(alias if version is None else version)

    def promote(
        self,
        version: int,
        *,
        alias: str = "champion",
        reason: str = "manual promotion",
        actor: str = "loopml",
    ) -> AliasChange:
        """Point ``alias`` at ``version``, recording who and why; serving follows within a second.

        The version's artifact must match its SHA-256 and load with the safe loader first: a
        :class:`~loopml.errors.PromotionRefusedError` otherwise, and the alias stays."""
        store = self._project.store
        return set_alias(store, self._project.name, alias, version, reason=reason, actor=actor)

    def rollback(
        self, *, alias: str = "champion", reason: str = "manual rollback", actor: str = "loopml"
    ) -> AliasChange:
        """Point ``alias`` back at the version it held before its latest move."""
        return rollback(self._project.store, self._project.name, alias, reason=reason, actor=actor)

    def history(self, alias: str | None = None) -> list[AliasChange]:
        """Every alias move (of one alias, or all), oldest first."""
        return alias_history(self._engine, self._project.name, alias)

    def alias_at(self, when: datetime, alias: str = "champion") -> int | None:
        """Which version held ``alias`` at time ``when`` (None before its first assignment)."""
        return alias_at(self._engine, self._project.name, alias, when)

    def diff(self, a: str | int, b: str | int) -> ModelDiff:
        """What differs between two versions (numbers or aliases): metrics, parameters, data, inputs."""
        va, vb = self.get(a), self.get(b)
        left, right = _comparable(va), _comparable(vb)
        changed = {
            k: [left.get(k), right.get(k)]
            for k in sorted(set(left) | set(right))
            if left.get(k) != right.get(k)
        }
        return ModelDiff(va.version, vb.version, changed)

    def compare(self, a: str | int, b: str | int) -> VersionComparison:
        """Two versions (numbers or aliases) side by side: holdout metrics with their intervals,
        curves, top features, training data and the gate's verdict (see :mod:`loopml.project.compare`)."""
        return compare_versions(self._engine, self._project.name, a, b)

    def fit(self, frame: pd.DataFrame, *, as_challenger: bool = False) -> FittedModel:
        """Fit a pipeline on ``frame`` with the project's training procedure (as a retraining cycle
        trains its challenger, with ``retrain.train_window``, when ``as_challenger``), without
        judging or registering it: a yardstick to compare served models with."""
        from loopml.retrain.cycle import challenger_settings

        project = self._project
        settings = challenger_settings(project.settings) if as_challenger else project.settings
        contract = project.data.contract()
        return FittedModel(fit_served(frame, contract, settings, refit=project.settings.retrain.refit))


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif not isinstance(value, list):
        out[prefix] = value
    return out


def _comparable(v: ModelVersion) -> dict[str, Any]:
    metrics = {k: v.metrics.get(k) for k in ("holdout", "score", "threshold", "dataset_version")}
    sig = v.signature
    fields = {
        "metrics": metrics,
        "params": sig.get("params", {}),
        "input_columns": ",".join(sig["input_columns"]),
    }
    return _flatten("", fields, {})
