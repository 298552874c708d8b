"""From a data contract and the ``features`` section of loopml.yaml to a scikit-learn pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder, StandardScaler

from loopml.config import FeaturesConfig
from loopml.errors import ConfigError, did_you_mean
from loopml.features.datetime import DatetimeParts
from loopml.features.relative import WindowRatios
from loopml.features.windows import WindowSpec
from loopml.validate.contract import DataContract

__all__ = [
    "FeatureColumns",
    "build_preprocessor",
    "event_time_is_feature",
    "relative_features",
    "select_columns",
    "window_specs",
]


@dataclass(frozen=True)
class FeatureColumns:
    """The model's columns: raw ones by kind, window features, and what a request must carry."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    datetime: tuple[str, ...]
    windows: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    high_cardinality: tuple[str, ...] = ()

    @property
    def all(self) -> list[str]:
        """The columns the preprocessor consumes (window features included)."""
        return [*self.numeric, *self.windows, *self.categorical, *self.high_cardinality, *self.datetime]


def window_specs(config: FeaturesConfig) -> list[WindowSpec]:
    """The window specs of the ``features.windows`` section."""
    return [
        WindowSpec(w.entity, w.column, tuple(w.aggs), tuple(w.windows), w.label_delay) for w in config.windows
    ]


def relative_features(config: FeaturesConfig, numeric: Sequence[str]) -> list[tuple[str, str, str]]:
    """``(name, numerator, denominator)`` of each ``relative_to`` feature of ``features.windows``.

    Each other window's aggregates over the same aggregate of the ``relative_to`` window
    (``customer_id__tx_amount__count_1h_vs_30d``) and, when the aggregated column is one of the
    model's ``numeric`` inputs and ``mean`` is among the aggregates, the row's own value over that
    mean (``customer_id__tx_amount__value_vs_mean_30d``). A label column is never an input, so
    its value, unknown when a request is scored, is never compared.
    """
    out: list[tuple[str, str, str]] = []
    for window, spec in zip(config.windows, window_specs(config), strict=True):
        base = window.relative_to
        if base is None:
            continue
        for other in (w for w in spec.windows if w != base):
            out += [
                (
                    f"{spec.prefix}__{agg}_{other}_vs_{base}",
                    f"{spec.prefix}__{agg}_{other}",
                    f"{spec.prefix}__{agg}_{base}",
                )
                for agg in spec.aggs
            ]
        if spec.column is not None and spec.column in numeric and "mean" in spec.aggs:
            out.append((f"{spec.prefix}__value_vs_mean_{base}", spec.column, f"{spec.prefix}__mean_{base}"))
    return out


def _inputs(contract: DataContract, raw: list[str], specs: list[WindowSpec]) -> tuple[str, ...]:
    """Raw columns a scoring request carries: raw features, window entities and values, the event time."""
    needed = list(raw)
    for spec in specs:
        needed += [spec.entity, *([spec.column] if spec.column else [])]
    if specs and contract.event_time:
        needed.append(contract.event_time)
    return tuple(c for c in dict.fromkeys(needed) if c != contract.target)


def event_time_is_feature(config: FeaturesConfig, event_time: str | None) -> bool:
    """Whether the event-time column feeds the model (as its ``datetime_parts``).

    Only when the project asks for it: ``features.include`` names it, or ``features.datetime_parts``
    is written in ``loopml.yaml`` (or set by ``LOOPML_FEATURES__DATETIME_PARTS``). Otherwise the
    event time only orders the rows (the time split, windows, monitoring), like the id identifies
    them: a model that learns the hour or the weekday of the training period is a choice to make,
    not a default. Other datetime columns are features by default, as datetime parts.

    Examples
    --------
    >>> event_time_is_feature(FeaturesConfig(), "ts")
    False
    >>> event_time_is_feature(FeaturesConfig(include=["ts"]), "ts")
    True
    >>> event_time_is_feature(FeaturesConfig(datetime_parts=["hour"]), "ts")
    True
    """
    if event_time is None:
        return False
    return event_time in (config.include or ()) or "datetime_parts" in config.model_fields_set


