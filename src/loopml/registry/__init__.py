"""Registry: model versions, aliases and their history, artifacts and their verification.

Nothing else: training a version lives in :mod:`loopml.train`, loading one to score in
:mod:`loopml.scoring`.
"""

from __future__ import annotations

from loopml.registry.serialize import TRUSTED_TYPES, dumps, loads
from loopml.registry.versions import (
    AliasChange,
    ModelVersion,
    alias_at,
    alias_history,
    check_promotable,
    get_alias,
    get_version,
    list_versions,
    move_alias,
    read_artifact,
    register,
    resolve,
    rollback,
    set_alias,
    version_at,
)

__all__ = [
    "TRUSTED_TYPES",
    "AliasChange",
    "ModelVersion",
    "alias_at",
    "alias_history",
    "check_promotable",
    "dumps",
    "get_alias",
    "get_version",
    "list_versions",
    "loads",
    "move_alias",
    "read_artifact",
    "register",
    "resolve",
    "rollback",
    "set_alias",
    "version_at",
]
