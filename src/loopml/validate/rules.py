"""Rules from ``loopml.yaml`` laid over a data contract: ``contract.columns`` and ``cleaning`` policies."""

from __future__ import annotations

import re
from typing import Any

from loopml.config import CleaningConfig, ContractConfig
from loopml.errors import ConfigError, did_you_mean
from loopml.validate.contract import ColumnSpec, DataContract

__all__ = ["apply_rules"]


def _check_names(section: str, names: list[str], contract: DataContract) -> None:
    for name in names:
        if name not in contract.names:
            raise ConfigError(
                f"loopml.yaml: '{section}.{name}' names no column of data set '{contract.name}'; "
                f"{did_you_mean(name, contract.names)}"
            )


def _override(spec: ColumnSpec, contract: ContractConfig, cleaning: CleaningConfig) -> ColumnSpec:
    update: dict[str, Any] = {}
    rule = contract.columns.get(spec.name)
    if rule is not None:
        update.update(rule.model_dump(exclude_unset=True))
        if update.get("pattern") is not None:
            try:
                re.compile(update["pattern"])
            except re.error as exc:
                raise ConfigError(
                    f"loopml.yaml: 'contract.columns.{spec.name}.pattern' is not a regular expression "
                    f"({exc})."
                ) from None
    policy = cleaning.missing.get(spec.name)
    if policy == "keep":
        update["nullable"] = True
    elif policy == "quarantine":
        update["nullable"] = False
    return spec.model_copy(update=update) if update else spec


def apply_rules(contract: DataContract, rules: ContractConfig, cleaning: CleaningConfig) -> DataContract:
    """The contract with the project file's rules applied (the file's keys win over inferred ones)."""
    _check_names("contract.columns", list(rules.columns), contract)
    _check_names("cleaning.missing", list(cleaning.missing), contract)
    if cleaning.dedupe == "id" and contract.id_column is None:
        raise ConfigError(
            "loopml.yaml: 'cleaning.dedupe: id' needs an id_column; set id_column or use 'row'."
        )
    columns = [_override(spec, rules, cleaning) for spec in contract.columns]
    if cleaning.dedupe == "id":
        columns = [
            c.model_copy(update={"unique": True}) if c.name == contract.id_column else c for c in columns
        ]
    return contract.model_copy(update={"columns": columns})