def select_columns(contract: DataContract, config: FeaturesConfig) -> FeatureColumns:
    """Pick the feature columns: ``include`` (or every column) minus target, id, ``drop`` and the
    event time unless the project asks for it (:func:`event_time_is_feature`)."""
    known = set(contract.names)
    specs = window_specs(config)
    if specs and not contract.event_time:
        raise ConfigError("features.windows need an event_time column; set event_time in loopml.yaml.")
    referenced = [c for spec in specs for c in (spec.entity, spec.column) if c]
    sequences = config.sequences
    if sequences is not None:
        referenced += [sequences.entity, sequences.order, *(sequences.columns or [])]
    for name in [*(config.include or []), *config.drop, *config.categorical, *referenced]:
        if name not in known:
            raise ConfigError(f"features: column '{name}' is not in the data; {did_you_mean(name, known)}")
    reserved = {contract.target, contract.id_column, *config.drop}
    if not event_time_is_feature(config, contract.event_time):
        reserved.add(contract.event_time)
    names = [c for c in (config.include or contract.names) if c not in reserved]
    if sequences is not None:  # the unit and its order are the windows' keys: always inputs
        names += [c for c in (sequences.entity, sequences.order) if c not in names]
    kinds: dict[str, list[str]] = {"numeric": [], "categorical": [], "high_cardinality": [], "datetime": []}
    for name in names:
        spec = contract.column(name)
        dtype = spec.dtype
        if dtype == "string" and spec.categories is None:  # over the contract's category cap
            kinds["high_cardinality"].append(name)
        elif name in config.categorical or dtype == "string":
            kinds["categorical"].append(name)
        elif dtype == "datetime":
            kinds["datetime"].append(name)
        else:
            kinds["numeric"].append(name)
    windows = tuple(name for spec in specs for name in spec.names)
    if not names and not windows:
        raise ConfigError(
            "features: no feature columns are left after removing target, id, event time and drop."
        )
    return FeatureColumns(
        **{k: tuple(v) for k, v in kinds.items()}, windows=windows, inputs=_inputs(contract, names, specs)
    )


def _scaled() -> Pipeline:
    """Imputed, standardised numbers (for linear models)."""
    return Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])


def _sequence_preprocessor(columns: FeatureColumns, config: FeaturesConfig, scale: bool) -> Pipeline:
    """Sequence windows (``features.sequences``) and, for linear models, imputation and scaling."""
    from loopml.features.sequences import CycleWindows

    seq = config.sequences
    assert seq is not None
    windows = CycleWindows(seq.entity, seq.order, seq.columns, seq.window, tuple(seq.stats), seq.min_distinct)
    return Pipeline([("sequences", windows), *(_scaled().steps if scale else [])])


def build_preprocessor(
    columns: FeatureColumns, config: FeaturesConfig, *, scale: bool = False
) -> ColumnTransformer | Pipeline:
    """A named ColumnTransformer: ``numeric``, ``categorical``, ``high_cardinality`` and ``datetime`` steps.

    Tree models get raw numbers (they handle missing values); linear models (``scale=True``) get
    imputed, standardised numbers. With ``features.sequences`` the preprocessor is instead a
    ``sequences`` step (:class:`~loopml.features.sequences.CycleWindows`) over the unit's rows.
    """
    if config.sequences is not None:
        return _sequence_preprocessor(columns, config, scale)
    numeric: Pipeline | str = _scaled() if scale else "passthrough"
    categorical = OrdinalEncoder(
        handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1, dtype=float
    )
    # Many distinct values: rare ones share a code, so the model cannot memorise one-off categories.
    frequent = OrdinalEncoder(
        handle_unknown="use_encoded_value",
        unknown_value=-1,
        encoded_missing_value=-1,
        dtype=float,
        min_frequency=config.rare_category_count,
        max_categories=config.max_categories,
    )
    ratios = relative_features(config, columns.numeric)
    relative: Pipeline | WindowRatios = WindowRatios(ratios=tuple(ratios))
    if scale:
        relative = Pipeline([("ratios", relative), *_scaled().steps])
    steps = [
        ("numeric", numeric, [*columns.numeric, *columns.windows]),
        ("relative", relative, sorted({c for _, *pair in ratios for c in pair})),
        ("categorical", categorical, list(columns.categorical)),
        ("high_cardinality", frequent, list(columns.high_cardinality)),
        ("datetime", DatetimeParts(parts=tuple(config.datetime_parts)), list(columns.datetime)),
    ]
    return ColumnTransformer([s for s in steps if s[2]], remainder="drop", verbose_feature_names_out=False)
