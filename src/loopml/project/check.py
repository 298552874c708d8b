"""``loopml check``: every column the project file names, compared with the columns of the data.

The project file names columns in many places: the target, the id and the event time, the
watermark, groups and segments, feature lists, entity keys of window and sequence features, the
task sections (forecast, ranking, maintenance), cleaning rules and contract rules. A misspelled
one used to surface late (a ``KeyError`` at train) or never (a misspelled ``id_column`` made the
real id a feature). :func:`check_columns` compares them all, in that order, with the columns of
the source, read cheaply (a CSV header, a Parquet schema, an SQL result's columns; see
:class:`loopml.sources.SchemaSource`), or of the data set's contract, and stops at the first miss
with a one-line :class:`~loopml.errors.ConfigError` (exit code 2) that names the key, the value
and the closest real column::

    loopml.yaml: id_column 'custmer_id' is not a column of orders.csv; did you mean 'customer_id'?

``Project.check()`` runs it against the source; ``Project.ingest`` runs it before reading anything
and ``Project.train`` against the data set's contract before fitting anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loopml.config import PROJECT_FILE, Settings, SourceConfig
from loopml.errors import ConfigError, closest
from loopml.sources import source_columns, source_from_config
from loopml.validate import contracts_dir, latest_contract
from loopml.validate.plan import open_input

__all__ = [
    "ColumnRef",
    "ConfigCheck",
    "check_columns",
    "check_data",
    "check_source",
    "column_refs",
    "source_label",
    "suggest_column",
]

_SHOWN_COLUMNS = 12  # a miss with no close match lists this many of the real columns


@dataclass(frozen=True)
class ColumnRef:
    """One place where the project file names a column: ``key`` (``features.windows[0].entity``)
    and the column it names."""

    key: str
    column: str


@dataclass(frozen=True)
class ConfigCheck:
    """What ``loopml check`` verified: every column reference against the columns of ``where``."""

    where: str
    columns: tuple[str, ...]
    checked: tuple[ColumnRef, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": True,
            "checked_against": self.where,
            "columns": list(self.columns),
            "references": [{"key": r.key, "column": r.column} for r in self.checked],
        }


def _listed(key: str, names: Iterable[str] | None) -> list[ColumnRef]:
    return [ColumnRef(f"{key}[{i}]", name) for i, name in enumerate(names or ())]


def _features(settings: Settings) -> list[ColumnRef]:
    features = settings.features
    refs = [
        *_listed("features.include", features.include),
        *_listed("features.drop", features.drop),
        *_listed("features.categorical", features.categorical),
    ]
    for i, window in enumerate(features.windows):
        refs.append(ColumnRef(f"features.windows[{i}].entity", window.entity))
        if window.column is not None:
            refs.append(ColumnRef(f"features.windows[{i}].column", window.column))
    sequences = features.sequences
    if sequences is not None:
        refs += [
            ColumnRef("features.sequences.entity", sequences.entity),
            ColumnRef("features.sequences.order", sequences.order),
            *_listed("features.sequences.columns", sequences.columns),
        ]
    return refs


def _sections(settings: Settings) -> list[tuple[str, str | None]]:
    """The task sections' and the cleaning and contract rules' column keys."""
    pairs: list[tuple[str, str | None]] = []
    if settings.forecast is not None:
        pairs += [
            ("forecast.item", settings.forecast.item),
            ("forecast.group_column", settings.forecast.group_column),
        ]
    if settings.ranking is not None:
        ranking = settings.ranking
        pairs += [
            ("ranking.user", ranking.user),
            ("ranking.item", ranking.item),
            ("ranking.segment", ranking.segment),
        ]
    if settings.maintenance is not None:
        pairs.append(("maintenance.failure_target", settings.maintenance.failure_target))
    cleaning = settings.cleaning
    pairs += [(f"cleaning.filters[{i}].column", f.column) for i, f in enumerate(cleaning.filters)]
    pairs += [(f"cleaning.missing.{name}", name) for name in cleaning.missing]
    pairs += [(f"contract.columns.{name}", name) for name in settings.contract.columns]
    return pairs


def column_refs(settings: Settings) -> list[ColumnRef]:
    """Every column the project file names, the most important first (target, id, event time)."""
    train = settings.train
    head: list[tuple[str, str | None]] = [
        ("target", settings.target),
        ("id_column", settings.id_column),
        ("event_time", settings.event_time),
        ("source.watermark", settings.source.watermark),
        ("train.group_column", train.group_column),
    ]
    refs = [ColumnRef(key, value) for key, value in head if value is not None]
    refs += _listed("train.segments", train.segments)
    refs += _features(settings)
    refs += [ColumnRef(key, value) for key, value in _sections(settings) if value is not None]
    return refs


def suggest_column(name: str, columns: Sequence[str]) -> str:
    """``did you mean 'x'?`` (a different case counts as close), or some of the real columns."""
    folded = {c.casefold(): c for c in columns}
    match = folded.get(name.casefold()) or closest(name, columns)
    if match is None:
        match = closest(name.casefold(), list(folded))
        match = folded[match] if match is not None else None
    if match is not None:
        return f"did you mean '{match}'?"
    shown = ", ".join(repr(c) for c in columns[:_SHOWN_COLUMNS])
    more = f" and {len(columns) - _SHOWN_COLUMNS} more" if len(columns) > _SHOWN_COLUMNS else ""
    return f"its columns are {shown}{more}." if columns else "it has no columns."


def _roles(settings: Settings) -> None:
    """The target, the id and the event time are three different columns."""
    roles = [
        ("target", settings.target),
        ("id_column", settings.id_column),
        ("event_time", settings.event_time),
    ]
    named = [(key, value) for key, value in roles if value is not None]
    for i, (key, value) in enumerate(named):
        for other, same in named[i + 1 :]:
            if value == same:
                raise ConfigError(
                    f"{PROJECT_FILE}: {key} and {other} both name column '{value}'; "
                    "the target, the id and the event time must be different columns."
                )


def check_columns(settings: Settings, columns: Sequence[str], where: str) -> ConfigCheck:
    """Check every :func:`column_refs` of ``settings`` against ``columns`` (those of ``where``);
    the first miss is a one-line :class:`ConfigError`.

    Examples
    --------
    >>> from loopml.config import parse_settings
    >>> settings = parse_settings("name: s\\nsource: {kind: csv, path: orders.csv}\\n"
    ...                           "target: churned\\nid_column: custmer_id\\n")
    >>> try:
    ...     check_columns(settings, ["customer_id", "churned"], "orders.csv")
    ... except ConfigError as exc:
    ...     print(exc)
    loopml.yaml: id_column 'custmer_id' is not a column of orders.csv; did you mean 'customer_id'?
    """
    _roles(settings)
    refs = column_refs(settings)
    known = set(columns)
    for ref in refs:
        if ref.column not in known:
            raise ConfigError(
                f"{PROJECT_FILE}: {ref.key} '{ref.column}' is not a column of {where}; "
                + suggest_column(ref.column, list(columns))
            )
    return ConfigCheck(where, tuple(columns), tuple(refs))


def source_label(config: SourceConfig) -> str:
    """How a message names the source: a file's name, a glob or folder as written, an SQL table."""
    if config.path is not None:
        path = config.path
        return Path(path).name if not any(ch in path for ch in "*?[") and Path(path).suffix else path
    return f"table '{config.table}'" if config.table else "the source query"


def check_source(settings: Settings, input_path: str | os.PathLike[str] | None = None) -> ConfigCheck:
    """Check the project file against the columns of its source (or of one ``input_path`` file)."""
    if input_path is not None:
        path = Path(input_path)
        return check_columns(settings, source_columns(open_input(path)), path.name)
    source = source_from_config(settings.source, settings.project_dir)
    return check_columns(settings, source_columns(source), source_label(settings.source))


def check_data(settings: Settings) -> ConfigCheck:
    """Check the project file against its data set's latest contract (what training reads), or
    against the source before the first ingest."""
    contract = latest_contract(contracts_dir(settings.project_dir), settings.name)
    if contract is None:
        return check_source(settings)
    where = f"data set '{contract.name}' (contract v{contract.version})"
    return check_columns(settings, contract.names, where)
