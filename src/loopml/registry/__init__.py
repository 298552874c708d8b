"""Registry: model versions, aliases and their history, safe save/load, LoadedModel."""

from __future__ import annotations

from loopml.registry.loaded import LoadedModel, load_history, load_model
from loopml.registry.serialize import TRUSTED_TYPES
from loopml.registry.training import TrainOutcome, train_and_register
from loopml.registry.versions import (
    AliasChange,
    ModelVersion,
    alias_at,
    alias_history,
    get_alias,
    get_version,
    list_versions,
    move_alias,
    register,
    resolve,
    rollback,
    set_alias,
    version_at,
)

__all__ = [
    "TRUSTED_TYPES",
    "AliasChange",
    "LoadedModel",
    "ModelVersion",
    "TrainOutcome",
    "alias_at",
    "alias_history",
    "get_alias",
    "get_version",
    "list_versions",
    "load_history",
    "load_model",
    "move_alias",
    "register",
    "resolve",
    "rollback",
    "set_alias",
    "train_and_register",
    "version_at",
]
